import Logging
import Synchronization

/// The primary end of FGBI replication: tracks the regions, cuts epochs, and streams them to its backups.
///
/// Three parts with narrow interfaces, which this class ties together and exposes:
/// - the epoch pipeline (`EpochPipeline`): the checkpoint (pause the guest, collect the written pages,
///   capture what changed, resume), the pre-copy rounds of a synchronisation, and the sender that encodes each
///   capture; captures go round a fixed set of buffers (`CaptureQueue`), so a sender that falls behind makes
///   the next checkpoint wait (backpressure) instead of memory growing;
/// - the session (`PrimarySession`, opened and run by Primary+Sessions.swift and Primary+Links.swift): connect
///   and shake hands with each backup, deliver frames, reconnect within ``PrimaryConfiguration/reconnectWindow``
///   and resynchronise with what differs, and with several backups drop one and take it back;
/// - commit tracking (`CommitTracker`): acknowledgements counted against ``PrimaryConfiguration/commitPolicy``,
///   ``commits()`` and ``waitForCommit(_:timeout:)``, the moment output of an epoch may be released.
///
/// Threads, each with one job: checkpoint (synchronise, then an epoch every `epochInterval`; reconnects when
/// the session fails), sender (the pipeline's), per backup acknowledgements and heartbeats (and with several
/// backups a writer, and a rejoin thread while one is lost), and with an ``PrimaryConfiguration/authority`` a
/// watch on the primaryship.
public final class Primary: @unchecked Sendable {
    /// Sees each capture on the sender thread right after it was encoded, with the epoch's statistics, before
    /// the capture's buffer is reused: for tools that compare modes on the very same epochs
    /// (``PrimaryEngine/encodeShadow(of:)``). It must not keep the capture, and it delays the sender.
    public typealias CaptureObserver = @Sendable (EpochCapture, EpochStatistics) -> Void

    public let regions: [GuestMemory]
    public let configuration: PrimaryConfiguration
    let logger: Logger
    let metrics: PrimaryMetrics
    /// Counters, and why replication or the session stopped.
    let shared = PthreadLock(PrimaryState())
    /// The epoch loop runs (cleared by stop() and by a failure).
    let running = AtomicFlag(false)
    /// A session is open and its threads serve it (cleared when this side closes it).
    let connected = Atomic<Bool>(false)
    /// Pause, collect, capture, resume; pre-copy; encode and hand to ``deliver(_:epoch:_:)``.
    let pipeline: EpochPipeline
    /// What each backup acknowledged and what the commit policy counts as committed.
    let commitTracker: CommitTracker
    /// The backups of the current session, the frames kept for them and the session's threads.
    let session: PrimarySession
    /// The checkpoint, sender and authority threads, by name.
    let threads = PthreadLock<[String: JoinableThread]>([:])

    /// Prepares replication of `regions` (nothing is tracked or sent until ``start()``).
    ///
    /// - Throws: ``FGBIError`` for a bad configuration, ``SystemError`` or
    ///   ``FGBIError/unsupported(feature:neededBy:hint:)``
    ///   when the tracker cannot run here.
    public init(
        regions: [GuestMemory], configuration: PrimaryConfiguration, hooks: PauseHooks = .none,
        observer: CaptureObserver? = nil, logger: Logger = Logger(label: "fgbi.primary")
    ) throws {
        guard !configuration.backups.isEmpty else {
            throw FGBIError.invalidArgument("a primary needs at least one backup")
        }
        try configuration.commitPolicy.check(backups: configuration.backups.count)
        guard configuration.catchUpBytes >= 1 << 20 else {
            throw FGBIError.invalidArgument("catchUpBytes must be at least 1 MiB")
        }
        guard configuration.captureBuffers >= 1 else {
            throw FGBIError.invalidArgument("captureBuffers must be at least 1")
        }
        guard configuration.precopy.chunkPages >= 1, configuration.precopy.maximumRounds >= 1 else {
            throw FGBIError.invalidArgument("pre-copy needs chunks of at least 1 page and at least 1 round")
        }
        self.regions = regions
        self.configuration = configuration
        self.logger = logger
        metrics = PrimaryMetrics(guest: configuration.guestName)
        session = PrimarySession(backups: configuration.backups.count)
        let backups = configuration.backups.count
        let quorum = configuration.commitPolicy.required(of: backups)
        commitTracker = CommitTracker(
            policy: configuration.commitPolicy, backups: backups,
            beforeFirstCommit: configuration.authority.map { authority in
                {
                    // Recording may take an etcd round trip: the right must still hold once it is done.
                    authority.recordFirstCommit(backups: backups, quorum: quorum)
                        && MonotonicClock.nanoseconds() < authority.validUntilNanoseconds
                }
            })
        pipeline = try EpochPipeline(
            regions: regions, configuration: configuration, hooks: hooks, observer: observer,
            logger: logger, metrics: metrics, shared: shared, running: running)
        let metadataBytes = pipeline.engine.metadataBytes
        shared.withLock { $0.statistics.metadataBytes = metadataBytes }
    }

    deinit {
        if running.load() || connected.load(ordering: .acquiring) { _ = try? stop(finalEpoch: false) }
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
                throw LostPrimaryship(
                    term: authority.term, lastCommittedEpoch: nil, reason: "not held at start: \(authority.lossReason)")
            }
        } else {
            logger.notice(
                """
                no coordinator: primaryship rests on heartbeats alone, which is not partition-safe (a cut link \
                can leave two primaries); in production give it a coordinator (`--etcd`, \
                `PrimaryConfiguration.authority`)
                """
            )
        }
        try openFirstSession()
        do {
            for tracker in pipeline.trackers { try tracker.start() }
            running.store(true)
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
        statistics.backupsConnected = session.connected.count
        return statistics
    }

    /// Why replication stopped on its own (the backup was lost or refused), or nil.
    public var failure: Error? { shared.withLock { $0.failure } }

    /// Whether the epoch loop is running.
    public var isRunning: Bool { running.load() }

    /// Every epoch committed from now on, in order. Output produced during epoch N may be released once N
    /// (or a later epoch) arrives here. The stream ends when replication stops.
    public func commits() -> AsyncStream<UInt64> { commitTracker.commits() }

    /// The epoch whose commit covers every write the guest made before this call, for output commit: call it
    /// after the writes an output depends on (with the guest's writers outside their pause gate), then
    /// release the output once ``waitForCommit(_:timeout:)`` (or ``commits()``) reaches it. Conservative:
    /// it may name one epoch more than needed, never one too few.
    public var epochCoveringWritesSoFar: UInt64 {
        pipeline.epochAfterLastCapture.load(ordering: .acquiring)
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
        let wasRunning = running.exchange(false)
        join("fgbi-checkpoint")
        join("fgbi-authority")
        var finalError: Error? = shared.withLock { $0.failure ?? $0.sessionFailure }
        if finalError == nil, !connected.load(ordering: .acquiring) {
            finalError = WireError.unexpected("replication stopped while no backup was connected")
        }
        if wasRunning, finalEpoch, finalError == nil {
            do {
                let last = try pipeline.checkpoint()
                if !waitForCommit(last, timeout: configuration.backupTimeout, orSessionFailure: true) {
                    let failure: Error? = shared.withLock { $0.failure ?? $0.sessionFailure }
                    finalError =
                        failure ?? WireError.timedOut(milliseconds: configuration.backupTimeout.wholeMilliseconds)
                }
            } catch {
                finalError = error
            }
        }
        // On failure the sender may be stuck in a send the backup no longer reads: closing frees it.
        if finalError != nil { session.closeLinks() }
        if finalError == nil { sayGoodbye() }
        closeSession()
        for tracker in pipeline.trackers { try? tracker.stop() }
        if let finalError {
            shared.withLock { if $0.failure == nil { $0.failure = finalError } }
        }
        commitTracker.finish()
        if let finalError { throw finalError }
        return committedEpoch
    }
}
