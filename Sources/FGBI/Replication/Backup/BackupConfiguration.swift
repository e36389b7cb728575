/// How a ``Backup`` listens, authenticates and decides that its primary is gone.
public struct BackupConfiguration: Sendable {
    /// Where to listen ("0.0.0.0:7070"; port 0 picks a free one).
    public var listen: Endpoint
    /// The pre-shared key; required when the primary is not on loopback.
    public var key: PresharedKey?
    /// Refuse primaries that do not encrypt their frames, on loopback too. Off loopback, a backup with a key
    /// refuses them anyway unless ``allowPlaintext``.
    public var requireEncryption = false
    /// Accept a primary off loopback that sends in clear. Off by default.
    public var allowPlaintext = false
    /// The guest this backup holds (nil: unnamed). Only a primary of the same guest
    /// (``PrimaryConfiguration/guestName``) is accepted, and the session's keys are derived from the guest's
    /// own key (``PresharedKey/forGuest(_:cluster:)``), so one key shared by several guests cannot cross them.
    public var guestName: String?
    /// The cluster the guest belongs to (nil: none), checked and keyed with the name: the primary's
    /// ``PrimaryConfiguration/clusterName`` must be the same.
    public var clusterName: String?
    /// The primary is declared dead when nothing arrives for this long (it sends a heartbeat every 20 ms
    /// by default, so 100 ms is five missed heartbeats).
    public var primaryTimeout = Duration.milliseconds(100)
    /// How frames (acknowledgements, heartbeats, the summary) are written to the socket.
    public var sendPath = FrameSendPath.automatic
    /// Time allowed for the whole handshake, from the connection's acceptance.
    public var handshakeTimeout = Duration.seconds(5)
    /// How many handshakes run at once, and from one address; a newcomer over a bound evicts the pending
    /// handshake that got least far (Docs/SECURITY.md).
    package var handshakeLimits = HandshakeLimits()
    /// Where to write the replica (and its journal) on failover; nil writes nothing.
    public var imagePath: String?
    /// A directory where every committed epoch is made durable before it is acknowledged (a checkpoint image
    /// plus a journal of later epochs, ``ReplicaStore``); a backup restarted on it resumes at its last
    /// committed epoch, and the primary resynchronises it with what differs. Nil keeps the replica in memory only.
    public var stateDirectory: String?
    /// With ``stateDirectory``: fdatasync the journal before each acknowledgement (on by default; off trades
    /// durability against a machine crash for latency, keeping it against a process crash).
    public var syncEachEpoch = true
    /// Decides through a consensus store whether this backup may take over from a silent primary, and which
    /// fencing term primaries must present. Nil: fail over as soon as the primary is silent for
    /// ``primaryTimeout`` (heartbeat-only, not partition-safe).
    public var arbiter: (any FailoverArbiter)?

    /// The block size of the primary's engine (``EngineConfiguration/blockSize``), which both ends must share
    /// (the handshake refuses a primary of another): read by ``Backup/init(regions:configuration:logger:holding:)``.
    /// The initialiser given a ``BlockGeometry`` uses the geometry's instead.
    public var blockSize = 64

    public init(listen: Endpoint) {
        self.listen = listen
    }

    /// A configuration listening on `listen` that accepts the primary configured by `primary`: its key,
    /// guest and cluster names and block size, encrypted frames required when it encrypts, plaintext off
    /// loopback allowed when it allows it. The rest
    /// (timeouts, state directory, arbiter) keeps its defaults.
    public init(listen: Endpoint, matching primary: PrimaryConfiguration) {
        self.listen = listen
        key = primary.key
        requireEncryption = primary.encrypt
        allowPlaintext = primary.allowPlaintext
        guestName = primary.guestName
        clusterName = primary.clusterName
        blockSize = primary.engine.blockSize
    }
}

/// The backup could not make an applied epoch durable (disk full, I/O error): it stops serving without
/// acknowledging that epoch, and does not fail over (the primary is fine; this backup is not).
public struct PersistFailure: Error, CustomStringConvertible {
    public var epoch: UInt64
    public var underlying: Error
    public var description: String { "the backup cannot persist epoch \(epoch): \(underlying)" }
}

/// What a ``Backup`` received and did.
public struct BackupStatistics: Sendable, Equatable {
    /// Epochs applied and acknowledged.
    public var epochsApplied = 0
    /// Pre-copy deltas applied (synchronisation steps).
    public var precopyFrames = 0
    /// Delta bytes received (epochs and pre-copy).
    public var bytesReceived = 0
    /// Epochs appended to the journal, and checkpoints written.
    public var journalAppends = 0
    public var checkpoints = 0
}

/// How a backup's service ended.
public enum BackupOutcome: Sendable, Equatable {
    /// The primary ended replication on purpose (bye) after this epoch.
    case primaryFinished(lastEpoch: UInt64?)
    /// The primary went silent or the connection broke: the replica is frozen at `lastEpoch`.
    case failedOver(lastEpoch: UInt64?, reason: String)
    /// The primary was lost and the ``BackupConfiguration/arbiter`` promoted this backup with a new fencing
    /// `term`: the replica is frozen at `lastEpoch`, the last committed epoch.
    case promoted(lastEpoch: UInt64?, term: UInt64, reason: String)
    /// The primary was lost but another node became primary: this backup stopped without taking over.
    case stoodDown(lastEpoch: UInt64?, reason: String)
}

extension BackupOutcome {
    /// The epoch the replica holds at the end of service, whatever the outcome.
    public var lastEpoch: UInt64? {
        switch self {
        case .primaryFinished(let epoch), .failedOver(let epoch, _), .promoted(let epoch, _, _),
            .stoodDown(let epoch, _):
            return epoch
        }
    }
}
