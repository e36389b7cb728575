import Dispatch
import Logging
import Synchronization

/// The primary end of FGBI replication: tracks the regions, cuts epochs, and streams them to a backup.
///
/// Threads, each with one job:
/// - checkpoint: runs each session: first synchronises the backup with pre-copy rounds while the guest
///   runs (``PrecopyPolicy``), then every `epochInterval` pauses the guest (``PauseHooks``), collects the
///   written pages, captures what changed, resumes the guest, and queues the capture. When every capture
///   buffer is still being encoded or sent it waits before pausing, so the epoch grows instead of memory
///   (backpressure). When the backup is lost it reconnects (within ``PrimaryConfiguration/reconnectWindow``)
///   and synchronises the new session with what differs;
/// - sender: encodes queued captures in order and sends them as epoch (or pre-copy) frames;
/// - acknowledgements: reads the backup's acks and publishes each committed epoch (``commits()``,
///   ``waitForCommit(_:timeout:)``), the moment output of that epoch may be released;
/// - heartbeat: sends a heartbeat whenever nothing else went out for `heartbeatInterval`.
public final class Primary: @unchecked Sendable {
    /// Sees each capture on the sender thread right after it was encoded, with the epoch's statistics, before
    /// the capture's buffer is reused: for tools that compare modes on the very same epochs
    /// (``PrimaryEngine/encodeShadow(of:)``). It must not keep the capture, and it delays the sender.
    public typealias CaptureObserver = @Sendable (EpochCapture, EpochStatistics) -> Void

    public let regions: [GuestMemory]
    public let configuration: PrimaryConfiguration
    let hooks: PauseHooks
    let observer: CaptureObserver?
    let logger: Logger
    let metrics: PrimaryMetrics
    /// The session's engine; replaced (with the session threads stopped) when a new session starts.
    var engine: PrimaryEngine
    let trackers: [any DirtyTracker]
    /// The session's backups, by their index in ``PrimaryConfiguration/backups`` (nil: not connected).
    /// Replaced whole only with the session threads stopped; a backup rejoining a running session fills its slot.
    let links: PthreadLock<[BackupLink?]>
    /// With several backups: the session's frames, sent to each backup by its writer and kept for those that
    /// fall behind or return (nil with one backup, whose frames the sender sends itself). Replaced only with
    /// the session threads stopped.
    var backlog: EpochBacklog?
    /// With several backups: the session's stream (``Hello/stream``); nil with one backup.
    var sessionStream: [UInt8]?
    /// With several backups: what each backup reached at the session's start held then (its next epoch and
    /// summary). One that returns holding exactly that again (it lost the session before any epoch of it and
    /// undid its pre-copy) catches up from the session's first frame.
    var heldAtSessionStart: [Int: (nextEpoch: UInt64, summary: ReplicaSummary?)] = [:]
    /// Counts sessions opened and closed: a thread of an older session that sees it change ends.
    let sessionGeneration = Atomic<Int>(0)
    /// The threads of the current session (sender, and per backup acknowledgements, heartbeats, writer,
    /// rejoin), joined when it closes.
    let sessionThreads = PthreadLock<[JoinableThread]>([])
    /// What each backup acknowledged and what the commit policy counts as committed.
    let commitTracker: CommitTracker

    struct Queues {
        var free: [EpochCapture]
        /// The most items and arena bytes an epoch (not a pre-copy step) has captured: captures are grown to
        /// more than that when released.
        var largestEpoch = (items: 0, bytes: 0)
        var ready: [EpochCapture] = []
        var senderShouldExit = false
    }
    let queues: PthreadLock<Queues>
    let freeCount: DispatchSemaphore
    let readyCount = DispatchSemaphore(value: 0)

    struct Shared {
        var statistics = ReplicationStatistics()
        /// Why replication stopped for good.
        var failure: Error?
        /// Why the current session ended (the connection failed); the checkpoint thread reconnects.
        var sessionFailure: Error?
    }
    let shared = PthreadLock(Shared())
    /// The epoch loop runs (cleared by stop() and by a failure).
    let running = Atomic<Bool>(false)
    /// A session is open and its threads serve it (cleared when this side closes it).
    let connected = Atomic<Bool>(false)
    /// The epoch after the last one captured (0 before the first): ``epochCoveringWritesSoFar``, read by
    /// every client write of a guest with output commit, so a plain atomic and not the statistics' lock.
    let epochAfterLastCapture = Atomic<UInt64>(0)
    let threads = PthreadLock<[String: JoinableThread]>([:])
    var dirty: [DirtyPageSet]

    /// Prepares replication of `regions` (nothing is tracked or sent until ``start()``).
    ///
    /// - Throws: ``FGBIError`` for a bad configuration, ``SystemError`` or ``FGBIError/unsupported(feature:neededBy:hint:)``
    ///   when the tracker cannot run here.
    public init(regions: [GuestMemory], configuration: PrimaryConfiguration, hooks: PauseHooks = .none,
                observer: CaptureObserver? = nil, logger: Logger = Logger(label: "fgbi.primary")) throws {
        guard !configuration.backups.isEmpty else { throw FGBIError.invalidArgument("a primary needs at least one backup") }
        try configuration.commitPolicy.check(backups: configuration.backups.count)
        guard configuration.catchUpBytes >= 1 << 20 else { throw FGBIError.invalidArgument("catchUpBytes must be at least 1 MiB") }
        guard configuration.captureBuffers >= 1 else { throw FGBIError.invalidArgument("captureBuffers must be at least 1") }
        guard configuration.precopy.chunkPages >= 1, configuration.precopy.maximumRounds >= 1 else {
            throw FGBIError.invalidArgument("pre-copy needs chunks of at least 1 page and at least 1 round")
        }
        self.regions = regions
        self.configuration = configuration
        self.hooks = hooks
        self.observer = observer
        self.logger = logger
        metrics = PrimaryMetrics(guest: configuration.guestName)
        links = PthreadLock(Array(repeating: nil, count: configuration.backups.count))
        commitTracker = CommitTracker(policy: configuration.commitPolicy, backups: configuration.backups.count)
        engine = try PrimaryEngine(regions: regions, configuration: configuration.engine,
                                   firstEpoch: configuration.continuesAfterEpoch.map { $0 + 1 } ?? 0)
        let hotPages = configuration.engine.mode.sendsOnlyChanges ? configuration.hotPages : .off
        trackers = try regions.map { try configuration.tracker.makeTracker(for: $0, hotPages: hotPages) }
        let metadataBytes = engine.metadataBytes
        shared.withLock { $0.statistics.metadataBytes = metadataBytes }
        // The engine reports unchanged pages only where a tracker listens (hot pages' early end of leases).
        let listens = configuration.tracker == .uffdAsync && hotPages.isEnabled && hotPages.demotesUnchanged
        queues = PthreadLock(Queues(free: (0..<configuration.captureBuffers).map { _ in
            let capture = EpochCapture()
            capture.recordsUnchangedPages = listens
            return capture
        }))
        // Created at zero and signalled up: libdispatch traps when a semaphore is freed below its initial
        // value, which happens when replication stops with captures still in flight.
        freeCount = DispatchSemaphore(value: 0)
        for _ in 0..<configuration.captureBuffers { freeCount.signal() }
        dirty = regions.map { region in
            var set = DirtyPageSet()
            set.reserveCapacity(runs: min(region.pageCount, 1 << 16))
            return set
        }
    }

    deinit {
        if running.load(ordering: .acquiring) || connected.load(ordering: .acquiring) { _ = try? stop(finalEpoch: false) }
    }

    /// Connects to the backup, authenticates, starts tracking and the epoch loop. The first session
    /// synchronises the backup (pre-copy rounds, or one full epoch) before the regular epochs.
    ///
    /// A backup that cannot be reached yet, or drops the connection during the handshake, is tried again
    /// for up to ``PrimaryConfiguration/reconnectWindow``, as a lost one is.
    ///
    /// - Throws: ``WireError`` when the backup refuses (layout, key) or the handshake fails; ``SystemError``
    ///   when it cannot be reached within the window.
    public func start() throws {
        guard configuration.key != nil || configuration.backup.isLoopback else {
            throw WireError.keyRequired("the backup \(configuration.backup) is not on loopback")
        }
        guard configuration.key != nil || !configuration.encrypt else {
            throw WireError.keyRequired("encryption was asked for")
        }
        if let authority = configuration.authority {
            guard MonotonicClock.nanoseconds() < authority.validUntilNanoseconds else {
                throw LostPrimaryship(term: authority.term, lastCommittedEpoch: nil, reason: "not held at start: \(authority.lossReason)")
            }
        } else {
            logger.notice("no coordinator: primaryship rests on heartbeats alone, which is not partition-safe (a cut link can leave two primaries); in production give it a coordinator (`--etcd`, `PrimaryConfiguration.authority`)")
        }
        try openFirstSession()
        do {
            for tracker in trackers { try tracker.start() }
            running.store(true, ordering: .releasing)
            try spawn("fgbi-checkpoint") { [self] in sessionLoop() }
            if configuration.authority != nil { try spawn("fgbi-authority") { [self] in authorityLoop() } }
        } catch {
            // Undo what started: threads see the failure and end, trackers stop, the connection closes.
            fail(error)
            _ = try? stop(finalEpoch: false)
            throw error
        }
    }

    func spawn(_ name: String, _ body: @escaping @Sendable () -> Void) throws {
        let thread = try JoinableThread(name: name, body)
        threads.withLock { $0[name] = thread }
    }

    func join(_ name: String) {
        let thread = threads.withLock { $0.removeValue(forKey: name) }
        thread?.join()
    }


    // MARK: - Output commit and status

    /// The last epoch committed (acknowledged as applied by the backup, or by as many backups as the
    /// ``PrimaryConfiguration/commitPolicy`` asks), or nil before the first.
    public var committedEpoch: UInt64? { commitTracker.committed }

    /// Counters and recent pause times.
    public var statistics: ReplicationStatistics {
        var statistics = shared.withLock { $0.statistics }
        statistics.backupAcknowledgements = commitTracker.acknowledged
        statistics.backupsConnected = links.withLock { $0.filter { $0?.isOpen.load(ordering: .acquiring) ?? false }.count }
        return statistics
    }

    /// Why replication stopped on its own (the backup was lost or refused), or nil.
    public var failure: Error? { shared.withLock { $0.failure } }

    /// Whether the epoch loop is running.
    public var isRunning: Bool { running.load(ordering: .acquiring) }

    /// Every epoch committed from now on, in order. Output produced during epoch N may be released once N
    /// (or a later epoch) arrives here. The stream ends when replication stops.
    public func commits() -> AsyncStream<UInt64> { commitTracker.commits() }

    /// The epoch whose commit covers every write the guest made before this call, for output commit: call it
    /// after the writes an output depends on (with the guest's writers outside their pause gate), then
    /// release the output once ``waitForCommit(_:timeout:)`` (or ``commits()``) reaches it. Conservative:
    /// it may name one epoch more than needed, never one too few.
    public var epochCoveringWritesSoFar: UInt64 {
        epochAfterLastCapture.load(ordering: .acquiring)
    }

    /// Blocks until `epoch` (or a later one) is committed; false on timeout or failure.
    public func waitForCommit(_ epoch: UInt64, timeout: Duration) -> Bool {
        waitForCommit(epoch, timeout: timeout, orSessionFailure: false)
    }

    /// As ``waitForCommit(_:timeout:)``; with `orSessionFailure`, also gives up when the session fails (stop()
    /// does not reconnect, so its final epoch can no longer commit then).
    private func waitForCommit(_ epoch: UInt64, timeout: Duration, orSessionFailure: Bool) -> Bool {
        commitTracker.wait(for: epoch, deadlineNanoseconds: MonotonicClock.nanoseconds() + timeout.wholeNanoseconds) {
            shared.withLock { $0.failure != nil || (orSessionFailure && $0.sessionFailure != nil) }
        }
    }

    /// Stops replication. With `finalEpoch`, first cuts one last epoch (everything written up to now) and
    /// waits until the backup acknowledges it. Tells the backup replication ended on purpose, then releases
    /// the connection and the trackers. Returns the last committed epoch.
    ///
    /// - Throws: the failure that stopped replication earlier, if any (or the session's, when stop() finds
    ///   the backup lost and not yet back); or the final epoch's error.
    @discardableResult
    public func stop(finalEpoch: Bool = true) throws -> UInt64? {
        let wasRunning = running.exchange(false, ordering: .acquiringAndReleasing)
        join("fgbi-checkpoint")
        join("fgbi-authority")
        var finalError: Error? = shared.withLock { $0.failure ?? $0.sessionFailure }
        if finalError == nil, !connected.load(ordering: .acquiring) {
            finalError = WireError.unexpected("replication stopped while no backup was connected")
        }
        if wasRunning, finalEpoch, finalError == nil {
            do {
                let last = try checkpoint()
                if !waitForCommit(last, timeout: configuration.backupTimeout, orSessionFailure: true) {
                    let failure: Error? = shared.withLock { $0.failure ?? $0.sessionFailure }
                    finalError = failure ?? WireError.timedOut(milliseconds: configuration.backupTimeout.wholeMilliseconds)
                }
            } catch {
                finalError = error
            }
        }
        // On failure the sender may be stuck in a send the backup no longer reads: closing frees it.
        if finalError != nil { closeLinks() }
        if finalError == nil { sayGoodbye() }
        closeSession()
        for tracker in trackers { try? tracker.stop() }
        if let finalError {
            shared.withLock { if $0.failure == nil { $0.failure = finalError } }
        }
        commitTracker.finish()
        if let finalError { throw finalError }
        return committedEpoch
    }
}
