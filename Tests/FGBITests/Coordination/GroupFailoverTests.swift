import FGBI
import Foundation
import Testing

@testable import FGBIBench

/// A primary with three backups (`--commit quorum:2`), coordinated through a real etcd, killed with SIGKILL at
/// random moments (``GroupFailoverDrill``), ten rounds: each time exactly one backup is promoted, at an epoch at
/// least every epoch the old primary confirmed and holding exactly that epoch's memory, the other two follow
/// it (the new primary commits with both), and no epoch is committed by two primaries. Every third round kills
/// the promoted backup too, within its first 600 ms as primary: the two left elect again, promote the one
/// holding every epoch either primary confirmed, and commit on. `FGBI_GROUP_KILLS=N` runs N rounds instead of 10.
@Suite(
    "Several backups: failover through etcd", .serialized,
    .enabled(
        if: GroupFailoverDrill.isAvailable && CommandRunner.executable != nil,
        "needs etcd (Debian etcd-server) and the fgbi executable"))
struct GroupFailoverTests {
    @Test func everyKillPromotesTheBackupHoldingEveryConfirmedEpoch() throws {
        let rounds = ProcessInfo.processInfo.environment["FGBI_GROUP_KILLS"].flatMap(Int.init) ?? 10
        let work = NSTemporaryDirectory() + "fgbi-group-\(getpid())"
        var configuration = GroupFailoverDrill.Configuration(
            executable: try #require(CommandRunner.executable), workDirectory: work)
        configuration.rounds = rounds
        configuration.seed = UInt64(Date().timeIntervalSince1970) % 100_000
        let report = try GroupFailoverDrill(configuration).run {
            print("group failover drill (seed \(configuration.seed)): \($0)")
        }
        #expect(report.outcomes.count == rounds)
        for outcome in report.outcomes {
            #expect(outcome.violations.isEmpty, "round \(outcome.round): \(outcome.violations)")
        }
        #expect(report.promotions == rounds, "\(report.promotions) promotions in \(rounds) kills")
        #expect(report.secondKills == rounds / 3)
        #expect(
            report.secondPromotions == report.secondKills,
            "\(report.secondPromotions) second promotions in \(report.secondKills) kills of a successor")
        // Rounds with violations keep their logs there.
        if report.violations == 0 { try? FileManager.default.removeItem(atPath: work) }
    }
}
