import FGBI
import FGBIBench
import FGBILab
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Replication between two hosts on one machine: the backup runs in a network namespace of its own behind a
/// veth link made by the test, so every frame crosses a real network device. Off loopback a key is
/// required.
@Suite(
    "Replication across network namespaces", .serialized,
    .enabled(if: VethLink.isAvailable, "needs root and iproute2 network namespaces"))
struct NamespaceReplicationTests {
    /// A backup created, and served, by a thread that entered `namespace` first.
    final class RemoteBackup: @unchecked Sendable {
        let memory: GuestMemory
        private let ready = DispatchSemaphore(value: 0)
        private let done = DispatchSemaphore(value: 0)
        private var backup: Backup?
        private var result: Result<BackupOutcome, Error>?

        init(namespace: NetworkNamespace, address: String, key: PresharedKey, length: Int) throws {
            memory = try GuestMemory.anonymous(length: length)
            let memory = self.memory
            Thread.detachNewThread { [self] in
                result = Result {
                    try namespace.enter()
                    var configuration = BackupConfiguration(listen: Endpoint(host: address, port: 0))
                    configuration.key = key
                    configuration.primaryTimeout = .seconds(5)
                    let backup = try Backup(
                        regions: [memory], geometry: try BlockGeometry(), configuration: configuration)
                    self.backup = backup
                    ready.signal()
                    return try backup.serve()
                }
                ready.signal()
                done.signal()
            }
            ready.wait()
        }

        var port: UInt16 { backup?.port ?? 0 }

        func outcome() throws -> BackupOutcome {
            guard done.wait(timeout: .now() + 60) == .success, let result else {
                throw WireError.timedOut(milliseconds: 60_000)
            }
            return try result.get()
        }
    }

    @Test func replicatesAcrossAVethLink() throws {
        let link = try VethLink()
        let key = try PresharedKey(bytes: Array("a test key of thirty-two bytes!!".utf8))
        let length = 32 << 20
        let remote = try RemoteBackup(namespace: link.namespace, address: link.peerAddress, key: key, length: length)
        #expect(remote.port != 0)

        let memory = try GuestMemory.anonymous(length: length)
        try memory.prefault()
        SyntheticWorkload.fillInitial(memory, seed: 9)
        let driver = WorkloadDriver(memory: memory, workload: .sparse, threads: 2, pagesPerSecond: 40_000)
        var configuration = PrimaryConfiguration.onThisKernel(
            backup: Endpoint(host: link.peerAddress, port: remote.port))

        // Off loopback, no key is refused before anything is sent.
        let keyless = try Primary(regions: [memory], configuration: configuration)
        #expect(throws: WireError.self) { try keyless.start() }

        configuration.key = key
        // Off loopback a primary that would send memory in clear is refused by a backup that did not allow it.
        configuration.allowPlaintext = true
        let plaintext = try Primary(regions: [memory], configuration: configuration)
        let refusal = #expect(throws: WireError.self) { try plaintext.start() }
        #expect(
            "\(refusal.map { "\($0)" } ?? "")".contains("requires encryption off loopback"),
            "\(String(describing: refusal))")

        // By default, with a key, frames off loopback are encrypted without being asked.
        configuration.allowPlaintext = false
        let primary = try Primary(regions: [memory], configuration: configuration, hooks: driver.hooks)
        try primary.start()
        #expect(primary.statistics.encrypted, "a session off loopback must be encrypted by default")
        driver.start()
        #expect(primary.waitForCommit(10, timeout: .seconds(30)))
        driver.stop()
        let last = try #require(try primary.stop())
        #expect(try remote.outcome() == .primaryFinished(lastEpoch: last))
        #expect(
            memcmp(memory.base, remote.memory.base, length) == 0, "backup differs from the primary at epoch \(last)")
    }
}
