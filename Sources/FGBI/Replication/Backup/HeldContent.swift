/// What a ``Backup``'s regions already hold when it starts without a state directory, so that its primary
/// resynchronises by page hashes and sends only the pages that differ instead of a full copy.
public enum HeldContent: Sendable, Equatable {
    /// A committed epoch of this guest (a replica kept in memory from an earlier session, say): the backup
    /// vouches for it and may fail over with it, as with an epoch loaded from a state directory.
    case committedEpoch(UInt64)
    /// The memory of a former primary of this guest rejoining as the backup of its successor (restarted on
    /// the memory it still holds, or halted): content no backup ever confirmed, likely with writes after its
    /// last committed epoch. It is resynchronised like a replica, but the backup does not vouch for it: until
    /// it commits an epoch of its new primary, ``Backup/lastEpoch`` is nil, and losing that primary ends
    /// service with ``BackupOutcome/stoodDown(lastEpoch:reason:)``, never a failover to unconfirmed memory.
    /// `lastEpoch`, when known, is the last epoch it committed as primary: the new primary numbers on from it.
    case formerPrimary(lastEpoch: UInt64?)
}
