/// How a ``Primary`` replicates.
public struct PrimaryConfiguration: Sendable {
    /// Where each backup listens: one, or several (each epoch is encoded once and sent to every one; the
    /// ``commitPolicy`` says when it is committed).
    public var backups: [Endpoint]
    /// Where the (first) backup listens.
    public var backup: Endpoint {
        get { backups[0] }
        set { backups[0] = newValue }
    }
    /// With several backups: when an epoch counts as committed. ``CommitPolicy/all`` by default.
    public var commitPolicy = CommitPolicy.all
    /// With several backups: how many bytes of encoded frames are kept for backups that fall behind or
    /// return (within a session), so they catch up without a resynchronisation. Under a quorum, a backup
    /// further behind than this leaves the session and is resynchronised (with every backup) when it
    /// returns; under ``CommitPolicy/all`` the primary waits instead (backpressure).
    public var catchUpBytes = 256 << 20
    /// Mode, block size, compressor and budgets of the engine.
    public var engine = EngineConfiguration()
    /// The dirty tracker.
    public var tracker = TrackerKind.uffdAsync
    /// Pages written every epoch that the `uffd-async` tracker stops protecting and reports at every epoch
    /// instead, so the guest stops paying a first write per page per epoch for them (``HotPagePolicy``).
    /// Used only by modes that send what changed (``ReplicationMode/sendsOnlyChanges``): `page` and
    /// `page-lz4` would send every hot page whole at every epoch.
    public var hotPages = HotPagePolicy.replicationDefault
    /// Time between epoch boundaries (Remus' 40 checkpoints per second by default).
    public var epochInterval = Duration.milliseconds(25)
    /// A heartbeat goes out when nothing else was sent for this long.
    public var heartbeatInterval = Duration.milliseconds(20)
    /// The backup is considered lost when nothing comes back for this long.
    public var backupTimeout = Duration.seconds(10)
    /// The pre-shared key; required unless the backup is on loopback.
    public var key: PresharedKey?
    /// Encrypt every frame's payload (ChaCha20-Poly1305 with a per-session key) even on loopback; needs
    /// ``key``. With a key, frames to a backup reached off loopback are encrypted whatever this says,
    /// unless ``allowPlaintext``.
    public var encrypt = false
    /// Send guest memory in clear to a backup off loopback (the backup must allow it too). Off by default:
    /// memory holds the guest's secrets.
    public var allowPlaintext = false
    /// Captured epochs that may wait for encoding and sending; when all are in use the next epoch waits
    /// (and grows) instead of memory growing: backpressure. One by default: while the sender keeps up, a
    /// second buffer is never used; once it cannot, a second buffer only holds a captured epoch back for
    /// the whole encode of the one before, which the acknowledgement of every write in it then waits for.
    /// Under LMDB at a 25 ms interval one buffer took the acknowledgement p50 from 139-146 ms to 99-106 ms,
    /// for real epochs of 44-47 ms instead of 39-42 (the sender idles during each pause: Docs/BENCHMARKS.md).
    public var captureBuffers = 1
    /// How frames are written to the socket (sendmsg, io_uring, io_uring zero copy, or split by size, the
    /// automatic default when io_uring is here).
    public var sendPath = FrameSendPath.automatic
    /// How a session brings its backup up to date while the guest runs.
    public var precopy = PrecopyPolicy()
    /// How long a primary that lost its backup keeps trying to reach it again (a restarted backup is
    /// resynchronised with what differs); the guest runs meanwhile but no epoch commits. Zero: losing the
    /// backup stops replication at once.
    public var reconnectWindow = Duration.seconds(30)
    /// How much lower the sender thread's CPU priority is than the other threads' (a nice increment, 0-19):
    /// on a busy CPU the epoch pause, which stops the guest, then does not wait behind encoding.
    public var senderNiceIncrement = 5
    /// The right to act as primary, held in a consensus store (FGBICoordination's etcd lease): its term fences
    /// every frame, epochs are confirmed only while it holds, and replication halts with
    /// ``LostPrimaryship`` once it does not. Nil: heartbeats alone, which is not partition-safe.
    public var authority: (any PrimaryAuthority)?
    /// The guest's name (nil: unnamed). Its backup must hold the same name (``BackupConfiguration/guestName``):
    /// the handshake carries it and both ends derive the session's keys from it. When one process replicates
    /// several guests, their metrics carry the dimension `guest=NAME`; give each the same
    /// ``EngineConfiguration/sharedIndex`` to share stored copies.
    public var guestName: String?
    /// The cluster the guest belongs to (nil: none; the CLI's `--cluster`), carried and keyed with the name:
    /// its backup must say the same (``BackupConfiguration/clusterName``).
    public var clusterName: String?
    /// A backup taking over: the epoch its replica holds (``BackupOutcome/lastEpoch``). The new primary
    /// numbers its epochs on from it, so epoch numbers only grow across a takeover, whichever backup it
    /// replicates to next (its former primary rejoining, say, which may hold no epoch number of its own).
    /// Nil: a primary starting a guest's history numbers from its backup's epoch, or from 0.
    public var continuesAfterEpoch: UInt64?

    public init(backup: Endpoint) {
        backups = [backup]
    }

    /// A primary with several backups (at least one), committing by `commitPolicy`.
    public init(backups: [Endpoint], commitPolicy: CommitPolicy = .all) {
        self.backups = backups
        self.commitPolicy = commitPolicy
    }

    /// The engine's configuration for a session: ``engine``, its delta buffers sized for a pre-copy step at least
    /// (``EngineConfiguration/deltaBufferPages``).
    var engineForSession: EngineConfiguration {
        var configuration = engine
        configuration.deltaBufferPages = max(configuration.deltaBufferPages, precopy.chunkPages)
        return configuration
    }
}

/// Pre-copy rounds: how a session synchronises a backup while the guest runs (as live migration does),
/// so the first paused epoch carries only what was written during the last round.
public struct PrecopyPolicy: Sendable {
    /// Off: the session's first epoch captures every page with the guest paused.
    public var enabled = true
    /// Pages per pre-copy capture (4 MiB with 4 KiB pages): bounds the memory a round stages at once and keeps
    /// frames short, so heartbeats and acknowledgements interleave with a long synchronisation.
    public var chunkPages = 1024
    /// Rounds at most, the first (every page) included.
    public var maximumRounds = 6
    /// Stop when a round had at most this many written pages: the paused epoch takes the rest.
    public var convergedPages = 1024
    /// Stop when a round's written pages did not fall below this fraction of the previous round's (the
    /// guest writes as fast as rounds send: more rounds would not shrink the final pause).
    public var minimumShrink = 0.8
    /// `fgbi` mode, one backup: a resynchronisation asks the backup for the block hashes of the pages that
    /// differ (8 bytes per block, from the backup) and sends only the blocks that differ, not those pages
    /// whole; when more than 7 blocks in 8 differ in a first sample of 64 pages, the rest go whole. Off: pages
    /// that differ are sent whole.
    public var fetchesBlockHashes = true

    public init() {}
}
