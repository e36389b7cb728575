import FGBI
import Foundation
import Testing

@testable import FGBIBench

/// Randomised partition schedules against real `fgbi primary` and `fgbi backup` processes and a real etcd,
/// each in its own network namespace (``PartitionDrill``): links cut between any two of them, etcd restarted,
/// the primary killed, alone and overlapping. Every schedule must keep the promises of coordinated failover:
/// at most one side confirms, the promoted backup holds exactly an epoch at least as new as every confirmed
/// one, a primary cut from etcd stops within one lease TTL, and someone serves again.
/// `FGBI_PARTITION_SCHEDULES=N` runs N schedules instead of 30; `FGBI_PARTITION_SEED=S` replays the schedules
/// of seed S (printed with every schedule) instead of a seed from the clock, so that a failure can be run again.
@Suite(
    "Partition schedules", .serialized,
    .enabled(
        if: PartitionDrill.isAvailable && CommandRunner.executable != nil,
        "needs root, network namespaces, nftables, etcd (Debian etcd-server) and the fgbi executable"))
struct PartitionScheduleTests {
    @Test(arguments: [1, 2])
    func everyScheduleKeepsThePromises(backups: Int) throws {
        let schedules = ProcessInfo.processInfo.environment["FGBI_PARTITION_SCHEDULES"].flatMap(Int.init) ?? 30
        let work = NSTemporaryDirectory() + "fgbi-partitions-\(getpid())-\(backups)"
        var configuration = PartitionDrill.Configuration(
            executable: try #require(CommandRunner.executable), workDirectory: work)
        configuration.schedules = schedules
        configuration.backups = backups
        configuration.leaseTTLSeconds = 1
        configuration.tracker = Kernel.preferredTracker
        configuration.seed =
            ProcessInfo.processInfo.environment["FGBI_PARTITION_SEED"].flatMap(UInt64.init)
            ?? UInt64(Date().timeIntervalSince1970) % 100_000
        let report = try PartitionDrill(configuration).run {
            print("partition drill, \(backups) backup(s) (seed \(configuration.seed)): \($0)")
        }
        #expect(report.outcomes.count == schedules)
        for outcome in report.outcomes {
            #expect(
                outcome.violations.isEmpty,
                "schedule \(outcome.schedule) \(outcome.steps.map(\.fault.rawValue)): \(outcome.violations)")
        }
        // Every kind of fault was exercised, and takeovers really happened.
        let faults = report.outcomes.flatMap { $0.steps.map(\.fault) }
        let kinds = PartitionDrill.Fault.allCases.filter { backups > 1 || !$0.needsSecondBackup }
        for kind in kinds where schedules >= 10 {
            #expect(
                faults.filter { $0 == kind }.count >= schedules / (kinds.count + 1),
                "\(kind) ran \(faults.filter { $0 == kind }.count) times")
        }
        #expect(report.promotions >= schedules / 5, "\(report.promotions) promotions")
        // Schedules with violations keep their logs there.
        if report.violations == 0 { try? FileManager.default.removeItem(atPath: work) }
    }
}

/// How the drill times a halt: from the start of the outage the primary halted in, not from an earlier
/// outage that healed (a schedule that restarted etcd, then cut the primary from it, was once measured from
/// the restart).
@Suite("Partition drill timing")
struct PartitionDrillTimingTests {
    @Test func aHaltIsTimedFromTheOutageItHappenedIn() {
        let healedThenCut: [(start: UInt64, end: UInt64?)] = [(0, 10), (20, nil)]
        #expect(PartitionDrill.lossBefore(25, among: healedThenCut) == 20)
        #expect(PartitionDrill.lossBefore(5, among: healedThenCut) == 0)
        #expect(
            PartitionDrill.lossBefore(15, among: healedThenCut) == 0, "a halt just after a heal belongs to that outage")
        let overlapping: [(start: UInt64, end: UInt64?)] = [(10, 20), (0, 30)]
        #expect(PartitionDrill.lossBefore(25, among: overlapping) == 0)
        #expect(PartitionDrill.lossBefore(5, among: []) == nil)
    }
}
