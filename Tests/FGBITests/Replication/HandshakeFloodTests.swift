import Foundation
import Testing

@testable import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// A stranger without the key cannot keep the real primary out: a separate process floods the backup with
/// connections that never finish their handshake (idle ones, and ones dripping a byte every 100 ms), each
/// reopened as soon as the backup drops it, and the real primary still connects and commits within 2 s, in
/// every round (Docs/SECURITY.md, `HandshakeGate`).
@Suite("Handshake flood", .serialized)
struct HandshakeFloodTests {
    /// 64 idle connections and 64 slow drips to `$PORT`, each reopened when the backup closes it; prints
    /// "ready" once all are started, and kills them all when its standard input closes (the test's lifeline).
    /// Bash's /dev/tcp: nothing to install.
    private static let flood = """
        main=$$
        for i in $(seq 64); do
            ( while kill -0 $main 2>/dev/null; do
                  exec 3<>/dev/tcp/127.0.0.1/$PORT 2>/dev/null || { sleep 0.05; continue; }
                  read -r -d '' _ <&3
                  exec 3<&-
              done ) </dev/null &
            ( while kill -0 $main 2>/dev/null; do
                  exec 3<>/dev/tcp/127.0.0.1/$PORT 2>/dev/null || { sleep 0.05; continue; }
                  while printf 'F' >&3 2>/dev/null; do sleep 0.1; done
                  exec 3<&-
              done ) </dev/null &
        done
        echo ready
        read -r _
        kill -9 $(jobs -p) 2>/dev/null  # SIGKILL: the test process hands its children a mask that blocks SIGTERM
        wait
        """

    /// A running flood and the write end of its lifeline.
    private struct Flood {
        var process: Process
        var lifeline: Pipe
    }

    /// Runs the flood against `port`; returns once it has started every connection.
    private static func startFlood(port: UInt16) throws -> Flood {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["bash", "-c", flood]
        process.environment = ["PORT": String(port), "PATH": "/usr/bin:/bin"]
        let output = Pipe()
        let lifeline = Pipe()
        process.standardOutput = output
        process.standardInput = lifeline
        process.standardError = FileHandle.nullDevice
        try process.run()
        let line = output.fileHandleForReading.availableData
        #expect(String(decoding: line, as: UTF8.self).contains("ready"), "the flood did not start")
        return Flood(process: process, lifeline: lifeline)
    }

    private static func stopFlood(_ flood: Flood) {
        try? flood.lifeline.fileHandleForWriting.close()
        flood.process.waitUntilExit()
    }

    @Test func theRealPrimaryCommitsWithinTwoSecondsThroughAFlood() throws {
        let key = try PresharedKey(bytes: (0..<32).map { UInt8($0) })
        for round in 1...3 {
            let memory = try GuestMemory.anonymous(length: 4 << 20)
            var backupConfiguration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
            backupConfiguration.key = key
            backupConfiguration.primaryTimeout = .seconds(5)
            let backup = try Backup(
                regions: [memory], geometry: try BlockGeometry(), configuration: backupConfiguration)
            let service = try backup.start()
            defer { _ = try? service.stop() }
            let flood = try Self.startFlood(port: backup.port)
            defer { Self.stopFlood(flood) }
            // Let the flood fill the backup's door: its connections pending when the primary comes.
            Thread.sleep(forTimeInterval: 1.0)
            let pendingBefore = backup.pendingHandshakes
            #expect(
                pendingBefore >= 8, "round \(round): the flood holds \(pendingBefore) handshakes open at the backup")

            let guest = try GuestMemory.anonymous(length: 4 << 20)
            var configuration = PrimaryConfiguration.onThisKernel(
                backup: Endpoint(host: "127.0.0.1", port: backup.port))
            configuration.key = key
            let primary = try Primary(regions: [guest], configuration: configuration)
            let start = MonotonicClock.nanoseconds()
            try primary.start()
            let committed = primary.waitForCommit(1, timeout: .seconds(2))
            let seconds = Double(MonotonicClock.nanoseconds() - start) / 1e9
            #expect(
                committed,
                """
                round \(round): no commit within 2 s of start through the flood (\(pendingBefore) pending \
                handshakes; \(seconds) s)
                """
            )
            _ = try? primary.stop()
        }
    }
}
