import FGBI
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The rounds that kill the promoted backup too, before or soon after it serves as primary: the two backups
/// left must elect again (no second election meant they waited for ever), promote the one holding every epoch
/// either primary confirmed, and go on committing.
extension GroupFailoverDrill {
    /// Kills the backup promoted first at a random moment of its first 600 ms as primary, then waits for and
    /// judges the second promotion:
    /// 1. exactly one of the two left is promoted, with a term newer than the successor's;
    /// 2. at an epoch at least every epoch either primary confirmed, its image exactly that epoch of the
    ///    successor's history when the successor confirmed any (else of either primary's);
    /// 3. it commits epochs with the backup left, all past every epoch confirmed before.
    func killSuccessor(
        _ first: (index: Int, event: LabEvent), _ outcome: inout Outcome, oldPrimary: LabProcess,
        backups: [LabProcess], names: [String], directory: String
    ) -> SecondPromotion {
        let delay = Int(random.next() % 600)
        usleep(UInt32(delay) * 1000)
        let successor = backups[first.index]
        let killedAt = MonotonicClock.nanoseconds()
        successor.kill9()
        _ = successor.waitForExit(seconds: 5)
        var second = SecondPromotion(killedAfterMilliseconds: delay)
        let successorTerm = first.event.number("term") ?? 0
        let successorCommits = successor.lines.compactMap(LabEvent.init).filter {
            $0.kind == "commit" && ($0.number("term") ?? 0) >= successorTerm
        }
        second.successorConfirmedEpoch = successorCommits.compactMap { $0.number("epoch") }.max()
        // The successor's lease expires (one TTL), then the backups that never heard from it wait two more
        // before they elect again.
        let settle = Double(configuration.leaseTTLSeconds) * 6 + 15
        let promoted = waitForPromotion(among: backups, excluding: first.index, settle: settle)
        guard let (winner, event) = promoted.first else {
            outcome.violations.append(
                """
                after the promoted \(names[first.index]) was killed too, no other backup was promoted (logs in \
                \(directory))
                """
            )
            return second
        }
        second.promotedNode = names[winner]
        second.promotedTerm = event.number("term")
        second.promotedEpoch = event.number("epoch")
        second.failoverSeconds = Double(Int64(event.nanoseconds) - Int64(killedAt)) / 1e9
        if let term = second.promotedTerm, term <= successorTerm {
            outcome.violations.append(
                "second promotion with term \(term), not newer than the successor's \(successorTerm)")
        }
        let confirmed = [outcome.lastConfirmedEpoch, second.successorConfirmedEpoch].compactMap { $0 }.max()
        // The successor's digests name its own history; epochs it never confirmed may also be the old primary's.
        var digests = successor.epochDigests
        if second.successorConfirmedEpoch == nil {
            digests.merge(oldPrimary.epochDigests) { successorDigest, _ in successorDigest }
        }
        var violation = Self.imageViolation(
            of: names[winner], epoch: second.promotedEpoch, confirmed: confirmed, digests: digests,
            directory: directory)
        if violation != nil, second.successorConfirmedEpoch == nil, let epoch = second.promotedEpoch {
            // Not the successor's uncommitted epoch: then it must be the old primary's.
            violation = Self.imageViolation(
                of: names[winner], epoch: epoch, confirmed: confirmed, digests: oldPrimary.epochDigests,
                directory: directory)
        }
        if let violation { outcome.violations.append("second election: \(violation)") }
        judgeSecondCommits(&second, &outcome, winner: backups[winner], confirmed: confirmed, directory: directory)
        let third = backups.indices.first { $0 != winner && $0 != first.index }
        if let third, backups[third].lines.compactMap(LabEvent.init).contains(where: { $0.kind == "promoted" }) {
            outcome.violations.append("second election: \(names[third]) was promoted too")
        }
        return second
    }

    /// 3. The second successor commits epochs with the backup left, none at or before an epoch confirmed
    /// earlier.
    private func judgeSecondCommits(
        _ second: inout SecondPromotion, _ outcome: inout Outcome, winner: LabProcess, confirmed: UInt64?,
        directory: String
    ) {
        let term = second.promotedTerm ?? .max
        let ownCommits = { winner.lines.compactMap(LabEvent.init).filter { $0.kind == "commit" } }
        let committed = winner.waitForLine(seconds: 30) { line in
            guard let event = LabEvent(line), event.kind == "commit", (event.number("term") ?? 0) >= term else {
                return false
            }
            return ownCommits().count >= 3
        }
        second.newPrimaryCommits = ownCommits().count
        if committed == nil {
            outcome.violations.append(
                "second election: the new primary committed no 3 epochs with the backup left (logs in \(directory))")
        }
        if let confirmed,
            let overlap = ownCommits().compactMap({ $0.number("epoch") }).first(where: { $0 <= confirmed })
        {
            outcome.violations.append(
                """
                second election: the new primary committed epoch \(overlap), at or before epoch \(confirmed) \
                confirmed earlier
                """
            )
        }
    }

    static func describe(_ second: SecondPromotion) -> String {
        "; successor killed after \(second.killedAfterMilliseconds) ms"
            + (second.successorConfirmedEpoch.map { " (it confirmed epoch \($0))" } ?? " (it confirmed none)")
            + (second.promotedNode.map {
                ", then \($0) promoted with term \(second.promotedTerm ?? 0) at epoch "
                    + (second.promotedEpoch.map(String.init) ?? "-")
            } ?? ", then no promotion")
            + (second.failoverSeconds.map { String(format: " after %.2f s", $0) } ?? "")
            + ", committed \(second.newPrimaryCommits)"
    }
}
