import FGBI
import Foundation

/// An LMDB database under a write-heavy key-value workload, its map replicated by a ``Primary``, with
/// output commit: a transaction is acknowledged (``run(until:acknowledged:)``'s callback) only once the
/// epoch holding it is committed on the backup, as a server would answer its client only then.
///
/// The database is a single file opened with MDB_WRITEMAP (so every change is a store into the shared map)
/// and MDB_NOSYNC (the file lives on tmpfs and replication is the durability); its map is adopted as a
/// ``GuestMemory`` region. One writer thread (the caller's) commits transactions through a
/// ``TransactionGate``; an acknowledger thread releases acknowledgements as epochs commit.
public final class ReplicatedKeyValueStore {
    /// What a run measured.
    public struct RunStatistics: Sendable {
        /// Transactions committed to LMDB.
        public var transactions: UInt64 = 0
        /// Transactions acknowledged (their epoch committed; all of them without replication).
        public var acknowledged: UInt64 = 0
        /// From the first transaction to now (to the final epoch's commit, once the run has ended).
        public var seconds = 0.0
        /// From the first transaction to the last one's commit: the figure throughput is measured over.
        public var writingSeconds = 0.0
        /// Commit to acknowledgement, per transaction, in milliseconds (empty without replication).
        public var acknowledgementMilliseconds: [Double] = []
        /// The primary's counters at the end (nil without replication).
        public var replication: ReplicationStatistics?
        /// Where the writer thread's time went while it wrote: CPU time in user space and in the kernel (the
        /// first writes after each epoch's re-protection are kernel time), waits at the gate while epochs were
        /// cut, and how often the scheduler took its CPU away.
        public var writer = WriterTime()
        public var transactionsPerSecond: Double { writingSeconds > 0 ? Double(transactions) / writingSeconds : 0 }
    }

    /// The writer thread's share of a run's time (``RunStatistics/writer``).
    public struct WriterTime: Sendable, Encodable {
        public var userSeconds = 0.0
        public var systemSeconds = 0.0
        public var gateWaitSeconds = 0.0
        public var involuntarySwitches = 0

        /// The calling thread's CPU times and switches so far (getrusage(RUSAGE_THREAD)).
        static func ofCallingThread() -> WriterTime {
            var usage = rusage()
            // RUSAGE_THREAD (1): Glibc exports it only with _GNU_SOURCE, which Swift's import does not set.
            getrusage(__rusage_who_t(1), &usage)
            func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
            return WriterTime(
                userSeconds: seconds(usage.ru_utime), systemSeconds: seconds(usage.ru_stime),
                involuntarySwitches: usage.ru_nivcsw)
        }

        static func - (end: WriterTime, start: WriterTime) -> WriterTime {
            WriterTime(
                userSeconds: end.userSeconds - start.userSeconds,
                systemSeconds: end.systemSeconds - start.systemSeconds,
                gateWaitSeconds: end.gateWaitSeconds - start.gateWaitSeconds,
                involuntarySwitches: end.involuntarySwitches - start.involuntarySwitches)
        }
    }

    /// When a run commits its first transaction.
    public enum FirstWrite: Sendable {
        /// Once the primary connected to its backup (the synchronisation then runs beside the writes).
        case onceConnected
        /// At once, while the primary connects on another thread: a backup that took over goes on serving
        /// while its former primary comes back to be its backup. The first epoch carries what was written
        /// meanwhile, and nothing is acknowledged before it commits.
        case immediately
        /// Once the backup holds a first committed epoch: nothing is written unprotected.
        case onceProtected
    }

    public let environment: LMDBEnvironment
    public let history: KeyValueHistory
    public let memory: GuestMemory
    private let gate: TransactionGate
    private let writer: KeyValueWriter
    /// The primary replicating the map (nil without replication).
    public let primary: Primary?

    /// Creates a fresh database at `path` (any previous file and its lock file are removed) with a map of
    /// `mapBytes`, faults its map in, and prepares replication with `configuration` (nil: no replication,
    /// the baseline the overhead is measured against). Nothing is sent until ``run(until:acknowledged:)``.
    ///
    /// `continuing`: open the database already at `path` instead, which holds the first `continuing`
    /// transactions of `history` (a backup's replica taken over), and go on from there.
    ///
    /// - Throws: ``LMDBError`` when LMDB cannot create the database; ``FGBIError`` or ``SystemError`` when
    ///   the map cannot be tracked.
    /// `observer` sees each epoch's statistics as it is encoded (on the primary's sender thread).
    public init(
        path: String, mapBytes: Int, history: KeyValueHistory, configuration: PrimaryConfiguration?,
        continuing committed: UInt64? = nil, observer: Primary.CaptureObserver? = nil
    ) throws {
        if committed == nil { unlink(path) }
        // The lock file of a process that died is stale; this process is the database's only user.
        unlink(path + "-lock")
        environment = try LMDBEnvironment(path: path, mapBytes: mapBytes, options: [.writeMap, .noSync])
        guard let address = try environment.locateMap() else {
            throw FGBIError.invalidArgument(
                "no shared mapping of \(path) in /proc/self/maps: LMDB was not opened with MDB_WRITEMAP")
        }
        memory = try GuestMemory.adopting(address: address, length: environment.mapLength)
        try memory.prefault()
        self.history = history
        let gate = TransactionGate()
        self.gate = gate
        writer = KeyValueWriter(environment: environment, history: history, gate: gate, committed: committed ?? 0)
        let memory = memory
        primary = try configuration.map {
            try Primary(regions: [memory], configuration: $0, hooks: gate.hooks, observer: observer)
        }
    }

    /// The primary's counters (nil without replication).
    public var replicationStatistics: ReplicationStatistics? { primary?.statistics }

    /// Connects to the backup (synchronising it), then commits transactions on this thread until
    /// `shouldStop` says so, calling `acknowledged` (on another thread, in order, with the highest
    /// transaction number released so far) as epochs commit. Ends with a final epoch, so every committed
    /// transaction is acknowledged when it returns normally.
    ///
    /// `writerStarts` runs on this thread once replication's threads are running, just before the first
    /// transaction (to pin the writer to a CPU of its own, say).
    ///
    /// `firstWrite`: when the first transaction is committed (``FirstWrite``). `pace`: the rate to commit at
    /// (nil: as fast as the writer can).
    ///
    /// - Throws: the first LMDB or replication error; transactions committed but not acknowledged then
    ///   were never released.
    public func run(
        until shouldStop: (RunStatistics) -> Bool, writerStarts: () throws -> Void = {},
        firstWrite: FirstWrite = .onceConnected, pace: TransactionPace? = nil,
        acknowledged: @escaping @Sendable (UInt64) -> Void = { _ in }
    ) throws -> RunStatistics {
        var statistics = RunStatistics()
        let releaser = primary.map { AcknowledgementReleaser(primary: $0, acknowledged: acknowledged) }
        let connecting = try primary.map { try PrimaryStart($0, inBackground: firstWrite == .immediately) }
        if let primary, firstWrite == .onceProtected {
            while primary.committedEpoch == nil {
                guard primary.isRunning else {
                    throw primary.failure ?? FGBIError.invalidArgument("replication stopped before its first epoch")
                }
                MonotonicClock.sleep(nanoseconds: 1_000_000)
            }
        }
        releaser?.start()
        var failure: Error?
        var started = MonotonicClock.nanoseconds()
        var writerAtStart = WriterTime()
        do {
            try writerStarts()
            writerAtStart = WriterTime.ofCallingThread()
            writerAtStart.gateWaitSeconds = Double(gate.waitingNanoseconds) / 1e9
            started = MonotonicClock.nanoseconds()
            var pacer = pace.map(TransactionPacer.init)
            while !shouldStop(statistics) {
                let number = try writer.commitNext()
                pacer?.committed(number)
                statistics.transactions = number
                if let primary, let releaser, let connecting {
                    releaser.committed(number, epoch: primary.epochCoveringWritesSoFar)
                    if try connecting.hasStarted(), !primary.isRunning {
                        throw primary.failure ?? FGBIError.invalidArgument("replication stopped")
                    }
                } else {
                    statistics.acknowledged = number
                }
                statistics.seconds = Double(MonotonicClock.nanoseconds() - started) / 1e9
            }
        } catch {
            failure = error
        }
        statistics.writingSeconds = statistics.seconds
        var writerAtEnd = WriterTime.ofCallingThread()
        writerAtEnd.gateWaitSeconds = Double(gate.waitingNanoseconds) / 1e9
        statistics.writer = writerAtEnd - writerAtStart
        if let primary, let releaser {
            do {
                // A start still connecting ends (or fails) first, so stop() does not race it.
                if let connecting { try connecting.waitUntilStarted() }
            } catch {
                if failure == nil { failure = error }
            }
            do {
                try primary.stop(finalEpoch: failure == nil)
            } catch {
                if failure == nil { failure = error }
            }
            let released = releaser.finish()
            statistics.acknowledged = released.acknowledged
            statistics.acknowledgementMilliseconds = released.milliseconds
            statistics.replication = primary.statistics
        }
        statistics.seconds = Double(MonotonicClock.nanoseconds() - started) / 1e9
        if let failure { throw failure }
        return statistics
    }
}

/// A primary's ``Primary/start()``, run on the calling thread or, while the writer goes on, on a thread of
/// its own.
final class PrimaryStart: @unchecked Sendable {
    private let lock = NSLock()
    private var outcome: Result<Void, Error>?
    private let done = DispatchSemaphore(value: 0)

    init(_ primary: Primary, inBackground: Bool) throws {
        guard inBackground else {
            try primary.start()
            outcome = .success(())
            return
        }
        Thread.detachNewThread { [self] in
            let result = Result { try primary.start() }
            lock.withLock { outcome = result }
            done.signal()
        }
    }

    /// Whether the start finished; throws its error if it failed.
    func hasStarted() throws -> Bool {
        guard let outcome = lock.withLock({ outcome }) else { return false }
        try outcome.get()
        return true
    }

    /// Waits for the start to finish; throws its error if it failed.
    func waitUntilStarted() throws {
        if try hasStarted() { return }
        done.wait()
        done.signal()
        _ = try hasStarted()
    }
}

/// Holds each committed transaction until the epoch covering it is committed on the backup, then releases
/// it: the output-commit half of ``ReplicatedKeyValueStore``.
final class AcknowledgementReleaser: @unchecked Sendable {
    private struct Pending {
        var transaction: UInt64
        var epoch: UInt64
        var committedAt: UInt64
    }
    private let primary: Primary
    private let acknowledged: @Sendable (UInt64) -> Void
    private let lock = NSLock()
    private var pending: [Pending] = []
    /// The writer's own batch, handed to `pending` under the lock every `batchLimit` transactions or when
    /// the epoch changes: the writer pays the lock (whose line the releaser thread takes) once per batch.
    private var batch: [Pending] = []
    private static let batchLimit = 64
    private var head = 0
    private var released: UInt64 = 0
    private var latencies: [Double] = []
    private var stopping = false
    private let done = DispatchSemaphore(value: 0)

    init(primary: Primary, acknowledged: @escaping @Sendable (UInt64) -> Void) {
        self.primary = primary
        self.acknowledged = acknowledged
        pending.reserveCapacity(1 << 16)
        batch.reserveCapacity(Self.batchLimit)
        latencies.reserveCapacity(1 << 16)
    }

    func start() {
        Thread.detachNewThread { [self] in
            while true {
                let last = lock.withLock { stopping }
                release()
                if last { break }
                MonotonicClock.sleep(nanoseconds: 250_000)
            }
            done.signal()
        }
    }

    /// Records that `transaction` committed and is covered by `epoch`. Called by the writer thread only.
    func committed(_ transaction: UInt64, epoch: UInt64) {
        if let last = batch.last, last.epoch != epoch { handOver() }
        batch.append(Pending(transaction: transaction, epoch: epoch, committedAt: MonotonicClock.nanoseconds()))
        if batch.count >= Self.batchLimit { handOver() }
    }

    /// Moves the writer's batch to the releaser's queue.
    private func handOver() {
        lock.withLock { pending.append(contentsOf: batch) }
        batch.removeAll(keepingCapacity: true)
    }

    /// Releases every pending transaction whose epoch the backup has committed.
    private func release() {
        guard let epoch = primary.committedEpoch else { return }
        let now = MonotonicClock.nanoseconds()
        let highest: UInt64? = lock.withLock {
            var highest: UInt64?
            while head < pending.count, pending[head].epoch <= epoch {
                highest = pending[head].transaction
                latencies.append(Double(now - pending[head].committedAt) / 1e6)
                head += 1
            }
            if head > 4096, head * 2 > pending.count {
                pending.removeFirst(head)
                head = 0
            }
            if let highest { released = highest }
            return highest
        }
        if let highest { acknowledged(highest) }
    }

    /// Stops the thread after a last release; returns what was released.
    func finish() -> (acknowledged: UInt64, milliseconds: [Double]) {
        handOver()
        lock.withLock { stopping = true }
        done.wait()
        return lock.withLock { (released, latencies) }
    }
}
