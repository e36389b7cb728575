import FGBI
import Foundation

/// What a ``FaultInjector`` run found: an episode per fault, and the run's totals.
extension FaultInjector {
    /// One episode's result.
    public struct Episode: Sendable, Codable {
        public var kind: FaultKind
        /// The epoch the backup's state directory held afterwards (nil: none).
        public var backupEpoch: UInt64?
        /// The primary's committed epoch afterwards.
        public var committedEpoch: UInt64?
        /// Why the check failed (nil: it held).
        public var divergence: String?
        /// How the backup ended: its exit status (137: SIGKILL, 10: failed over, 1: an error such as ENOSPC).
        public var backupStatus: Int32?
        /// Whether replication moved on after the backup was started again (nil: not checked, the next
        /// episode killed it first).
        public var resynchronised: Bool?
        /// The primary process's resident memory after the episode.
        public var residentBytes: Int
    }

    /// The whole run.
    public struct Report: Sendable, Codable {
        public var episodes: [Episode] = []
        public var epochsCommitted: UInt64 = 0
        public var reconnects = 0
        public var seconds = 0.0
        public var divergences: Int { episodes.filter { $0.divergence != nil }.count }
        public var maximumResidentBytes: Int { episodes.map(\.residentBytes).max() ?? 0 }
        /// Episodes per kind.
        public var counts: [String: Int] {
            Dictionary(grouping: episodes, by: { $0.kind.rawValue }).mapValues(\.count)
        }
    }

    /// The progress line of episode `index`.
    func describe(_ episode: Episode, index: Int, kind: FaultKind, status: Int32?) -> String {
        let of = configuration.repeatForSeconds == nil ? "/\(configuration.schedule.count)" : ""
        let held = episode.backupEpoch.map(String.init) ?? "none"
        let committed = episode.committedEpoch.map(String.init) ?? "none"
        return
            "fault \(index)\(of) \(kind.rawValue): backup exit \(status.map(String.init) ?? "-"), held epoch \(held), "
            + "committed \(committed)" + (episode.divergence.map { ", DIVERGENCE: \($0)" } ?? ", consistent")
    }

    /// The closing check after the primary's final epoch `finalEpoch`: an episode recording the failure, or nil
    /// when the last backup holds exactly that epoch, consistent.
    static func closingFailure(_ closing: Episode, finalEpoch final: UInt64?) -> Episode? {
        if closing.backupEpoch != final {
            let divergence =
                "after the final epoch \(final.map(String.init) ?? "none") the backup holds "
                + (closing.backupEpoch.map(String.init) ?? "none")
            return Episode(
                kind: .killBackup, backupEpoch: closing.backupEpoch, committedEpoch: final, divergence: divergence,
                residentBytes: closing.residentBytes)
        }
        guard let divergence = closing.divergence else { return nil }
        return Episode(
            kind: .killBackup, backupEpoch: closing.backupEpoch, committedEpoch: final,
            divergence: "final state: " + divergence, residentBytes: closing.residentBytes)
    }
}
