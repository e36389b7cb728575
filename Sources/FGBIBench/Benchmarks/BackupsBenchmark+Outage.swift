import FGBI
import Foundation
import Synchronization

/// The outage layouts of `fgbi bench backups`: the last backup's link is cut at a quarter of the rounds for
/// ``BackupsBenchmark/Configuration/outageMilliseconds`` while the others keep committing, then brought back;
/// what its return cost is measured from that moment until it holds the epoch committed when the link came back.
extension BackupsBenchmark {
    /// How a backup cut off for a while came back.
    public struct OutageReport: Sendable, Codable {
        /// How long the link was down.
        public var milliseconds: Double
        /// Epochs committed while it was down.
        public var epochsMissed: Int
        /// Whether it caught up from the frames kept for it (else every backup was resynchronised).
        public var caughtUp: Bool
        /// Resynchronisations of the whole group the return caused.
        public var synchronisations: Int
        /// From the link's return until the returning backup held the epoch committed at that moment.
        public var returnMilliseconds: Double
        /// What the returning backup received meanwhile, and what the other backups received together.
        public var returningBytes: Int
        public var othersBytes: Int
        /// The encoded epochs it missed, together: what a catch-up resends.
        public var missedEncodedBytes: Int
    }

    /// Drives one outage from the rounds loop: cuts the link, brings it back after the outage on a thread of
    /// its own (under `all` the rounds wait for it), and watches the return.
    final class OutageDrill: @unchecked Sendable {
        private typealias Healed = (
            at: UInt64, epoch: UInt64, returning: Int, others: Int, stats: ReplicationStatistics
        )
        private let group: BackupSet
        private let primary: Primary
        private let cutRound: Int
        private let outageNanoseconds: UInt64
        private var cutAt: UInt64?
        private var committedAtCut: UInt64 = 0
        private var encodedAtCut = 0
        private let healedState = Mutex<Healed?>(nil)
        private var healed: Healed? { healedState.withLock { $0 } }
        private var report: OutageReport?

        init(group: BackupSet, primary: Primary, configuration: Configuration) {
            self.group = group
            self.primary = primary
            cutRound = max(configuration.epochs / 4, 1)
            outageNanoseconds = UInt64(configuration.outageMilliseconds) * 1_000_000
        }

        private var returning: Backup { group.backups[group.backups.count - 1] }
        private var othersReceived: Int { group.backups.dropLast().reduce(0) { $0 + $1.statistics.bytesReceived } }

        /// Called before each round of writes.
        func beforeRound(_ round: Int) {
            if round == cutRound, let relay = group.relay {
                let statistics = primary.statistics
                committedAtCut = statistics.lastCommittedEpoch ?? 0
                encodedAtCut = statistics.bytesSent
                relay.cut()
                cutAt = MonotonicClock.nanoseconds()
                Thread.detachNewThread { [self] in
                    MonotonicClock.sleep(nanoseconds: outageNanoseconds)
                    relay.heal()
                    let statistics = primary.statistics
                    let healed: Healed = (
                        MonotonicClock.nanoseconds(), statistics.lastCommittedEpoch ?? 0,
                        returning.statistics.bytesReceived, othersReceived, statistics
                    )
                    healedState.withLock { $0 = healed }
                }
            }
            watchReturn()
        }

        private func watchReturn() {
            guard report == nil, let cutAt, let healed, let held = returning.lastEpoch, held >= healed.epoch else {
                return
            }
            let now = MonotonicClock.nanoseconds()
            let statistics = primary.statistics
            report = OutageReport(
                milliseconds: Double(healed.at - cutAt) / 1e6,
                epochsMissed: Int(healed.epoch - committedAtCut),
                caughtUp: statistics.catchUps > healed.stats.catchUps,
                synchronisations: statistics.synchronisations - healed.stats.synchronisations,
                returnMilliseconds: Double(now - healed.at) / 1e6,
                returningBytes: returning.statistics.bytesReceived - healed.returning,
                othersBytes: othersReceived - healed.others,
                missedEncodedBytes: healed.stats.bytesSent - encodedAtCut)
        }

        /// The report, waiting up to 60 s after the rounds for the return.
        ///
        /// - Throws: ``BenchmarkError`` when the backup never returned.
        func finish() throws -> OutageReport {
            let deadline = MonotonicClock.nanoseconds() + 60_000_000_000
            while healed == nil, cutAt != nil, MonotonicClock.nanoseconds() < deadline {
                MonotonicClock.sleep(nanoseconds: 1_000_000)
            }
            while report == nil, MonotonicClock.nanoseconds() < deadline {
                watchReturn()
                MonotonicClock.sleep(nanoseconds: 1_000_000)
            }
            guard let report else { throw BenchmarkError("the cut backup did not return within 60 s") }
            return report
        }
    }
}
