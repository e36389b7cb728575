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
    /// The session's connection; replaced only with the session threads stopped.
    let link = PthreadLock<FrameConnection?>(nil)

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
        var continuations: [Int: AsyncStream<UInt64>.Continuation] = [:]
        var nextContinuation = 0
    }
    let shared = PthreadLock(Shared())
    /// The epoch loop runs (cleared by stop() and by a failure).
    let running = Atomic<Bool>(false)
    /// A session is open and its threads serve it (cleared when this side closes it).
    let connected = Atomic<Bool>(false)
    let lastSendNanoseconds = Atomic<UInt64>(0)
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

    /// The last epoch the backup acknowledged as applied, or nil before the first.
    public var committedEpoch: UInt64? { shared.withLock { $0.statistics.lastCommittedEpoch } }

    /// Counters and recent pause times.
    public var statistics: ReplicationStatistics { shared.withLock { $0.statistics } }

    /// Why replication stopped on its own (the backup was lost or refused), or nil.
    public var failure: Error? { shared.withLock { $0.failure } }

    /// Whether the epoch loop is running.
    public var isRunning: Bool { running.load(ordering: .acquiring) }

    /// Every epoch the backup acknowledges from now on, in order. Output produced during epoch N may be
    /// released once N (or a later epoch) arrives here. The stream ends when replication stops.
    public func commits() -> AsyncStream<UInt64> {
        AsyncStream { continuation in
            let id = shared.withLock { shared -> Int in
                shared.nextContinuation += 1
                shared.continuations[shared.nextContinuation] = continuation
                return shared.nextContinuation
            }
            continuation.onTermination = { [weak self] _ in
                _ = self?.shared.withLock { $0.continuations.removeValue(forKey: id) }
            }
        }
    }

    /// The epoch whose commit covers every write the guest made before this call, for output commit: call it
    /// after the writes an output depends on (with the guest's writers outside their pause gate), then
    /// release the output once ``waitForCommit(_:timeout:)`` (or ``commits()``) reaches it. Conservative:
    /// it may name one epoch more than needed, never one too few.
    public var epochCoveringWritesSoFar: UInt64 {
        epochAfterLastCapture.load(ordering: .acquiring)
    }

    /// Blocks until the backup has acknowledged `epoch` (or a later one); false on timeout or failure.
    public func waitForCommit(_ epoch: UInt64, timeout: Duration) -> Bool {
        waitForCommit(epoch, timeout: timeout, orSessionFailure: false)
    }

    /// As ``waitForCommit(_:timeout:)``; with `orSessionFailure`, also gives up when the session fails (stop()
    /// does not reconnect, so its final epoch can no longer commit then).
    private func waitForCommit(_ epoch: UInt64, timeout: Duration, orSessionFailure: Bool) -> Bool {
        let deadline = MonotonicClock.nanoseconds() + timeout.wholeNanoseconds
        while MonotonicClock.nanoseconds() < deadline {
            let (committed, failed) = shared.withLock {
                ($0.statistics.lastCommittedEpoch, $0.failure != nil || (orSessionFailure && $0.sessionFailure != nil))
            }
            if let committed, committed >= epoch { return true }
            if failed { return false }
            MonotonicClock.sleep(nanoseconds: 200_000)
        }
        return false
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
        let connection = link.withLock { $0 }
        // On failure the sender may be stuck in a send the backup no longer reads: closing frees it.
        if finalError != nil { connection?.close() }
        queues.withLock { $0.senderShouldExit = true }
        readyCount.signal()
        join("fgbi-sender")
        if finalError == nil, let connection {
            // Bye, then FIN, then read until the backup closes: closing with its heartbeats unread would
            // reset the connection, and a reset can destroy the bye before the backup reads it.
            try? connection.send(.bye)
            connected.store(false, ordering: .releasing)
            connection.finishSending()
            join("fgbi-acks")
        }
        closeSession()
        for tracker in trackers { try? tracker.stop() }
        if let finalError {
            shared.withLock { if $0.failure == nil { $0.failure = finalError } }
        }
        finishCommits()
        if let finalError { throw finalError }
        return committedEpoch
    }
}
