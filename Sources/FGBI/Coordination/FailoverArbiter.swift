/// Decides for a ``Backup`` whether it may take over when its primary falls silent, through a consensus
/// store (FGBICoordination's `EtcdFailoverArbiter`), so that a cut link never yields two primaries.
///
/// A backup with an arbiter (``BackupConfiguration/arbiter``) does not fail over on silence alone: it asks
/// ``decide(lastEpoch:)`` every ``pollInterval`` and meanwhile accepts the primary again if it comes back.
/// Without one, silence is enough (heartbeat-only failover, not partition-safe).
public protocol FailoverArbiter: AnyObject, Sendable {
    /// The newest fencing term this backup knows of; a primary presenting an older one is refused
    /// (``WireError/fenced(term:current:)``). May ask the store, within its request timeout, and falls back to
    /// the newest term seen when the store cannot be reached.
    func currentTerm() -> UInt64

    /// Asked once the primary is lost, with the epoch the replica holds (the last committed one). Blocks at
    /// most about one request timeout. Must never answer ``FailoverDecision/promote(term:)`` unless the store
    /// confirmed that the old primary's right expired and recorded this backup as the new primary.
    func decide(lastEpoch: UInt64?) -> FailoverDecision

    /// ``decide(lastEpoch:)`` knowing `heldTerm`, the fencing term of the primary whose epoch the replica holds
    /// (0 when unknown), so that a coordinator can refuse a backup whose epoch is older than commits confirmed
    /// since. The default implementation asks ``decide(lastEpoch:)``.
    func decide(lastEpoch: UInt64?, heldTerm: UInt64) -> FailoverDecision

    /// As ``decide(lastEpoch:)`` for one of several backups of a primary (`group`) that held fencing term
    /// `lostTerm`. `heldTerm` is the fencing term of the primary whose epoch the replica holds (0 when
    /// unknown): candidates rank by it first, then by epoch, since epochs of a newer primaryship supersede
    /// higher-numbered but uncommitted epochs of an older one. `sessionTerms` are the terms of the last
    /// primaries this backup began a session with (so it counts as one of their backups). Only a backup that
    /// holds every committed epoch may be promoted, and ``FailoverDecision/standDown(_:)`` means another is the
    /// primary now (this backup serves on as its backup, and asks again if that primary is lost before it
    /// connects). The default implementation never promotes (it answers ``FailoverDecision/wait(_:)``).
    func decide(
        lastEpoch: UInt64?, heldTerm: UInt64, sessionTerms: [UInt64], group: BackupGroup, lostTerm: UInt64
    ) -> FailoverDecision

    /// How long the backup waits for a returning primary between two ``decide(lastEpoch:)`` calls.
    var pollInterval: Duration { get }
}

extension FailoverArbiter {
    public func decide(lastEpoch: UInt64?, heldTerm: UInt64) -> FailoverDecision { decide(lastEpoch: lastEpoch) }

    public func decide(
        lastEpoch: UInt64?, heldTerm: UInt64, sessionTerms: [UInt64], group: BackupGroup, lostTerm: UInt64
    ) -> FailoverDecision {
        .wait("this coordinator cannot choose among several backups")
    }
}

/// The backups of one primary, as its handshake tells each of them: how many, and how many must acknowledge
/// an epoch before it is committed (``CommitPolicy``: `all` is a quorum of every backup).
public struct BackupGroup: Sendable, Equatable {
    public var backups: Int
    public var quorum: Int

    public init(backups: Int, quorum: Int) {
        self.backups = backups
        self.quorum = quorum
    }

    /// Candidates needed before a promotion: any set this large holds a backup that acknowledged every
    /// committed epoch.
    public var candidatesNeeded: Int { backups - quorum + 1 }
}

/// What a ``FailoverArbiter`` answers.
public enum FailoverDecision: Sendable, Equatable {
    /// This backup is now the primary, with this new fencing term: fail over.
    case promote(term: UInt64)
    /// Not yet: the old primary still holds its right, or the store cannot be reached (losing the store
    /// never promotes anyone). The string says which.
    case wait(String)
    /// Another node became primary: stop serving, without failing over.
    case standDown(String)
}
