import FGBI
import FGBILab
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Randomised partition schedules against real processes: an `fgbi primary` and one `fgbi backup` (or two,
/// `--commit quorum:1`, which then choose the newest among them as candidates) coordinated through a real etcd,
/// each on its own host of a ``PartitionLab`` (network namespaces on a bridge). Each schedule cuts links
/// (primary-backup, primary-etcd, backup-etcd), restarts etcd or kills the
/// primary, heals, and then checks the promises of coordinated failover:
/// 1. at most one side confirms: the old primary confirms no epoch after the backup was promoted, and the
///    promoted term is newer than every term the old primary confirmed in;
/// 2. the promoted backup holds exactly the epoch it took over at (its image's digest equals the primary's
///    digest of that epoch) and that epoch is at least every epoch the primary confirmed: no acknowledged
///    write is lost;
/// 3. a primary cut from etcd (or whose etcd restarted) stops within one lease TTL of the cut;
/// 4. liveness: after a kill, a halt or a lapse, the backup takes over once it can reach etcd; without
///    one, the primary keeps confirming once the cut is healed.
public final class PartitionDrill {
    public struct Configuration: Sendable {
        /// The `fgbi` executable the primary and backups run.
        public var executable: URL
        /// Fault schedules, each a fresh guest (`FGBI_PARTITION_SCHEDULES` in the tests).
        public var schedules = 30
        /// Seeds the schedules: which faults, when, for how long.
        public var seed: UInt64 = 1
        /// The primary's lease time to live: a primary cut from etcd must halt within it.
        public var leaseTTLSeconds = 1
        /// The guest's region.
        public var regionMiB = 16
        /// The primary's epoch interval.
        public var epochMilliseconds = 25
        /// The synthetic workload's write rate.
        public var pagesPerSecond = 20_000
        /// The primary's dirty tracker (`--tracker`).
        public var tracker = TrackerKind.uffdAsync
        /// Only these faults (every kind that applies by default); `fgbi bench failover` uses kills alone.
        public var faults = Fault.allCases
        /// Backups of the primary: 1, or 2 (`--commit quorum:1`, so that promotion needs both backups as
        /// candidates and the one holding the newest epoch wins).
        public var backups = 1
        /// Every schedule a single fault (no combinations).
        public var singleFaults = false
        /// Where logs and images go.
        public var workDirectory: String

        public init(executable: URL, workDirectory: String) {
            self.executable = executable
            self.workDirectory = workDirectory
        }
    }

    /// What a schedule does to the lab.
    public enum Fault: String, CaseIterable, Codable, Sendable {
        case cutPrimaryFromBackup = "cut-primary-backup"
        case cutPrimaryFromEtcd = "cut-primary-etcd"
        case cutBackupFromEtcd = "cut-backup-etcd"
        case restartEtcd = "restart-etcd"
        case killPrimary = "kill-primary"
        case cutPrimaryFromSecondBackup = "cut-primary-backup2"
        case cutSecondBackupFromEtcd = "cut-backup2-etcd"

        /// Whether the fault needs a second backup.
        var needsSecondBackup: Bool { self == .cutPrimaryFromSecondBackup || self == .cutSecondBackupFromEtcd }

        /// The two lab hosts the fault cuts apart, if it is a cut.
        var cut: (String, String)? {
            switch self {
            case .cutPrimaryFromBackup: return ("p", "b")
            case .cutPrimaryFromEtcd: return ("p", "e")
            case .cutBackupFromEtcd: return ("b", "e")
            case .cutPrimaryFromSecondBackup: return ("p", "b2")
            case .cutSecondBackupFromEtcd: return ("b2", "e")
            case .restartEtcd, .killPrimary: return nil
            }
        }
    }

    /// One fault with its timing: start after `delay` seconds, heal after `duration` (a kill never heals).
    public struct Step: Codable, Sendable {
        public var fault: Fault
        public var delay: Double
        public var duration: Double
    }

    /// What one schedule did and found.
    public struct Outcome: Codable, Sendable {
        public var schedule: Int
        public var steps: [Step]
        public var primaryTerm: UInt64?
        public var lastConfirmedEpoch: UInt64?
        public var promotedTerm: UInt64?
        public var promotedEpoch: UInt64?
        /// Which backup was promoted (`b`, or `b2` with two backups).
        public var promotedBackup: String?
        /// Seconds from the primary's loss (kill, or the cut that cost it etcd) to the backup's promotion.
        public var failoverSeconds: Double?
        /// Seconds from the cut that cost the primary etcd to its halt.
        public var haltSeconds: Double?
        public var primaryExit: Int32?
        public var violations: [String]
    }

    public struct Report: Codable, Sendable {
        public var leaseTTLSeconds: Int
        public var outcomes: [Outcome]
        public var violations: Int { outcomes.reduce(0) { $0 + $1.violations.count } }
        public var promotions: Int { outcomes.filter { $0.promotedTerm != nil }.count }
    }

    public let configuration: Configuration
    private var random: SeededRandom

    public init(_ configuration: Configuration) {
        self.configuration = configuration
        random = SeededRandom(seed: configuration.seed)
    }

    /// Whether the drill can run here: root, namespaces, nftables and an etcd binary.
    public static var isAvailable: Bool { VethLink.isAvailable && VethLink.canImpair && EtcdServer.isAvailable }

    public func run(progress: (String) -> Void = { _ in }) throws -> Report {
        try FileManager.default.createDirectory(atPath: configuration.workDirectory, withIntermediateDirectories: true)
        let lab = try PartitionLab(hostNames: configuration.backups > 1 ? ["p", "b", "b2", "e"] : ["p", "b", "e"])
        let etcd = try EtcdServer(host: lab.host("e").address, port: 2379, namespace: lab.host("e").namespace)
        defer { etcd.stop() }
        let keyFile = configuration.workDirectory + "/key"
        unlink(keyFile)
        try PrivateFile.create(keyFile, bytes: (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) })
        var outcomes: [Outcome] = []
        for index in 0..<configuration.schedules {
            let steps = makeSchedule(index)
            let outcome = try runSchedule(index, steps: steps, lab: lab, etcd: etcd, keyFile: keyFile)
            lab.healAll()
            progress(
                """
                schedule \(index + 1)/\(configuration.schedules): \
                \(steps.map { $0.fault.rawValue }.joined(separator: " + ")):\u{20}
                """
                    + (outcome.promotedTerm.map {
                        """
                        promoted \(configuration.backups > 1 ? "\(outcome.promotedBackup ?? "?") " : "")term \
                        \($0) at epoch \(outcome.promotedEpoch.map(String.init) ?? "-")
                        """
                    } ?? "no promotion")
                    + (outcome.failoverSeconds.map { String(format: ", failover %.2f s", $0) } ?? "")
                    + (outcome.violations.isEmpty ? "" : "; VIOLATIONS: \(outcome.violations.joined(separator: "; "))"))
            outcomes.append(outcome)
        }
        return Report(leaseTTLSeconds: configuration.leaseTTLSeconds, outcomes: outcomes)
    }

    /// Schedules cycle through the fault kinds (so 30 schedules hold 6 of each), with random timing; every
    /// other schedule adds a second, different fault overlapping the first.
    private func makeSchedule(_ index: Int) -> [Step] {
        let kinds = configuration.faults.filter { configuration.backups > 1 || !$0.needsSecondBackup }
        let ttl = Double(configuration.leaseTTLSeconds)
        func step(_ fault: Fault) -> Step {
            Step(fault: fault, delay: uniform(0, 0.5), duration: fault == .killPrimary ? 0 : uniform(0.3, 3) * ttl)
        }
        var steps = [step(kinds[index % kinds.count])]
        if !configuration.singleFaults, index % 2 == 1, kinds.count > 1 {
            var second = kinds[Int(random.next() % UInt64(kinds.count))]
            if second == steps[0].fault { second = kinds[(kinds.firstIndex(of: second)! + 1) % kinds.count] }
            var extra = step(second)
            extra.delay += uniform(0, 1.5) * ttl
            steps.append(extra)
        }
        return steps
    }

    private func uniform(_ low: Double, _ high: Double) -> Double {
        low + (high - low) * Double(random.next() % 1_000_000) / 1_000_000
    }

    private func runSchedule(_ index: Int, steps: [Step], lab: PartitionLab, etcd: EtcdServer, keyFile: String) throws
        -> Outcome
    {
        let directory = configuration.workDirectory + "/schedule-\(index)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let ttl = configuration.leaseTTLSeconds
        let cluster = "drill\(configuration.seed)s\(index)"
        let names = configuration.backups > 1 ? ["b", "b2"] : ["b"]
        let addresses = names.map { "\(lab.host($0).address):7070" }
        let common = [
            "--region-mib", String(configuration.regionMiB), "--key-file", keyFile, "--etcd", etcd.clientURL,
            "--cluster", cluster, "--guest-name", "g", "--lease-ttl-s", String(ttl), "--etcd-timeout-ms", "300",
            // Info: a failed schedule's logs (kept) show each connection and handshake, not only the warnings.
            "--print-events", "--log-level", "info",
        ]
        var backups: [LabProcess] = []
        defer { for backup in backups where backup.isRunning { backup.kill9() } }
        for (name, address) in zip(names, addresses) {
            let backup = try LabProcess(
                executable: configuration.executable,
                arguments: [
                    "backup", "--listen", address, "--node", name, "--image", directory + "/\(name).img",
                    "--timeout-ms", "300",
                ] + common,
                namespace: lab.host(name).namespace, logFile: directory + "/\(name).log")
            backups.append(backup)
            backup.waitForLog("listening on")
        }
        let primary = try LabProcess(
            executable: configuration.executable,
            arguments: primaryArguments(backups: addresses) + common,
            namespace: lab.host("p").namespace, logFile: directory + "/primary.log")
        defer { if primary.isRunning { primary.kill9() } }
        var outcome = Outcome(schedule: index, steps: steps, violations: [])
        if let failure = Self.waitUntilReplicating(primary, backups: names.count, directory: directory) {
            outcome.violations.append(failure)
            return outcome
        }

        let faults = try runFaults(steps, lab: lab, etcd: etcd, primary: primary)
        let healed = MonotonicClock.nanoseconds()

        // Let it settle: a promotion needs the lease to expire (TTL, plus etcd's 0.5 s expiry sweep), a
        // recovered primary needs to confirm again.
        let settle = Double(ttl) * 2 + 3
        let promoted = Self.waitForPromotion(of: Array(zip(names, backups)), seconds: settle)
        let promotedLine = promoted?.line
        if promotedLine == nil, primary.isRunning {
            // No takeover: the primary must confirm again now that every cut is healed.
            let resumed = primary.waitForLine(seconds: settle) { line in
                guard let event = LabEvent(line), event.kind == "commit" else { return false }
                return event.nanoseconds > healed
            }
            if resumed == nil {
                outcome.violations.append(
                    "no promotion, and the primary confirmed nothing after the cuts healed (logs in \(directory))")
            }
        }
        if primary.isRunning { primary.kill9() } else { outcome.primaryExit = primary.waitForExit(seconds: 1) }
        // A promoted backup writes its image and exits; the others serve on (or wait) and are ended here, once a
        // second promotion would have shown.
        if promoted != nil { usleep(UInt32(ttl) * 1_000_000) }
        for (name, backup) in zip(names, backups) where name != promoted?.name {
            if backup.lines.contains(where: { LabEvent($0)?.kind == "promoted" }) {
                outcome.violations.append("\(name) was promoted too")
            }
            if backup.isRunning { backup.kill9() }
        }
        for backup in backups { backup.waitForExit(seconds: 10) }
        outcome.promotedBackup = promoted?.name
        let image = directory + "/\(promoted?.name ?? "b").img"

        judge(
            &outcome, primary: primary, promotedLine: promotedLine, faults: faults, image: image, directory: directory)
        if outcome.violations.isEmpty { try? FileManager.default.removeItem(atPath: directory) }
        return outcome
    }

    /// The primary's command line but for the options every process shares: the backups at `addresses` (under
    /// quorum:1 with two), epoch digests printed, reconnecting for as long as a schedule takes.
    private func primaryArguments(backups addresses: [String]) -> [String] {
        ["primary"] + addresses.flatMap { ["--backup", $0] } + (addresses.count > 1 ? ["--commit", "quorum:1"] : [])
            + [
                "--node", "p", "--print-epoch-digests", "--duration", "600", "--reconnect-s", "600",
                "--acquire-wait-s", "10", "--epoch-ms", String(configuration.epochMilliseconds),
                "--pages-per-second", String(configuration.pagesPerSecond), "--threads", "1",
                "--tracker", configuration.tracker.rawValue,
            ]
    }

    /// The backup of `backups` (name, process) that printed a `promoted` event within `seconds`, with that line.
    private static func waitForPromotion(of backups: [(String, LabProcess)], seconds: Double)
        -> (name: String, line: String)?
    {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            // The last backup promoted, should two be: the judging then reports the other as promoted too.
            let promoted = backups.compactMap { name, backup in
                backup.lines.first { LabEvent($0)?.kind == "promoted" }.map { (name: name, line: $0) }
            }
            if let last = promoted.last { return last }
            usleep(10_000)
        }
        return nil
    }

    /// Waits until the primary confirmed a few epochs and, with two backups, until each holds a committed epoch (a
    /// backup holding none stands as no candidate, Docs/OPERATIONS.md, and under quorum:1 of two no promotion
    /// could be tested); the violation if not.
    private static func waitUntilReplicating(_ primary: LabProcess, backups: Int, directory: String) -> String? {
        guard
            primary.waitForLine(
                seconds: 30, { LabEvent($0).map { $0.kind == "commit" && ($0.number("epoch") ?? 0) >= 3 } ?? false })
                != nil
        else {
            return "replication never confirmed 3 epochs (logs in \(directory))"
        }
        guard backups > 1 else { return nil }
        let everyBackupHolds = primary.waitForLine(seconds: 30) { line in
            LabEvent(line).map { $0.kind == "every-backup-holds" && ($0.number("epoch") ?? 0) >= 3 } ?? false
        }
        return everyBackupHolds == nil
            ? "a backup held no committed epoch after 30 s without faults (logs in \(directory))" : nil
    }

    /// When the faults of a schedule cost the primary its role: its kill, its first loss of etcd, and each loss
    /// of etcd (a cut or etcd's restart) with when it healed, by step.
    struct FaultTimes {
        var primaryLostAt: UInt64?
        var primaryLostEtcdAt: UInt64?
        var etcdLosses: [Int: (start: UInt64, end: UInt64?)] = [:]
    }

    /// Runs `steps` on their own clocks: each fault starts after its delay and heals after its duration (at
    /// most five seconds past the last heal); returns when the faults reached the primary.
    private func runFaults(_ steps: [Step], lab: PartitionLab, etcd: EtcdServer, primary: LabProcess) throws
        -> FaultTimes
    {
        let start = MonotonicClock.nanoseconds()
        var faults = FaultTimes()
        var pending = steps.map { (step: $0, started: false, healed: false) }
        let lastHeal = steps.map { $0.delay + $0.duration }.max() ?? 0
        while pending.contains(where: { !$0.started || !$0.healed }) {
            let elapsed = Double(MonotonicClock.nanoseconds() - start) / 1e9
            for i in pending.indices {
                let step = pending[i].step
                if !pending[i].started, elapsed >= step.delay {
                    pending[i].started = true
                    // Each moment is taken once the fault is in effect: a renewal sent before it still counts.
                    switch step.fault {
                    case .cutPrimaryFromBackup, .cutBackupFromEtcd, .cutPrimaryFromSecondBackup,
                        .cutSecondBackupFromEtcd:
                        let (a, b) = step.fault.cut!
                        try lab.cut(a, b)
                    case .cutPrimaryFromEtcd:
                        try lab.cut("p", "e")
                        faults.primaryLostEtcdAt = faults.primaryLostEtcdAt ?? MonotonicClock.nanoseconds()
                        faults.etcdLosses[i] = (MonotonicClock.nanoseconds(), nil)
                    case .restartEtcd:
                        etcd.stop()
                        faults.primaryLostEtcdAt = faults.primaryLostEtcdAt ?? MonotonicClock.nanoseconds()
                        faults.etcdLosses[i] = (MonotonicClock.nanoseconds(), nil)
                    case .killPrimary:
                        let now = MonotonicClock.nanoseconds()
                        primary.kill9()
                        faults.primaryLostAt = faults.primaryLostAt ?? now
                        pending[i].healed = true
                    }
                }
                if pending[i].started, !pending[i].healed, elapsed >= step.delay + step.duration {
                    pending[i].healed = true
                    switch step.fault {
                    case .cutPrimaryFromBackup, .cutBackupFromEtcd, .cutPrimaryFromSecondBackup,
                        .cutSecondBackupFromEtcd:
                        let (a, b) = step.fault.cut!
                        lab.heal(a, b)
                    case .cutPrimaryFromEtcd:
                        lab.heal("p", "e")
                        faults.etcdLosses[i]?.end = MonotonicClock.nanoseconds()
                    case .restartEtcd:
                        try etcd.restart()
                        faults.etcdLosses[i]?.end = MonotonicClock.nanoseconds()
                    case .killPrimary: break
                    }
                }
            }
            usleep(2_000)
            if Double(MonotonicClock.nanoseconds() - start) / 1e9 > lastHeal + 5 { break }
        }
        return faults
    }
}
