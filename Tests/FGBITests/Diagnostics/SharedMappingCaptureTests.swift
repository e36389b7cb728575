import FGBI
import FGBIBench
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `fgbi trace capture --shared` on a real program that writes through a shared mapping: the LMDB example's
/// writer (`fgbi example lmdb --role writer`), whose map is opened with `MDB_WRITEMAP`.
@Suite("Shared mapping capture", .serialized)
struct SharedMappingCaptureTests {
    @Test func theLayoutTakesWritableSharedMappingsOnlyWhenAsked() {
        let mappings = ProcessMemoryMap.parse(
            """
            55d0c1000000-55d0c1010000 rw-p 00000000 00:00 0                          [heap]
            7f0000000000-7f0000004000 rw-s 00000000 00:05 9 /dev/shm/db.mdb
            7f0000010000-7f0000012000 r--s 00000000 00:05 9 /dev/shm/db.mdb-lock
            7ffd00010000-7ffd00012000 r--p 00000000 00:00 0                          [vvar]
            """)
        #expect(mappings.map(\.isWritableShared) == [false, true, false, false])
        let privateOnly = CaptureLayout.select(from: mappings, maxBytes: 1 << 30)
        #expect(privateOnly.regions.map(\.name) == ["[heap]"])
        let shared = CaptureLayout.select(from: mappings, maxBytes: 1 << 30, includingShared: true)
        #expect(shared.regions.map(\.name) == ["[heap]", "/dev/shm/db.mdb"])
        #expect(shared.totalBytes == 0x14000)

        // Memory mapped later counts as outside the layout only if it is of a kind the layout takes.
        let later =
            mappings + [
                ProcessMapping(start: 0x7f00_0002_0000, end: 0x7f00_0002_2000, permissions: "rw-s", name: "/dev/shm/x")
            ]
        #expect(privateOnly.bytesOutside(later) == 0)
        #expect(shared.bytesOutside(later) == 0x2000)
    }

    /// The writer's database mapping, by the path it was opened with.
    private static func region(
        _ trace: TraceDirectory, named path: String
    ) -> TraceDirectory.Metadata.Region? {
        trace.metadata.regions?.first { $0.name == path }
    }

    @Test func capturesTheMapOfARunningLMDBWriter() throws {
        let database = "/dev/shm/fgbi-shared-capture-\(getpid()).mdb"
        defer {
            unlink(database)
            unlink(database + "-lock")
        }
        let writer = try RunningCommand([
            "example", "lmdb", "--role", "writer", "--database", database, "--map-mib", "64", "--seconds", "30",
        ])
        defer { writer.end() }
        #expect(writer.waitFor("writer: pid") != nil, "\(writer.stderr)")
        let pid = writer.process.processIdentifier

        for shared in [false, true] {
            let directory = try TraceFixtures.temporaryDirectory("shared-capture")
            defer { TraceFixtures.remove(directory) }
            var capture = ProcessTraceCapture(pid: pid)
            capture.snapshots = 3
            capture.intervalMs = 150
            capture.maxBytes = 256 << 20
            capture.includesShared = shared
            _ = try capture.capture(to: directory) { _ in }
            let trace = try TraceDirectory.open(directory)
            guard shared else {
                #expect(Self.region(trace, named: database) == nil, "a private capture took the database's map")
                continue
            }
            let map = try #require(Self.region(trace, named: database), "regions: \(trace.metadata.regions ?? [])")
            #expect(map.length == 64 << 20)
            // Find the map in the images: it lies at the sum of the lengths of the regions before it.
            let regions = trace.metadata.regions ?? []
            let offset = regions.prefix { $0.start < map.start }.reduce(0) { $0 + $1.length }
            let images = try TraceFixtures.read(trace).map { Array($0[offset..<(offset + map.length)]) }
            try #require(images.count == 3, "the writer: \(writer.stderr)")
            // LMDB's meta pages open the map (its magic, 0xBEEFC0DE, in each), and the writer changed it
            // between snapshots.
            let magic: [UInt8] = [0xDE, 0xC0, 0xEF, 0xBE]
            #expect(images.allSatisfy { $0[16..<20].elementsEqual(magic) }, "LMDB's magic at the map's start")
            #expect(images[0] != images[1] && images[1] != images[2], "the writer wrote between snapshots")
        }
        #expect(writer.process.isRunning, "the writer runs on after the captures: \(writer.stderr)")
    }
}
