import FGBIBench
import Foundation
import Testing

@testable import FGBI

/// The first epochs after a synchronisation: the primary reserves capture memory for them from its last
/// pre-copy round, so the `auto` capture strategy can stage their pages whole from the first (a copy capture,
/// which finds page copies) instead of measuring rehash first for fear of faulting staging memory in while the
/// guest is paused.
@Suite("First epochs after a synchronisation", .serialized)
struct FirstEpochStagingTests {
    /// A guest writing throughout the synchronisation: the session's first epoch is captured by copy, in a
    /// capture that did not have to grow.
    @Test(.requiring(.uffdAsync, because: "the pre-copy that measures an epoch's size needs a write-based tracker"))
    func theFirstEpochIsStagedWholeWhenTheGuestWroteDuringTheSynchronisation() throws {
        let length = 16 << 20
        let (backup, backupMemory) = try LoopbackReplicationTests().makeBackup(length: length)
        let served = LoopbackReplicationTests.Served(backup)
        let memory = try LoopbackReplicationTests().makeGuestMemory(length: length, seed: 5)
        let driver = WorkloadDriver(memory: memory, workload: .sparse, threads: 1, pagesPerSecond: 20_000)
        var configuration = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backup.port))
        configuration.reconnectWindow = .zero
        configuration.tracker = .uffdAsync
        let seen = PthreadLock<[EpochStatistics]>([])
        let primary = try Primary(
            regions: [memory], configuration: configuration, hooks: driver.hooks,
            observer: { capture, statistics in if !capture.isPrecopy { seen.withLock { $0.append(statistics) } } })
        driver.start()
        try primary.start()
        let synchronised = try #require(primary.statistics.lastSynchronisation)
        #expect(primary.waitForCommit(synchronised.epoch + 3, timeout: .seconds(20)))
        driver.stop()
        try primary.stop()
        _ = try served.outcome()
        #expect(memcmp(memory.base, backupMemory.base, length) == 0, "the backup holds the final epoch")

        let rounds = synchronised.pagesPerRound
        let first = try #require(seen.withLock { $0.first { $0.epoch >= synchronised.epoch } })
        #expect(
            first.captureStrategy == CaptureStrategy.copyPages.rawValue,
            """
            epoch \(first.epoch) captured by \(first.captureStrategy) (\(first.pagesWritten) pages, capture \
            \(first.captureNanoseconds / 1_000) us); pre-copy rounds \(rounds)
            """
        )
    }
}
