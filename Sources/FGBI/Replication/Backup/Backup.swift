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
    let connection = PthreadLock<FrameConnection?>(nil)
    let stopping = Atomic<Bool>(false)
    let logger: Logger
    let metrics = BackupMetrics()
    let store: ReplicaStore?
    let counters = PthreadLock(BackupStatistics())
    /// The newest fencing term accepted (from the state directory, then each session): written by the serving
    /// thread, read by the handshake threads.
    let knownTerm = Atomic<UInt64>(0)
    /// Accepts connections and runs their handshakes concurrently, bounded (``HandshakeGate``).
    let gate: HandshakeGate<Session>

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
    public init(
        regions: [GuestMemory], geometry: BlockGeometry, configuration: BackupConfiguration,
        logger: Logger = Logger(label: "fgbi.backup"), holding held: HeldContent? = nil
    ) throws {
        if let image = configuration.imagePath {
            try PrivateFile.checkDirectory(holding: image, what: "failover image")
        }
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
            heldTerm.store(store.heldTerm, ordering: .releasing)
            if store.highestTerm > 0 { sessionTerms = [store.highestTerm] }
            publishedEpoch.store(replica.lastEpoch ?? .max, ordering: .releasing)
        } else {
            store = nil
        }
        let listener = try Socket.listen(on: configuration.listen)
        self.listener = listener
        let refusedPeers = metrics.refusedPeers
        gate = try HandshakeGate(
            listener: listener, limits: configuration.handshakeLimits, logger: logger,
            refused: { refusedPeers.increment() })
    }

    /// ``init(regions:geometry:configuration:logger:holding:)`` with the geometry of
    /// ``BackupConfiguration/blockSize`` in pages of ``GuestMemory/pageSize``.
    ///
    /// - Throws: as the initialiser given a geometry, and ``FGBIError/invalidArgument(_:)`` for a block size
    ///   other than those of ``BlockGeometry/supportedBlockSizes``.
    public convenience init(
        regions: [GuestMemory], configuration: BackupConfiguration,
        logger: Logger = Logger(label: "fgbi.backup"), holding held: HeldContent? = nil
    ) throws {
        try self.init(
            regions: regions, geometry: try BlockGeometry(blockSize: configuration.blockSize),
            configuration: configuration,
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
    var sessionGroup: BackupGroup?
    /// The current session's fencing term (serving thread only; 0 without a coordinator).
    var sessionTerm: UInt64 = 0
    /// The terms of the last primaries (up to 8) this backup began a session with, oldest first (serving
    /// thread only): told to a coordinator, which counts this backup as one of their backups.
    var sessionTerms: [UInt64] = []
    /// The fencing term of the primary whose epoch the replica holds (0: none or unknown): set when an epoch
    /// of a session is applied, never by its pre-copy steps, which a lost session undoes. A coordinator ranks
    /// candidates by it before their epochs
    /// (``FailoverArbiter/decide(lastEpoch:heldTerm:sessionTerms:group:lostTerm:)``).
    let heldTerm = Atomic<UInt64>(0)
    /// The last run of pages whose block hashes this session asked for (requests come in ascending order).
    var lastBlockHashRun: BlockHashExchange.Run?

    func publishEpoch() {
        publishedEpoch.store(replica.lastEpoch ?? .max, ordering: .releasing)
    }

    /// Freezes the replica at the last committed epoch and writes the image: heartbeat-only (`term` nil) or
    /// promoted by the arbiter with a new fencing term.
    func failOver(reason: String, term: UInt64?) throws -> BackupOutcome {
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
