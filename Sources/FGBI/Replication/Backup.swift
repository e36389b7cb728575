import Logging
import Synchronization

/// The backup end of FGBI replication: listens for one primary, applies each epoch atomically to its
/// replica, acknowledges it, and fails over when the primary goes silent.
///
/// The acknowledgement for epoch N leaves only after N is applied in full (and, with a state directory,
/// journaled on disk), so a primary that releases output on ``Primary/commits()`` never releases output the
/// backup could lose. A backup that holds an epoch (from an earlier session, or loaded from its state
/// directory) sends the primary a `ReplicaSummary` and is resynchronised with only what differs; the
/// pre-copy deltas of a synchronisation are taken back if the session ends before its epoch commits. On
/// failover the replica stays at the last committed epoch, is written to ``BackupConfiguration/imagePath``
/// when set, and ``serve()`` returns ``BackupOutcome/failedOver(lastEpoch:reason:)``.
public final class Backup: @unchecked Sendable {
    public let replica: Replica
    public let configuration: BackupConfiguration
    private let listener: Socket
    private let connection = PthreadLock<FrameConnection?>(nil)
    private let stopping = Atomic<Bool>(false)
    let logger: Logger
    let metrics = BackupMetrics()
    let store: ReplicaStore?
    let counters = PthreadLock(BackupStatistics())
    /// The newest fencing term accepted (from the state directory, then each session): written by the serving
    /// thread, read by the handshake threads.
    let knownTerm = Atomic<UInt64>(0)
    /// Accepts connections and runs their handshakes concurrently, bounded (``HandshakeGate``).
    private let gate: HandshakeGate<Session>

    /// Loads the state directory when one is configured (so a restarted backup resumes at its last
    /// committed epoch), then binds the listening socket (so ``port`` is known before ``serve()``).
    ///
    /// - Throws: ``FGBIError/invalidState(_:)`` for a state directory of another layout or damaged;
    ///   ``FGBIError/invalidArgument(_:)`` for an image directory others can write (`PrivateFile`);
    ///   ``SystemError`` when the address cannot be bound.
    ///
    /// `holding`: what the regions already hold (``HeldContent``): a former primary rejoining as the backup
    /// of its successor keeps its memory, sends page hashes, and receives only the pages that differ (not a
    /// full copy). Not with a state directory, which says itself what it holds.
    public init(regions: [GuestMemory], geometry: BlockGeometry, configuration: BackupConfiguration,
                logger: Logger = Logger(label: "fgbi.backup"), holding held: HeldContent? = nil) throws {
        if let image = configuration.imagePath { try PrivateFile.checkDirectory(holding: image, what: "failover image") }
        replica = Replica(regions: regions, geometry: geometry)
        self.configuration = configuration
        self.logger = logger
        if let held {
            guard configuration.stateDirectory == nil else {
                throw FGBIError.invalidArgument("a backup holding memory already cannot also load a state directory")
            }
            let epoch: UInt64
            switch held {
            case .committedEpoch(let committed): epoch = committed
            case .formerPrimary(let last):
                epoch = last ?? 0
                vouchesForReplica.store(false, ordering: .releasing)
            }
            replica.adopt(epoch: epoch)
            publishedEpoch.store(epoch, ordering: .releasing)
        }
        if let directory = configuration.stateDirectory {
            let store = try ReplicaStore(directory: directory, syncsEachEpoch: configuration.syncEachEpoch)
            if let epoch = try store.load(into: replica) {
                logger.notice("loaded epoch \(epoch) from \(directory) (journal \(store.journalBytes) bytes)")
            }
            self.store = store
            knownTerm.store(store.highestTerm, ordering: .releasing)
            publishedEpoch.store(replica.lastEpoch ?? .max, ordering: .releasing)
        } else {
            store = nil
        }
        let listener = try Socket.listen(on: configuration.listen)
        self.listener = listener
        let refusedPeers = metrics.refusedPeers
        gate = try HandshakeGate(listener: listener, limits: configuration.handshakeLimits, logger: logger,
                                 refused: { refusedPeers.increment() })
    }

    /// ``init(regions:geometry:configuration:logger:holding:)`` with the geometry of
    /// ``BackupConfiguration/blockSize`` in pages of ``GuestMemory/pageSize``.
    ///
    /// - Throws: as the initialiser given a geometry, and ``FGBIError/invalidArgument(_:)`` for a block size
    ///   other than those of ``BlockGeometry/supportedBlockSizes``.
    public convenience init(regions: [GuestMemory], configuration: BackupConfiguration,
                            logger: Logger = Logger(label: "fgbi.backup"), holding held: HeldContent? = nil) throws {
        try self.init(regions: regions, geometry: try BlockGeometry(blockSize: configuration.blockSize), configuration: configuration,
                      logger: logger, holding: held)
    }

    /// Counters of what this backup received and did.
    public var statistics: BackupStatistics { counters.withLock { $0 } }

    /// Handshakes in progress now (strangers' connections included), for tests and diagnostics.
    var pendingHandshakes: Int { gate.pendingCount }

    /// The port the backup listens on.
    public var port: UInt16 { listener.localPort }

    /// The last epoch applied and vouched for; safe to read from any thread while ``serve()`` runs. Nil
    /// before one, and for a former primary's memory (``HeldContent/formerPrimary(lastEpoch:)``) until it
    /// commits an epoch of its new primary.
    public var lastEpoch: UInt64? {
        vouchesForReplica.load(ordering: .acquiring) ? heldEpoch : nil
    }

    /// The epoch number the regions' content stands at, vouched for or not: what the handshake and the summary
    /// tell the primary, so it resynchronises with what differs and numbers on from it.
    var heldEpoch: UInt64? {
        let epoch = publishedEpoch.load(ordering: .acquiring)
        return epoch == .max ? nil : epoch
    }

    /// False while the regions hold a former primary's memory that no epoch of the current primary has
    /// replaced yet (``HeldContent/formerPrimary(lastEpoch:)``): such a backup never fails over.
    let vouchesForReplica = Atomic<Bool>(true)

    /// ``lastEpoch`` for other threads: the replica's own is the serving thread's (UInt64.max: none; no
    /// delta may carry that epoch).
    private let publishedEpoch = Atomic<UInt64>(.max)

    /// The stream (``Hello/stream``) of the epoch the replica holds, when its primary replicates to several
    /// backups: told to a returning primary so it can catch this backup up from the epochs it kept. Written by
    /// the serving thread, read by the handshake threads.
    let heldStream = PthreadLock<[UInt8]?>(nil)
    /// The current session's stream and group of backups (serving thread only); nil with a primary that has
    /// one backup.
    var sessionStream: [UInt8]?
    private var sessionGroup: BackupGroup?
    /// The last run of pages whose block hashes this session asked for (requests come in ascending order).
    var lastBlockHashRun: BlockHashExchange.Run?

    func publishEpoch() {
        publishedEpoch.store(replica.lastEpoch ?? .max, ordering: .releasing)
    }

    /// Serves primaries until one finishes or fails. A peer that fails the handshake (no key, wrong key,
    /// other memory layout, an older fencing term) is refused with a log line and the backup goes on
    /// listening, its replica untouched.
    ///
    /// With an ``BackupConfiguration/arbiter`` a lost primary is not failed over at once: the backup asks the
    /// arbiter every ``FailoverArbiter/pollInterval``, and meanwhile accepts the primary again if it returns
    /// (a cut link healed) until the arbiter promotes this backup or tells it to stand down.
    public func serve() throws -> BackupOutcome {
        if configuration.arbiter == nil {
            logger.notice("no coordinator: failing over on heartbeats alone, which is not partition-safe (a cut link can leave two primaries); in production give it a coordinator (`--etcd`, `BackupConfiguration.arbiter`)")
        }
        /// Why the primary was lost, while waiting for the arbiter, and the group of backups it had.
        var lost: String?
        var lostGroup: BackupGroup?
        var lastWait = ""
        while true {
            /// How long to wait for a primary: for ever, or, while the coordinator is asked, until it is asked again.
            var waitMilliseconds: Int?
            if let reason = lost, let arbiter = configuration.arbiter {
                let decision = lostGroup.map { arbiter.decide(lastEpoch: lastEpoch, group: $0, lostTerm: knownTerm.load(ordering: .acquiring)) }
                    ?? arbiter.decide(lastEpoch: lastEpoch)
                switch decision {
                case .promote(let term):
                    return try failOver(reason: reason, term: term)
                case .standDown(let why) where lostGroup != nil:
                    // One of several backups: another is the primary now, and this one serves on as its backup.
                    logger.notice("not taking over: \(why); serving on as a backup of the next primary (epoch \(lastEpoch.map(String.init) ?? "none"))")
                    lost = nil
                    lostGroup = nil
                    continue
                case .standDown(let why):
                    logger.critical("standing down: \(why)")
                    return .stoodDown(lastEpoch: lastEpoch, reason: why)
                case .wait(let why):
                    if why != lastWait { logger.warning("not taking over yet: \(why)") }
                    lastWait = why
                }
                waitMilliseconds = arbiter.pollInterval.wholeMilliseconds
            }
            let session: Session?
            do {
                session = try gate.next(timeoutMilliseconds: waitMilliseconds) { [self] attempt, peer, peerIsLoopback in
                    try handshake(attempt, peer: peer, peerIsLoopback: peerIsLoopback)
                }
            } catch {
                if stopping.load(ordering: .acquiring) { return .primaryFinished(lastEpoch: lastEpoch) }
                throw error
            }
            if stopping.load(ordering: .acquiring) {
                session?.connection.close()
                return .primaryFinished(lastEpoch: lastEpoch)
            }
            // No primary within the coordinator's poll interval: ask it again.
            guard let session else { continue }
            guard let connection = begin(session) else {
                if stopping.load(ordering: .acquiring) { return .primaryFinished(lastEpoch: lastEpoch) }
                continue
            }
            switch try replicate(connection) {
            case .finished:
                return .primaryFinished(lastEpoch: lastEpoch)
            case .lost(let reason):
                replica.rollBack()
                connection.close()
                // stop() closed the connection under a send or a receive: an end on purpose, not a lost primary.
                if stopping.load(ordering: .acquiring) { return .primaryFinished(lastEpoch: lastEpoch) }
                guard vouchesForReplica.load(ordering: .acquiring) else {
                    let why = "the primary was lost (\(reason)) before this former primary's memory was resynchronised: it holds no committed epoch to take over with"
                    logger.critical("standing down: \(why)")
                    return .stoodDown(lastEpoch: nil, reason: why)
                }
                if sessionGroup != nil && configuration.arbiter == nil {
                    // One of several backups: which of them holds every committed epoch only a comparison
                    // among them (through a coordinator) can tell, so none takes over on its own.
                    logger.warning("primary lost (\(reason)); one of several backups with no coordinator, so not taking over: waiting for a primary (epoch \(lastEpoch.map(String.init) ?? "none"))")
                    continue
                }
                guard configuration.arbiter != nil else { return try failOver(reason: reason, term: nil) }
                lostGroup = sessionGroup
                if lost == nil { metrics.primaryLosses.increment() }
                logger.warning("primary lost (\(reason)); asking the coordinator before taking over at epoch \(lastEpoch.map(String.init) ?? "none")")
                lost = reason
                lastWait = ""
            }
        }
    }

    /// Starts replicating with a primary that completed its handshake: records its fencing term, and when this
    /// backup holds an epoch sends the page hashes it resynchronises from. Returns the connection, or nil
    /// (closed, with a log line) when the session cannot start or this backup is stopping.
    private func begin(_ session: Session) -> FrameConnection? {
        let (connection, hello, term, peer) = (session.connection, session.hello, session.term, session.peer)
        self.connection.withLock { $0 = connection }
        do {
            if term > knownTerm.load(ordering: .acquiring) {
                // Durable before the session goes on: a restart that cannot ask the coordinator still fences.
                try store?.recordTerm(term)
                knownTerm.store(term, ordering: .releasing)
            }
        } catch {
            logger.warning("refused \(peer): cannot record its term \(term): \(error)")
            metrics.refusedPeers.increment()
            connection.close()
            return nil
        }
        let security = configuration.key == nil ? "no key, loopback" : hello.wantsEncryption ? "authenticated, encrypted" : "authenticated"
        logger.info("primary \(peer) connected (\(hello.mode) mode, \(security)\(configuration.arbiter == nil ? "" : ", term \(term)"))")
        if stopping.load(ordering: .acquiring) {
            connection.close()
            return nil
        }
        replica.beginSession()
        sessionStream = hello.stream
        sessionGroup = hello.group
        lastBlockHashRun = nil
        if let held = heldEpoch {
            do {
                for payload in replica.summary.framePayloads() { try connection.send(.summary, payload) }
                logger.info("holding epoch \(held): sent page hashes so \(peer) resynchronises with what differs")
            } catch {
                logger.warning("lost \(peer) while sending the summary: \(error)")
                connection.close()
                return nil
            }
        }
        return connection
    }

    /// How a primary's session ended.
    enum SessionEnd {
        /// It said bye (or this backup was stopped): replication ended on purpose.
        case finished
        /// It went silent, the connection broke, or it sent something refused.
        case lost(String)
    }

    private func replicate(_ connection: FrameConnection) throws -> SessionEnd {
        connection.setReceiveTimeout(milliseconds: configuration.primaryTimeout.wholeMilliseconds)
        while true {
            let frame: Frame
            do {
                frame = try connection.receive()
            } catch {
                if stopping.load(ordering: .acquiring) {
                    replica.rollBack()
                    return .finished
                }
                return .lost("\(error)")
            }
            switch frame.type {
            case .epoch, .precopy:
                if let end = try receiveDelta(frame, on: connection) { return end }
            case .blockHashRequest:
                do {
                    try answerBlockHashRequest(frame.payload, on: connection)
                } catch {
                    try? connection.send(.error, Array("\(error)".utf8))
                    return .lost("\(error)")
                }
            case .heartbeat:
                // Answered, so the primary hears from a live backup while no epoch is being acknowledged
                // (during a long synchronisation, say).
                do {
                    try connection.send(.heartbeat, [UInt8](repeating: 0, count: 8))
                } catch {
                    return .lost("\(error)")
                }
                continue
            case .bye:
                replica.rollBack()
                logger.info("primary finished after epoch \(lastEpoch.map(String.init) ?? "none")")
                connection.close()
                return .finished
            case .error:
                return .lost("the primary reported: \(PeerText.printable(frame.payload))")
            default:
                return .lost("unexpected \(frame.type) frame from the primary")
            }
        }
    }

    /// Freezes the replica at the last committed epoch and writes the image: heartbeat-only (`term` nil) or
    /// promoted by the arbiter with a new fencing term.
    private func failOver(reason: String, term: UInt64?) throws -> BackupOutcome {
        replica.rollBack()
        metrics.failovers.increment()
        let at = lastEpoch.map(String.init) ?? "none"
        if let term {
            logger.critical("promoted to primary with term \(term) at epoch \(at) (the old primary: \(reason))")
        } else {
            logger.critical("primary lost (\(reason)); failing over at epoch \(at)")
        }
        connection.withLock { $0?.close() }
        if let path = configuration.imagePath {
            try ReplicaImage.write(replica.regions, geometry: replica.geometry, epoch: lastEpoch, to: path)
            logger.notice("replica written to \(path) (journal \(path).json)")
        }
        if let term { return .promoted(lastEpoch: lastEpoch, term: term, reason: reason) }
        return .failedOver(lastEpoch: lastEpoch, reason: reason)
    }

    /// Makes ``serve()`` return: closes the current connection and stops listening.
    public func stop() {
        stopping.store(true, ordering: .releasing)
        connection.withLock { $0?.close() }
        listener.shutdownBoth()
        gate.abandonAll()
        // A blocked accept() or poll() wakes on shutdown of the listening socket on Linux.
    }
}
