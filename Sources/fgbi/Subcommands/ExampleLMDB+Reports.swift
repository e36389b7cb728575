import FGBI
import FGBIBench
import FGBIExamples
import Foundation

/// What `fgbi example lmdb` prints after its drills: one drill's outcome, and the alternating drill's summary.
extension FGBICommand.ExampleLMDB {
    /// Prints one drill's outcome: what was acknowledged, where the backup failed over, and what LMDB found.
    func printOutcome(_ outcome: LMDBFailoverDrill.Outcome, round: Int?, killAfter: Int) {
        let prefix = round.map { "round \($0), kill after \(killAfter) ms: " } ?? ""
        guard let replica = outcome.replica, let epoch = outcome.backupEpoch else {
            print(
                prefix
                    + """
                    primary \(outcome.primaryStatus) before the backup held an epoch (during set-up or \
                    synchronisation); nothing was acknowledged
                    """
            )
            return
        }
        print(
            prefix
                + """
                primary \(outcome.primaryStatus) with \(outcome.acknowledged) transactions acknowledged; \
                backup failed over at epoch \(epoch)\u{20}
                """
                    + """
                    in \(String(format: "%.2f", outcome.failoverSeconds)) s; LMDB opened the replica: exactly the \
                    first \(replica.transactions) transactions\u{20}
                    """
                    + """
                    (\(replica.keys) keys, every value checked, \(replica.transactions - outcome.acknowledged) \
                    committed but not yet acknowledged),\u{20}
                    """
                + "and a new write transaction committed on it")
    }

    /// Prints the alternating drill's summary: its failovers, then the medians of what each rejoin sent and
    /// of each takeover.
    func printAlternateOutcome(_ outcome: LMDBAlternatingDrill.Outcome) {
        let failovers = outcome.failovers
        let firstPasses = Summary(failovers.map { Double($0.rejoinFirstPassBytes) / Double($0.regionBytes) })
        let shares = Summary(failovers.map { Double($0.rejoinBytes) / Double($0.regionBytes) })
        let takeovers = Summary(failovers.map(\.takeoverSeconds))
        let unprotected = Summary(failovers.map(\.unprotectedSeconds))
        let differing = Summary(
            failovers.map { Double($0.rejoinPagesDiffering * GuestMemory.pageSize) / Double($0.regionBytes) })
        let ofDatabase = Summary(
            failovers.map {
                Double($0.rejoinPagesDiffering * GuestMemory.pageSize) / Double(max(1, $0.databaseBytes))
            })
        let databases = Summary(failovers.map { Double($0.databaseBytes) / 1e6 })
        print(
            """
            \(failovers.count) failovers through SIGKILL: every takeover held every acknowledged transaction \
            and went on committing;\u{20}
            """
                + """
                the last backup's database opened with LMDB holding exactly the first \
                \(outcome.finalReplica.transactions) transactions\u{20}
                """
                + "(\(outcome.acknowledged) acknowledged)")
        print(
            String(
                format:
                    """
                    rejoin: %.1f%% of the region's pages differed (median; max %.1f%%), %.0f%% of the \
                    database's (median; it used %.1f MB of the map);\u{20}
                    """,
                100 * differing.median, 100 * differing.max, 100 * ofDatabase.median, databases.median)
                + String(
                    format: "the first pass (what differed) sent %.2f%% of the region (median; max %.2f%%), "
                        + """
                        up to the first committed epoch %.2f%% (median; max %.2f%%: the rounds carry what the \
                        new primary wrote meanwhile)
                        """,
                    100 * firstPasses.median, 100 * firstPasses.max, 100 * shares.median, 100 * shares.max))
        let hashes = Summary(failovers.map { Double($0.rejoinBlockHashBytes) / Double($0.regionBytes) })
        print(
            String(
                format: "block hashes from the rejoining node: %.2f%% of the region (median; max %.2f%%)",
                100 * hashes.median, 100 * hashes.max))
        print(
            String(
                format:
                    """
                    takeover %.2f s after the kill (median; max %.2f s); unprotected until the rejoined \
                    backup's first epoch %.2f s (median; max %.2f s)
                    """,
                takeovers.median, takeovers.max, unprotected.median, unprotected.max))
    }
}
