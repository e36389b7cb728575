/// How a ``Primary`` replicates.
public struct PrimaryConfiguration: Sendable {
    /// Where the backup listens.
    public var backup: Endpoint
    /// Mode, block size, compressor and budgets of the engine.
    public var engine = EngineConfiguration()
    /// The dirty tracker.
    public var tracker = TrackerKind.uffdAsync
    /// Time between epoch boundaries (Remus' 40 checkpoints per second by default).
    public var epochInterval = Duration.milliseconds(25)
    /// A heartbeat goes out when nothing else was sent for this long.
    public var heartbeatInterval = Duration.milliseconds(20)
    /// The backup is considered lost when nothing comes back for this long.
    public var backupTimeout = Duration.seconds(10)
    /// The pre-shared key; required unless the backup is on loopback.
    public var key: PresharedKey?
    /// Encrypt every frame's payload (ChaCha20-Poly1305 with a per-session key); needs ``key``.
    public var encrypt = false
    /// Captured epochs that may wait for encoding and sending; when all are in use the next epoch waits
    /// (and grows) instead of memory growing: backpressure.
    public var captureBuffers = 2

    public init(backup: Endpoint) {
        self.backup = backup
    }
}
