import FGBI
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `fgbi bench guests`: N guests booted from one image, each replicated by its own ``Primary`` to its own
/// ``Backup`` (on a ``BackupThread``) in this process over loopback, with one ``SharedContentIndex`` or an
/// index per guest. Each guest is a ``LockstepGuest`` with its own seed, so the guests start identical and
/// diverge, and every variant replicates the very same histories: after each round of writes (one epoch's
/// worth per guest) the benchmark waits for every guest's commit and compares every backup with its guest.
public struct GuestsBenchmark: Sendable {
    /// How the guests' primaries hold their content indexes.
    public enum Variant: String, CaseIterable, Sendable, Codable {
        /// One index for all, with one budget of stored copies.
        case shared
        /// An index per guest, each with the whole budget (N budgets in all).
        case separate
        /// An index per guest, each with 1/N of the budget: as much stored-copy memory as `shared`.
        case separateSplit = "separate-split"
    }

    public struct Configuration: Sendable {
        public var guests = 3
        public var variants = Variant.allCases
        public var workload = SyntheticWorkload.guest
        public var regionMiB = 64
        public var pagesPerEpoch = 1024
        /// Rounds of writes, each to every guest, each waited for until every guest's epoch commits.
        public var epochs = 40
        /// Every primary's epoch interval.
        public var epochMilliseconds = 25
        /// Stored copies' budget: the shared index's, or each separate index's (`separate`), or split.
        public var budgetBytes = 64 << 20
        /// Seeds every guest's writes (each guest its own stream from it).
        public var seed: UInt64 = 2011
        public init() {}
    }

    /// One variant's run over all guests.
    public struct Run: Sendable, Codable {
        public var variant: String
        public var guests: Int
        public var regionMib: Int
        public var workload: String
        public var budgetMibPerIndex: Double
        public var epochs: Int
        /// Every primary's engine metadata (block tables, own indexes or entry tables) plus the shared index.
        public var metadataBytes: Int
        /// Of which block tables (the same in every variant).
        public var blockTableBytes: Int
        /// Stored copies in use at the end, and the index entries (what the backups are known to hold).
        public var storedCopies: Int
        public var storedCopyBytes: Int
        public var indexEntries: Int
        /// Synchronisation (pre-copy and first epochs) and the epochs after it, all guests.
        public var synchronisationBytes: Int
        public var epochBytes: Int
        public var sharedHits: Int
        public var diffBlocks: Int
        public var literalBlocks: Int
        /// Guest pause per epoch with writes (collect and capture; stopping the guest excluded), all guests.
        public var pauseMsP50: Double
        public var pauseMsP99: Double
        /// Encode (lookups, sharing, differences; with a shared index the wait for its lock too) per epoch.
        public var encodeMsP50: Double
        public var encodeMsP99: Double
        /// Of the encode, the wait for the shared index's lock (0 with indexes of their own).
        public var indexWaitMsP50: Double
        public var indexWaitMsP99: Double
        /// Additions that used another guest's stored copy, and copies evicted (shared index only).
        public var attachments: Int?
        public var evictions: Int?
        /// Every backup equalled its own guest after every round and at the end.
        public var verified: Bool
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    public func run(progress: (String) -> Void) throws -> [Run] {
        try configuration.variants.map { variant in
            progress("guests: \(configuration.guests) x \(configuration.regionMiB) MiB, \(variant.rawValue) index")
            return try run(variant, progress: progress)
        }
    }

    /// Statistics of the epochs after synchronisation, from a primary's observer.
    private final class Observations: @unchecked Sendable {
        private let lock = NSLock()
        private var records: [UInt64: EpochStatistics] = [:]

        func record(_ capture: EpochCapture, _ statistics: EpochStatistics) {
            guard !capture.isPrecopy else { return }
            lock.withLock { records[capture.epoch] = statistics }
        }

        func after(_ epoch: UInt64) -> [EpochStatistics] {
            lock.withLock { records.filter { $0.key > epoch }.map(\.value) }
        }
    }

    /// The guests: one image, then each writes from its own seed.
    private func makeGuests(count: Int, length: Int) throws -> [LockstepGuest] {
        var guests: [LockstepGuest] = []
        for index in 0..<count {
            let memory = try GuestMemory.anonymous(length: length)
            try memory.prefault()
            let source = LockstepGuest.Source.workload(
                configuration.workload, pagesPerEpoch: configuration.pagesPerEpoch,
                seed: configuration.seed &+ UInt64(index) &* 7919)
            let guest = try LockstepGuest(memory: memory, source: source)
            if index > 0 { memory.base.copyMemory(from: guests[0].memory.base, byteCount: length) }
            guests.append(guest)
        }
        return guests
    }

    /// Guest `index`'s primary, replicating to the backup on `backupPort` with `budget` bytes of stored
    /// copies of its own, or through `sharedIndex`.
    private func primaryConfiguration(
        guest index: Int, backupPort: UInt16, budget: Int,
        sharedIndex: SharedContentIndex?
    ) -> PrimaryConfiguration {
        var primaryConfiguration = PrimaryConfiguration(backup: Endpoint(host: "127.0.0.1", port: backupPort))
        primaryConfiguration.engine.contentBudgetBytes = budget
        primaryConfiguration.engine.sharedIndex = sharedIndex
        primaryConfiguration.guestName = "g\(index)"
        primaryConfiguration.epochInterval = .milliseconds(configuration.epochMilliseconds)
        primaryConfiguration.backupTimeout = .seconds(10)
        primaryConfiguration.reconnectWindow = .zero
        return primaryConfiguration
    }

    /// Waits until every backup holds its guest's whole region.
    private static func waitForSynchronisation(of primaries: [Primary]) throws {
        let deadline = MonotonicClock.nanoseconds() + 300_000_000_000
        while primaries.contains(where: { $0.committedEpoch == nil }) {
            if let failed = primaries.first(where: { $0.failure != nil }) {
                throw BenchmarkError("synchronisation failed: \(failed.failure!)")
            }
            guard MonotonicClock.nanoseconds() < deadline else {
                throw BenchmarkError("the backups were not synchronised within 300 s")
            }
            MonotonicClock.sleep(nanoseconds: 1_000_000)
        }
    }

    /// One backup per guest (named `g0`, `g1`, ...), each over a pre-faulted region of `length` bytes.
    private static func makeBackups(count: Int, length: Int, geometry: BlockGeometry) throws
        -> (memories: [GuestMemory], backups: [Backup])
    {
        let memories = try (0..<count).map { _ in try GuestMemory.anonymous(length: length) }
        let backups = try memories.enumerated().map { index, memory in
            try memory.prefault()
            var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
            configuration.primaryTimeout = .seconds(10)
            configuration.guestName = "g\(index)"
            return try Backup(regions: [memory], geometry: geometry, configuration: configuration)
        }
        return (memories, backups)
    }

    private func run(_ variant: Variant, progress: (String) -> Void) throws -> Run {
        let count = configuration.guests
        let length = configuration.regionMiB << 20
        let geometry = try BlockGeometry()
        let guests = try makeGuests(count: count, length: length)
        let (backupMemories, backups) = try Self.makeBackups(count: count, length: length, geometry: geometry)
        let threads = backups.map { BackupThread($0) }
        let sharedIndex = variant == .shared ? try SharedContentIndex(budgetBytes: configuration.budgetBytes) : nil
        let budget = variant == .separateSplit ? configuration.budgetBytes / count : configuration.budgetBytes
        let observations = (0..<count).map { _ in Observations() }
        let primaries = try (0..<count).map { index in
            try Primary(
                regions: [guests[index].memory],
                configuration: primaryConfiguration(
                    guest: index, backupPort: backups[index].port,
                    budget: budget, sharedIndex: sharedIndex),
                hooks: guests[index].hooks, observer: { [observed = observations[index]] in observed.record($0, $1) })
        }
        var stopped = false
        defer {
            if !stopped { for primary in primaries { _ = try? primary.stop(finalEpoch: false) } }
            for backup in backups { backup.stop() }
            for thread in threads { thread.join() }
        }
        for primary in primaries { try primary.start() }
        try Self.waitForSynchronisation(of: primaries)
        let synchronised = primaries.map { ($0.committedEpoch!, $0.statistics) }
        func allEqual() -> Bool {
            zip(guests, backupMemories).allSatisfy { memcmp($0.memory.base, $1.base, length) == 0 }
        }
        var verified = allEqual()
        for round in 1...configuration.epochs {
            for guest in guests { _ = try guest.writeNext() }
            for primary in primaries {
                let epoch = primary.epochCoveringWritesSoFar
                guard primary.waitForCommit(epoch, timeout: .seconds(60)) else {
                    throw BenchmarkError(
                        "epoch \(epoch) was not committed within 60 s\(primary.failure.map { ": \($0)" } ?? "")")
                }
            }
            verified = verified && allEqual()
            if round % max(configuration.epochs / 5, 1) == 0 { progress("  round \(round)/\(configuration.epochs)") }
        }
        stopped = true
        for primary in primaries { _ = try primary.stop() }
        for thread in threads { _ = try thread.result() }
        verified = verified && allEqual()
        let sharedStatistics = sharedIndex?.statistics // the engines are members until their primaries go

        let final = primaries.map(\.statistics)
        var written: [EpochStatistics] = []
        for (index, observed) in observations.enumerated() {
            written += observed.after(synchronised[index].0).filter { $0.pagesWritten > 0 }
        }
        var totals = EpochStatistics()
        for statistics in written { totals.accumulate(statistics) }
        let pauses = written.map { Double($0.pauseNanoseconds - $0.stopNanoseconds) / 1e6 }
        let encodes = written.map { Double($0.encodeNanoseconds) / 1e6 }
        let waits = written.map { Double($0.indexWaitNanoseconds) / 1e6 }
        let entries = final.reduce(0) { $0 + $1.indexEntries }
        let storedCopies = sharedStatistics?.storedCopies ?? entries
        return Run(
            variant: variant.rawValue, guests: count, regionMib: configuration.regionMiB,
            workload: configuration.workload.rawValue,
            budgetMibPerIndex: Double(sharedIndex?.budgetBytes ?? budget) / Double(1 << 20),
            epochs: configuration.epochs,
            metadataBytes: final.reduce(0) { $0 + $1.metadataBytes } + (sharedIndex?.metadataBytes ?? 0),
            blockTableBytes: count * length / geometry.blockSize * 8,
            storedCopies: storedCopies, storedCopyBytes: storedCopies * geometry.blockSize,
            indexEntries: sharedStatistics?.entries ?? entries,
            synchronisationBytes: synchronised.reduce(0) { $0 + $1.1.precopyBytes + $1.1.bytesSent },
            epochBytes: zip(final, synchronised).reduce(0) { $0 + $1.0.bytesSent - $1.1.1.bytesSent },
            sharedHits: totals.sharedHits, diffBlocks: totals.diffBlocks, literalBlocks: totals.literalBlocks,
            pauseMsP50: Summary.percentile(pauses, 0.5), pauseMsP99: Summary.percentile(pauses, 0.99),
            encodeMsP50: Summary.percentile(encodes, 0.5), encodeMsP99: Summary.percentile(encodes, 0.99),
            indexWaitMsP50: Summary.percentile(waits, 0.5), indexWaitMsP99: Summary.percentile(waits, 0.99),
            attachments: sharedStatistics?.attachments, evictions: sharedStatistics?.evictions, verified: verified)
    }
}
