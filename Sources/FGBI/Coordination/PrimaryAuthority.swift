/// The right to act as primary, granted outside this process: a lease in a consensus store, such as
/// FGBICoordination's `EtcdPrimaryLease`. A ``Primary`` given one (``PrimaryConfiguration/authority``)
/// stamps its ``term`` on every frame, confirms an epoch as committed only while the right is surely
/// held, and halts replication with ``LostPrimaryship`` once it no longer is.
///
/// Without one a primary acts on heartbeats alone, which cannot tell a dead backup from a cut link: after a
/// partition both ends may act as primary. That set-up is not partition-safe.
public protocol PrimaryAuthority: AnyObject, Sendable {
    /// The fencing term the right was granted with: a number that only grows from one primaryship to the
    /// next, so a backup refuses a primary of an older term.
    var term: UInt64 { get }

    /// The `MonotonicClock` time, in nanoseconds, until which this process surely holds the right: when
    /// its last successful renewal was sent, plus the lease's time to live. The store lets the lease expire
    /// no earlier, so a backup promoted after that expiry acts only after this primary stopped confirming.
    /// Zero once the right is known to be lost.
    var validUntilNanoseconds: UInt64 { get }

    /// Why the right is no longer held (for ``LostPrimaryship``): the last renewal error, say.
    var lossReason: String { get }

    /// Records, where backups deciding a promotion can read it, that this primaryship is about to confirm its
    /// first committed epoch, with `backups` backups of which `quorum` acknowledged it. A ``Primary`` calls it
    /// once, before that first confirmation, and confirms nothing while it fails (it is asked again at the
    /// next acknowledgement). Returns false, having logged why, when it could not be recorded. The default
    /// records nothing and returns true.
    func recordFirstCommit(backups: Int, quorum: Int) -> Bool
}

extension PrimaryAuthority {
    public func recordFirstCommit(backups: Int, quorum: Int) -> Bool { true }
}

/// A primary stopped because its ``PrimaryAuthority`` no longer holds: it confirms no epoch from then on,
/// and replication halted. Another node may be (or become) primary with a newer term.
public struct LostPrimaryship: Error, Sendable, Equatable, CustomStringConvertible {
    /// The term that was lost.
    public var term: UInt64
    /// The last epoch confirmed as committed under it, if any.
    public var lastCommittedEpoch: UInt64?
    public var reason: String

    public init(term: UInt64, lastCommittedEpoch: UInt64?, reason: String) {
        self.term = term
        self.lastCommittedEpoch = lastCommittedEpoch
        self.reason = reason
    }

    public var description: String {
        "lost primaryship of term \(term) (\(reason)); no epoch is confirmed from now on, the last was "
            + (lastCommittedEpoch.map { "epoch \($0)" } ?? "none")
    }
}
