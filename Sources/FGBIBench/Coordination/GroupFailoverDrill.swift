import FGBI
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Kills of a primary with three backups, coordinated through a real etcd, on loopback. Each round starts
/// `fgbi primary` replicating to three `fgbi backup` processes (`--commit quorum:2`), each backup ready to
/// become the primary of its replica (`--then-primary`) replicating to the other two; the primary is killed
/// with SIGKILL at a random moment after its first commits (every other round with one backup stopped by
/// SIGSTOP just before, until the promotion), and the round checks:
/// 1. exactly one backup is promoted, with a newer term;
/// 2. it took over at an epoch at least every epoch the old primary confirmed, and its replica is exactly that
///    epoch (its image's digest equals the old primary's digest of that epoch): no acknowledged write is lost;
/// 3. the other two follow it: the new primary, replicating to both under `all`, commits epochs;
/// 4. no epoch is committed by two primaries: the new primary's commits are all past the old one's;
/// 5. the stopped backup, behind the other two, is never the one promoted.
///
/// Every third round also kills the promoted backup, at a random moment in its first 600 ms as primary (while
/// it turns into `fgbi primary`, adopts its lease, synchronises its backups, or commits its first epochs), and
/// checks the second election among the two left (``judgeSecond``).
public final class GroupFailoverDrill {
    public struct Configuration: Sendable {
        /// The `fgbi` executable every node runs.
        public var executable: URL
        /// Kills of the primary, each a fresh primary and three backups (`FGBI_GROUP_KILLS` in the tests).
        public var rounds = 10
        /// Seeds the moments of the kills and which backup is stopped.
        public var seed: UInt64 = 1
        /// The primary's lease time to live; promotion follows its expiry.
        public var leaseTTLSeconds = 1
        /// Each node's region.
        public var regionMiB = 16
        /// The primary's epoch interval.
        public var epochMilliseconds = 25
        /// The synthetic workload's write rate.
        public var pagesPerSecond = 5_000
        /// Where logs, memory files and images go.
        public var workDirectory: String

        public init(executable: URL, workDirectory: String) {
            self.executable = executable
            self.workDirectory = workDirectory
        }
    }

    /// What one round did and found.
    public struct Outcome: Codable, Sendable {
        public var round: Int
        public var lastConfirmedEpoch: UInt64?
        public var promotedNode: String?
        public var promotedTerm: UInt64?
        public var promotedEpoch: UInt64?
        /// Seconds from the kill to the promotion.
        public var failoverSeconds: Double?
        /// Epochs the new primary committed with both remaining backups.
        public var newPrimaryCommits: Int
        /// The backup stopped (SIGSTOP) just before the kill and until the promotion, if any.
        public var stoppedBackup: String?
        /// In rounds that kill the promoted backup too: what the second election did.
        public var second: SecondPromotion?
        public var violations: [String]
    }

    /// The second election of a round that killed the promoted backup too.
    public struct SecondPromotion: Codable, Sendable {
        /// Milliseconds from the first promotion to the kill of the promoted backup.
        public var killedAfterMilliseconds: Int
        /// The last epoch the killed successor confirmed as primary, if any.
        public var successorConfirmedEpoch: UInt64?
        public var promotedNode: String?
        public var promotedTerm: UInt64?
        public var promotedEpoch: UInt64?
        /// Seconds from the successor's kill to the second promotion.
        public var failoverSeconds: Double?
        /// Epochs the second successor committed with the backup left.
        public var newPrimaryCommits = 0
    }

    public struct Report: Codable, Sendable {
        public var leaseTTLSeconds: Int
        public var outcomes: [Outcome]
        public var violations: Int { outcomes.reduce(0) { $0 + $1.violations.count } }
        public var promotions: Int { outcomes.filter { $0.promotedTerm != nil }.count }
        /// Rounds that killed the promoted backup too, and those that then promoted another.
        public var secondKills: Int { outcomes.filter { $0.second != nil }.count }
        public var secondPromotions: Int { outcomes.filter { $0.second?.promotedTerm != nil }.count }
    }

    public let configuration: Configuration
    var random: SeededRandom

    public init(_ configuration: Configuration) {
        self.configuration = configuration
        random = SeededRandom(seed: configuration.seed)
    }

    public static var isAvailable: Bool { EtcdServer.isAvailable }

    public func run(progress: (String) -> Void = { _ in }) throws -> Report {
        try FileManager.default.createDirectory(atPath: configuration.workDirectory, withIntermediateDirectories: true)
        let etcd = try EtcdServer()
        defer { etcd.stop() }
        var outcomes: [Outcome] = []
        for round in 0..<configuration.rounds {
            let outcome = try runRound(round, etcd: etcd)
            progress(
                "round \(round + 1)/\(configuration.rounds): " + (outcome.stoppedBackup.map { "\($0) stopped; " } ?? "")
                    + (outcome.promotedNode.map {
                        """
                        \($0) promoted with term \(outcome.promotedTerm ?? 0) at epoch \
                        \(outcome.promotedEpoch.map(String.init) ?? "-")
                        """
                    } ?? "no promotion")
                    + " (old primary confirmed \(outcome.lastConfirmedEpoch.map(String.init) ?? "none"))"
                    + (outcome.failoverSeconds.map { String(format: ", failover %.2f s", $0) } ?? "")
                    + ", new primary committed \(outcome.newPrimaryCommits)"
                    + (outcome.second.map(Self.describe) ?? "")
                    + (outcome.violations.isEmpty ? "" : "; VIOLATIONS: \(outcome.violations.joined(separator: "; "))"))
            outcomes.append(outcome)
        }
        return Report(leaseTTLSeconds: configuration.leaseTTLSeconds, outcomes: outcomes)
    }

    private func runRound(_ round: Int, etcd: EtcdServer) throws -> Outcome {
        let directory = configuration.workDirectory + "/round-\(round)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let ports = try FreePorts.take(host: "127.0.0.1", count: 3)
        let names = ["b1", "b2", "b3"]
        // Rounds that kill the successor too: each successor commits with the one backup left.
        let killsSuccessor = round % 3 == 2
        let addresses = ports.map { "127.0.0.1:\($0)" }
        let files = names.map { "/dev/shm/fgbi-group-\(getpid())-\(round)-\($0)" }
        for file in files { unlink(file) }
        defer { for file in files { unlink(file) } }
        let region = ["--region-mib", String(configuration.regionMiB)]
        let common = [
            "--etcd", etcd.clientURL, "--cluster", "group\(configuration.seed)r\(round)",
            "--guest-name", "g", "--lease-ttl-s", String(configuration.leaseTTLSeconds), "--etcd-timeout-ms", "300",
            "--print-events", "--log-level", "notice",
        ]
        let writing = [
            "--print-epoch-digests", "--duration", "600", "--epoch-ms", String(configuration.epochMilliseconds),
            "--pages-per-second", String(configuration.pagesPerSecond), "--threads", "1", "--acquire-wait-s", "10",
        ]
        var backups: [LabProcess] = []
        defer { for process in backups where process.isRunning { process.kill9() } }
        for (index, name) in names.enumerated() {
            let others = addresses.indices.filter { $0 != index }.flatMap { ["--backup", addresses[$0]] }
            let arguments =
                [
                    "backup", "--listen", addresses[index], "--node", name, "--memory-file", files[index],
                    "--image", directory + "/\(name).img", "--timeout-ms", "1000",
                ] + region + common
                + ["--then-primary", "--"] + others
                + ["--commit", killsSuccessor ? "quorum:1" : "all", "--node", name, "--reconnect-s", "30"]
                + common + writing
            let process = try LabProcess(
                executable: configuration.executable, arguments: arguments, namespace: nil,
                logFile: directory + "/\(name).log")
            backups.append(process)
            process.waitForLog("listening on")
        }
        let primary = try LabProcess(
            executable: configuration.executable,
            arguments: ["primary"] + addresses.flatMap { ["--backup", $0] }
                + ["--commit", "quorum:2", "--node", "p", "--reconnect-s", "30"] + region + common + writing,
            namespace: nil, logFile: directory + "/primary.log")
        defer { if primary.isRunning { primary.kill9() } }
        var outcome = Outcome(round: round, newPrimaryCommits: 0, violations: [])
        guard
            primary.waitForLine(
                seconds: 30, { LabEvent($0).map { $0.kind == "commit" && ($0.number("epoch") ?? 0) >= 3 } ?? false })
                != nil
        else {
            outcome.violations.append("replication never confirmed 3 epochs (logs in \(directory))")
            return outcome
        }
        // A random moment within the next 1.5 s. Every other round, b1 (first by name, so the one promoted
        // when all hold the same epoch) stops reading a moment before: it falls behind while two backups keep
        // the quorum, and resumes only once another was promoted.
        let stopsFirst = round % 2 == 1
        usleep(UInt32(random.next() % 1_500_000))
        if stopsFirst {
            backups[0].signal(SIGSTOP)
            usleep(300_000)
        }
        let killedAt = MonotonicClock.nanoseconds()
        primary.kill9()
        _ = primary.waitForExit(seconds: 5)
        outcome.stoppedBackup = stopsFirst ? names[0] : nil

        let promoted = waitForPromotion(among: backups)
        if stopsFirst { backups[0].signal(SIGCONT) }
        judge(
            &outcome, primary: primary, backups: backups, names: names, promoted: promoted, killedAt: killedAt,
            directory: directory, followedBy: !killsSuccessor)
        if killsSuccessor, let first = promoted.first {
            outcome.second = killSuccessor(
                first, &outcome, oldPrimary: primary, backups: backups, names: names, directory: directory)
        }
        if outcome.violations.isEmpty { try? FileManager.default.removeItem(atPath: directory) }
        return outcome
    }

    /// Polls the backups' logs for a `promoted` event until one appears or three lease TTLs and 10 s have
    /// passed, returning each promoted backup's index and event.
    func waitForPromotion(
        among backups: [LabProcess], excluding excluded: Int? = nil, settle: Double? = nil
    ) -> [(index: Int, event: LabEvent)] {
        let deadline = Date().addingTimeInterval(settle ?? Double(configuration.leaseTTLSeconds) * 3 + 10)
        var promoted: [(index: Int, event: LabEvent)] = []
        while Date() < deadline, promoted.isEmpty {
            promoted = backups.enumerated().compactMap { index, process in
                guard index != excluded else { return nil }
                return process.lines.compactMap(LabEvent.init).first { $0.kind == "promoted" }.map { (index, $0) }
            }
            usleep(20_000)
        }
        return promoted
    }

    private func judge(
        _ outcome: inout Outcome, primary: LabProcess, backups: [LabProcess], names: [String],
        promoted: [(index: Int, event: LabEvent)], killedAt: UInt64, directory: String, followedBy: Bool
    ) {
        let commits = primary.lines.compactMap(LabEvent.init).filter { $0.kind == "commit" }
        let oldTerm = commits.first?.number("term")
        outcome.lastConfirmedEpoch = commits.compactMap { $0.number("epoch") }.max()
        let digests = primary.epochDigests
        guard let first = promoted.first else {
            outcome.violations.append("no backup was promoted after the primary was killed (logs in \(directory))")
            return
        }
        let (winner, event) = first
        outcome.promotedNode = names[winner]
        outcome.promotedTerm = event.number("term")
        outcome.promotedEpoch = event.number("epoch")
        outcome.failoverSeconds = Double(Int64(event.nanoseconds) - Int64(killedAt)) / 1e9
        // 1. One promotion, with a newer term.
        if let term = outcome.promotedTerm, let old = oldTerm, term <= old {
            outcome.violations.append("promoted with term \(term), not newer than the killed primary's \(old)")
        }
        if let stopped = outcome.stoppedBackup, stopped == names[winner] {
            outcome.violations.append("\(stopped), stopped while the others kept the quorum, was promoted")
        }
        if let violation = Self.imageViolation(
            of: names[winner], epoch: outcome.promotedEpoch, confirmed: outcome.lastConfirmedEpoch,
            digests: digests, directory: directory)
        {
            outcome.violations.append(violation)
        }
        guard followedBy else { return }
        // 3. The others follow: the new primary (at the promoted term, whose lease `fgbi primary` adopts)
        // commits with both (under `all`).
        let winnerProcess = backups[winner]
        let followed = winnerProcess.waitForLine(seconds: 30) { line in
            guard let event = LabEvent(line), event.kind == "commit",
                (event.number("term") ?? 0) >= (outcome.promotedTerm ?? .max)
            else { return false }
            return winnerProcess.lines.compactMap(LabEvent.init).filter { $0.kind == "commit" }.count >= 3
        }
        let newCommits = winnerProcess.lines.compactMap(LabEvent.init).filter { $0.kind == "commit" }
        outcome.newPrimaryCommits = newCommits.count
        if followed == nil {
            let seen = winnerProcess.lines.filter { $0.hasPrefix("event") }.prefix(4).joined(separator: " | ")
            outcome.violations.append(
                """
                the new primary committed no 3 epochs with the two other backups (its first events: \(seen); logs \
                in \(directory))
                """
            )
        }
        for (index, process) in backups.enumerated() where index != winner {
            if process.lines.compactMap(LabEvent.init).contains(where: { $0.kind == "promoted" }) {
                outcome.violations.append("\(names[index]) was promoted too")
            }
        }
        // 4. No epoch committed by two primaries.
        if let old = outcome.lastConfirmedEpoch,
            let overlap = newCommits.compactMap({ $0.number("epoch") }).first(where: { $0 <= old })
        {
            outcome.violations.append(
                "the new primary committed epoch \(overlap), which the old one had numbered and confirmed up to \(old)")
        }
    }

    /// 2. Every confirmed epoch held, and the image exactly the epoch taken over at (`digests`: what the
    /// primaries printed for each epoch).
    static func imageViolation(
        of node: String, epoch: UInt64?, confirmed: UInt64?, digests: [UInt64: UInt64], directory: String
    ) -> String? {
        guard let epoch else { return "\(node) was promoted without an epoch" }
        if let confirmed, epoch < confirmed {
            return "\(node) was promoted at epoch \(epoch), but its lost primary had confirmed epoch \(confirmed)"
        }
        return PartitionDrill.imageViolation(directory + "/\(node).img", epoch: epoch, digests: digests)
    }
}
