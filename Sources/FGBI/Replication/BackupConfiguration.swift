/// How a ``Backup`` listens, authenticates and decides that its primary is gone.
public struct BackupConfiguration: Sendable {
    /// Where to listen ("0.0.0.0:7070"; port 0 picks a free one).
    public var listen: Endpoint
    /// The pre-shared key; required when the primary is not on loopback.
    public var key: PresharedKey?
    /// Refuse primaries that do not encrypt their frames.
    public var requireEncryption = false
    /// The primary is declared dead when nothing arrives for this long (it sends a heartbeat every 20 ms
    /// by default, so 100 ms is five missed heartbeats).
    public var primaryTimeout = Duration.milliseconds(100)
    /// Time allowed for the handshake.
    public var handshakeTimeout = Duration.seconds(5)
    /// Where to write the replica (and its journal) on failover; nil writes nothing.
    public var imagePath: String?

    public init(listen: Endpoint) {
        self.listen = listen
    }
}

/// How a backup's service ended.
public enum BackupOutcome: Sendable, Equatable {
    /// The primary ended replication on purpose (bye) after this epoch.
    case primaryFinished(lastEpoch: UInt64?)
    /// The primary went silent or the connection broke: the replica is frozen at `lastEpoch`.
    case failedOver(lastEpoch: UInt64?, reason: String)
}
