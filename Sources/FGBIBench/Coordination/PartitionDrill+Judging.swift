import FGBI
import Foundation

/// How a schedule is judged: the promises of coordinated failover, checked against what the processes printed.
extension PartitionDrill {
    /// Reads the schedule's record from the primary's events and the backup's promotion, and adds to
    /// `outcome` every broken promise: both sides confirming, a promotion behind a confirmed epoch or not at
    /// the epoch's image, an old primary that never stopped, a halt later than the lease.
    func judge(
        _ outcome: inout Outcome, primary: LabProcess, promotedLine: String?, faults: FaultTimes, image: String,
        directory: String
    ) {
        let ttl = configuration.leaseTTLSeconds
        let primaryEvents = primary.lines.compactMap(LabEvent.init)
        let commits = primaryEvents.filter { $0.kind == "commit" }
        outcome.primaryTerm = commits.first?.number("term")
        outcome.lastConfirmedEpoch = commits.compactMap { $0.number("epoch") }.max()
        let digests = primary.epochDigests
        let halt = primaryEvents.first { $0.kind == "lost" }
        if let promoted = promotedLine.flatMap(LabEvent.init) {
            outcome.promotedTerm = promoted.number("term")
            outcome.promotedEpoch = promoted.number("epoch")
            // From the first thing that cost the primary its role: a kill, losing etcd, or its own halt.
            let lostAt = [faults.primaryLostAt, faults.primaryLostEtcdAt, halt?.nanoseconds].compactMap { $0 }.min()
            outcome.failoverSeconds = lostAt.map { Double(Int64(promoted.nanoseconds) - Int64($0)) / 1e9 }
            // 1. At most one side confirms.
            if let late = commits.first(where: { $0.nanoseconds >= promoted.nanoseconds }) {
                outcome.violations.append(
                    "the old primary confirmed epoch \(late.number("epoch") ?? 0) after the backup was promoted")
            }
            if let term = outcome.primaryTerm, let newTerm = outcome.promotedTerm, newTerm <= term {
                outcome.violations.append("promoted with term \(newTerm), not newer than the primary's \(term)")
            }
            // 2. Exactly the epoch it took over at, and nothing confirmed is missing.
            if let epoch = outcome.promotedEpoch {
                if let confirmed = outcome.lastConfirmedEpoch, epoch < confirmed {
                    outcome.violations.append(
                        "promoted at epoch \(epoch), but the primary had confirmed epoch \(confirmed)")
                }
                if let wrong = Self.imageViolation(image, epoch: epoch, digests: digests) {
                    outcome.violations.append(wrong)
                }
            } else {
                outcome.violations.append("promoted without an epoch")
            }
            // 3. The old primary, if it lived, stopped.
            if faults.primaryLostAt == nil, halt == nil {
                outcome.violations.append(
                    "the backup was promoted while the old primary never reported losing primaryship")
            }
        } else if faults.primaryLostAt != nil || halt != nil, !Self.aBackupHeldNoEpoch(directory) {
            // (With two backups and a quorum of one, a backup that held no committed epoch, lost mid-synchronisation,
            // is no candidate, and promotion rightly waits for it: it may have been the only one holding an epoch.)
            outcome.violations.append(
                """
                the primary was \(faults.primaryLostAt != nil ? "killed" : "halted") but the backup never took \
                over (logs in \(directory))
                """
            )
        }
        if let halt,
            let cut = Self.lossBefore(halt.nanoseconds, among: Array(faults.etcdLosses.values))
                ?? faults.primaryLostEtcdAt
        {
            let seconds = Double(Int64(halt.nanoseconds) - Int64(cut)) / 1e9
            outcome.haltSeconds = seconds
            // The last renewal was sent at most a third of a TTL before the cut; the halt line is printed
            // within 10 ms of the halt.
            if seconds > Double(ttl) + 0.25 {
                outcome.violations.append(
                    String(
                        format: "the primary halted %.2f s after losing etcd, more than the %d s lease", seconds, ttl))
            }
        }
        if halt != nil, faults.primaryLostEtcdAt == nil, faults.primaryLostAt == nil {
            outcome.violations.append("the primary lost primaryship though it never lost etcd")
        }
    }

    /// What is wrong with `image` as the replica of `epoch`, given the primary's digests; nil when it is that epoch.
    static func imageViolation(_ image: String, epoch: UInt64, digests: [UInt64: UInt64]) -> String? {
        switch (digests[epoch], try? imageDigest(image)) {
        case (let expected?, let found?) where expected != found:
            return
                """
                the promoted image is not epoch \(epoch) (digest \(String(found, radix: 16)), primary's \
                \(String(expected, radix: 16)))
                """
        case (nil, _):
            return "the primary printed no digest for epoch \(epoch)"
        case (_, nil):
            return "no readable image at \(image)"
        default:
            return nil
        }
    }

    /// The digest of a replica image (one region), as ``EpochDigests/digest(of:)`` takes it.
    static func imageDigest(_ path: String) throws -> UInt64 {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let region = try GuestMemory.anonymous(length: data.count)
        data.withUnsafeBytes { region.base.copyMemory(from: $0.baseAddress!, byteCount: data.count) }
        return EpochDigests.digest(of: [region])
    }
}

extension PartitionDrill {
    /// The start of the outage the primary halted in: of the merged periods without etcd (overlapping cuts
    /// and restarts joined; one still open runs on), the latest that began before `halt`. An outage that
    /// healed before a later one does not count against the later one's halt.
    static func lossBefore(_ halt: UInt64, among losses: [(start: UInt64, end: UInt64?)]) -> UInt64? {
        var merged: [(start: UInt64, end: UInt64)] = []
        for loss in losses.sorted(by: { $0.start < $1.start }) {
            let end = loss.end ?? .max
            if let last = merged.last, loss.start <= last.end {
                merged[merged.count - 1].end = max(last.end, end)
            } else {
                merged.append((loss.start, end))
            }
        }
        return merged.last(where: { $0.start <= halt })?.start
    }
}

extension PartitionDrill {
    /// Whether a backup of the schedule said it holds no committed epoch and so stood as no candidate.
    static func aBackupHeldNoEpoch(_ directory: String) -> Bool {
        ["b", "b2"].contains { name in
            (try? String(contentsOfFile: directory + "/\(name).log", encoding: .utf8))?.contains(
                "holds no committed epoch, so it is no candidate") ?? false
        }
    }
}
