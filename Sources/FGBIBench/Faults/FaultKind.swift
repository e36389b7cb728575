import FGBI

/// A fault a ``FaultInjector`` episode injects into a running replication.
public enum FaultKind: String, CaseIterable, Sendable, Codable {
    /// SIGKILL of the backup process at a random moment.
    case killBackup = "kill-backup"
    /// The backup dies after staging an epoch, before writing it to its replica.
    case killBackupInApply = "kill-backup-in-apply"
    /// The backup dies half-way through appending an epoch to its journal.
    case killBackupMidAppend = "kill-backup-mid-append"
    /// The backup dies after appending an epoch, before fdatasync.
    case killBackupBeforeSync = "kill-backup-before-sync"
    /// The backup dies with an epoch durable but not yet acknowledged.
    case killBackupBeforeAcknowledge = "kill-backup-before-ack"
    /// The backup stops reading (SIGSTOP) for a while, then continues: backpressure.
    case stallBackup = "stall-backup"
    /// 20% of packets lost, both ways.
    case loss
    /// The link slowed to 4 Mbit/s each way, its queue delaying packets by up to 300 ms.
    case slowLink = "slow-link"
    /// 20% of packets sent twice, both ways.
    case duplicate
    /// Every packet lost for 1.2 s.
    case partition
    /// The backup's state directory fills up while it persists epochs.
    case diskFull = "disk-full"

    /// The fault point that kills the backup, for the kinds that use one.
    var faultPoint: FaultPoints.Point? {
        switch self {
        case .killBackupInApply: return .backupApply
        case .killBackupMidAppend: return .backupPersistAppend
        case .killBackupBeforeSync: return .backupPersistSync
        case .killBackupBeforeAcknowledge: return .backupAcknowledge
        default: return nil
        }
    }

    /// How the network kinds impair the link.
    var impairment: VethLink.Impairment? {
        switch self {
        case .loss: return .loss(percent: 20)
        case .slowLink: return .rateLimit(kilobits: 4_000)
        case .duplicate: return .duplicate(percent: 20)
        case .partition: return .partition
        default: return nil
        }
    }
}
