import FGBI
import FGBIBench
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `fgbi trace capture`'s library side on a real child process: a perl script that rewrites a marker
/// string in its heap every 50 ms, so the captured images must show the successive markers.
@Suite("Process trace capture")
struct ProcessCaptureTests {
    static let perl = "/usr/bin/perl"
    static let hasPerl = FileManager.default.isExecutableFile(atPath: perl)

    /// Rewrites `FGBI-MARK-<8 digits>-END` in a 64 KiB string every 50 ms, for an hour (or about `seconds`).
    static func markerScript(seconds: Double? = nil, ballastMiB: Int = 0) -> String {
        """
        $| = 1; my $s = "." x 65536; my $ballast = "b" x \(ballastMiB << 20); my $i = 0; my $rounds = \
        \(Int((seconds ?? 3600) / 0.05));
        while ($i < $rounds) {
            $i++; substr($s, 1000, 23) = sprintf("FGBI-MARK-%08d-END", $i);
            print "ready\\n" if $i == 1;  # only once the first marker is in memory
            select(undef, undef, undef, 0.05);
        }
        """
    }

    /// A running child; `stop()` kills and reaps it.
    final class Child {
        let process = Process()
        let output = Pipe()
        var pid: Int32 { process.processIdentifier }

        init(script: String) throws {
            process.executableURL = URL(fileURLWithPath: ProcessCaptureTests.perl)
            process.arguments = ["-e", script]
            process.standardOutput = output
            try process.run()
            // Wait for the script to be running (its marker string exists) before capturing.
            var text = ""
            while !text.contains("ready") {
                let data = output.fileHandleForReading.availableData
                if data.isEmpty { break }
                text += String(decoding: data, as: UTF8.self)
            }
        }

        func stop() {
            if process.isRunning { kill(pid, SIGKILL) }
            process.waitUntilExit()
        }
    }

    /// The largest marker number in `image`, or nil when it holds none.
    static func newestMarker(in image: [UInt8]) -> Int? {
        let prefix = Array("FGBI-MARK-".utf8)
        var newest: Int?
        var index = 0
        while index + prefix.count + 12 <= image.count {
            if image[index] == prefix[0], Array(image[index..<index + prefix.count]) == prefix {
                let digits = image[index + prefix.count..<index + prefix.count + 8]
                if Array(image[index + prefix.count + 8..<index + prefix.count + 12]) == Array("-END".utf8),
                    digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
                    let value = Int(String(decoding: digits, as: UTF8.self))
                {
                    newest = max(newest ?? 0, value)
                }
                index += prefix.count
            } else {
                index += 1
            }
        }
        return newest
    }

    @Test(.enabled(if: hasPerl, "needs /usr/bin/perl"))
    func capturesAChildsChangingMemory() throws {
        let child = try Child(script: Self.markerScript())
        defer { child.stop() }
        let directory = try TraceFixtures.temporaryDirectory("capture")
        defer { TraceFixtures.remove(directory) }
        var capture = ProcessTraceCapture(pid: child.pid)
        capture.snapshots = 4
        capture.intervalMs = 120
        var lines: [String] = []
        let outcome = try capture.capture(to: directory) { lines.append($0) }

        // The process runs again, and the trace opens with its layout recorded.
        #expect(TargetProcess(pid: child.pid).state() != "T")
        let trace = try TraceDirectory.open(directory)
        #expect(trace.images.count == 4)
        #expect(trace.imageSize == outcome.layout.totalBytes)
        #expect(trace.imageSize % GuestMemory.pageSize == 0)
        let metadata = trace.metadata
        #expect(metadata.intervalMs == 120)
        #expect((110...400).contains(metadata.epochMs ?? 0), "the measured interval")
        #expect(metadata.snapshotStartsMs?.count == 4)
        #expect(metadata.pid == child.pid)
        #expect(metadata.source == "process:perl")
        #expect(metadata.program?.hasPrefix(Self.perl) == true)
        #expect(metadata.snapshotsPlanned == 4)
        #expect(metadata.exitedEarly == false)
        #expect(metadata.pausesMs?.count == 4)
        let regions = try #require(metadata.regions)
        #expect(!regions.isEmpty)
        #expect(regions.reduce(0) { $0 + $1.length } == trace.imageSize)
        #expect(zip(regions, regions.dropFirst()).allSatisfy { $0.start + UInt64($0.length) <= $1.start })
        #expect(
            regions.allSatisfy { $0.start % UInt64(GuestMemory.pageSize) == 0 && $0.length % GuestMemory.pageSize == 0 }
        )
        #expect(regions.contains { $0.name == "[heap]" })
        #expect(lines.filter { $0.hasPrefix("snapshot ") }.count == 4)
        #expect(lines.contains { $0.hasPrefix("snapshot 4/4: pause ") })

        // Every image holds a marker, and they advance: the images are successive moments of the child.
        let markers = try TraceFixtures.read(trace).map { Self.newestMarker(in: $0) }
        #expect(markers.allSatisfy { $0 != nil }, "markers \(markers)")
        let values = markers.compactMap { $0 }
        #expect(zip(values, values.dropFirst()).allSatisfy { $0 < $1 }, "markers \(values)")
    }

    /// Runs a perl child with `script`, captures it into a temporary trace directory with `configure`'s
    /// settings, and hands the outcome and progress lines to `check` before cleaning up.
    func capture(
        _ script: String, _ configure: (inout ProcessTraceCapture) -> Void,
        check: (ProcessTraceCapture.Outcome, [String]) throws -> Void
    ) throws {
        let child = try Child(script: script)
        defer { child.stop() }
        let directory = try TraceFixtures.temporaryDirectory("capture")
        defer { TraceFixtures.remove(directory) }
        var capture = ProcessTraceCapture(pid: child.pid)
        configure(&capture)
        var lines: [String] = []
        let outcome = try capture.capture(to: directory) { lines.append($0) }
        try check(outcome, lines)
    }

    @Test(.enabled(if: hasPerl, "needs /usr/bin/perl"))
    func withoutStoppingTheProcess() throws {
        try capture(
            Self.markerScript(),
            {
                $0.snapshots = 3
                $0.intervalMs = 60
                $0.stopsProcess = false
            }
        ) { outcome, _ in
            #expect(outcome.pausesMs.isEmpty && outcome.readsMs.count == 3)
            #expect(outcome.trace.metadata.pausesMs == [])
        }
    }

    @Test(.enabled(if: hasPerl, "needs /usr/bin/perl"))
    func lateSnapshotsStillLetTheProcessRunHalfAnInterval() throws {
        // 96 MiB of ballast: each stop and copy takes longer than the interval, so every snapshot runs late.
        try capture(
            Self.markerScript(ballastMiB: 96),
            {
                $0.snapshots = 5
                $0.intervalMs = 20
            }
        ) { outcome, _ in
            let starts = try #require(outcome.trace.metadata.snapshotStartsMs)
            #expect(starts.count == 5 && outcome.pausesMs.count == 5)
            for index in 1..<starts.count {
                // The previous snapshot continued the process no earlier than its start plus its pause.
                let ran = starts[index] - (starts[index - 1] + outcome.pausesMs[index - 1])
                #expect(
                    ran >= 9.5,
                    "the process ran \(ran) ms between snapshots \(index) and \(index + 1), not half the interval")
            }
        }
    }

    @Test(.enabled(if: hasPerl, "needs /usr/bin/perl"))
    func aProcessThatExitsKeepsTheImagesTaken() throws {
        try capture(
            Self.markerScript(seconds: 0.4),
            {
                $0.snapshots = 40
                $0.intervalMs = 50
            }
        ) { outcome, lines in
            #expect(outcome.exitedEarly)
            #expect((2..<40).contains(outcome.trace.images.count))
            #expect(outcome.trace.metadata.exitedEarly == true)
            #expect(lines.last?.contains("exited after") == true)
        }
    }

    @Test func aMissingProcessIsAClearError() throws {
        let directory = try TraceFixtures.temporaryDirectory("capture")
        defer { TraceFixtures.remove(directory) }
        let pid: Int32 = 4_194_303 // above the default pid_max, so no process has it
        var capture = ProcessTraceCapture(pid: pid)
        capture.snapshots = 3
        #expect(throws: CaptureError.noSuchProcess(pid)) { try capture.capture(to: directory) }
        #expect(CaptureError.noSuchProcess(pid).description == "no process \(pid): it does not exist or has exited")
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/epoch-000000.img"))
    }

    @Test func permissionErrorsCarryTheHint() {
        let error = CaptureError.notPermitted(
            pid: 7, SystemError(operation: "process_vm_readv(7)", errno: EPERM, hint: "h"))
        #expect(error.description == "process 7: process_vm_readv(7): EPERM (Operation not permitted): h")
        #expect(CaptureError.permissionHint.contains("kernel.yama.ptrace_scope"))
    }

    @Test func mapsParseAndTheLayoutKeepsWritablePrivateMemoryUpToTheCap() {
        let text = """
            55d0c0000000-55d0c0002000 r--p 00000000 fd:01 123 /usr/bin/prog
            55d0c0002000-55d0c0004000 rw-p 00002000 fd:01 123 /usr/bin/prog
            55d0c1000000-55d0c1010000 rw-p 00000000 00:00 0                          [heap]
            7f0000000000-7f0000004000 rw-s 00000000 00:05 9 /dev/shm/shared file
            7f0000010000-7f0000018000 rw-p 00000000 00:00 0
            7ffd00000000-7ffd00001000 rw-p 00000000 00:00 0                          [stack]
            7ffd00010000-7ffd00012000 r--p 00000000 00:00 0                          [vvar]
            ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
            garbage
            """
        let mappings = ProcessMemoryMap.parse(text)
        #expect(mappings.count == 8)
        #expect(mappings[3].name == "/dev/shm/shared file")
        #expect(mappings[4].name == "")
        #expect(mappings.filter(\.isWritablePrivate).map(\.name) == ["/usr/bin/prog", "[heap]", "", "[stack]"])

        let all = CaptureLayout.select(from: mappings, maxBytes: 1 << 30)
        #expect(all.regions.map(\.length) == [0x2000, 0x10000, 0x8000, 0x1000])
        #expect(all.totalBytes == 0x1B000 && all.skipped.isEmpty)

        // A 72 KiB cap takes the first 8 + 64 KiB in address order and cuts the rest.
        let capped = CaptureLayout.select(from: mappings, maxBytes: 0x12000 + 100)
        #expect(capped.regions.map(\.name) == ["/usr/bin/prog", "[heap]"])
        #expect(capped.totalBytes == 0x12000)
        #expect(capped.skipped.map(\.name) == ["", "[stack]"])
        #expect(capped.skipped.allSatisfy { $0.reason == "size cap" })

        let unreadable = CaptureLayout.select(from: mappings, maxBytes: 1 << 30) { $0.name != "[stack]" }
        #expect(
            unreadable.skipped == [.init(start: 0x7ffd00000000, length: 0x1000, name: "[stack]", reason: "unreadable")])

        // Later maps: the heap grew by 16 KiB and the anonymous range went away.
        let later = ProcessMemoryMap.parse(
            """
            55d0c0002000-55d0c0004000 rw-p 00002000 fd:01 123 /usr/bin/prog
            55d0c1000000-55d0c1014000 rw-p 00000000 00:00 0 [heap]
            7ffd00000000-7ffd00001000 rw-p 00000000 00:00 0 [stack]
            """)
        #expect(all.bytesOutside(later) == 0x4000)
        #expect(all.bytesUnmapped(later) == 0x8000)
    }
}
