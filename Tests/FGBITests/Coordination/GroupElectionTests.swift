import FGBI
import Testing

@testable import FGBICoordination

/// The rule that picks a successor among several backups' candidacies (``GroupElection``), apart from etcd:
/// the newest history first (the term that produced the held epoch, then the epoch), enough candidates that
/// served the term that confirmed the last commit, and never a candidate older than that term.
@Suite("Group election rule")
struct GroupElectionTests {
    private static let threeOfQuorumTwo = BackupGroup(backups: 3, quorum: 2)

    private static func candidate(
        _ node: String, epoch: UInt64, held: UInt64, sessions: [UInt64]? = nil
    ) -> Candidacy {
        Candidacy(node: node, term: 7, epoch: epoch, heldTerm: held, sessionTerms: sessions ?? [held])
    }

    private static func verdict(
        for node: String, among standing: [Candidacy], record: CommitGroupRecord?, known: BackupGroup = threeOfQuorumTwo
    ) -> GroupElection.Verdict {
        GroupElection.verdict(standing: standing, record: record, knownGroup: known, node: node)
    }

    /// Expects a wait whose reason contains `reason`.
    private static func expectWait(
        _ verdict: GroupElection.Verdict, saying reason: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard case .wait(let why) = verdict else {
            Issue.record("promoted, where it should wait (\(reason))", sourceLocation: sourceLocation)
            return
        }
        #expect(why.contains(reason), "\(why)", sourceLocation: sourceLocation)
    }

    @Test func aNewerTermOutranksAHigherEpochOfAnOlderOne() {
        // b2 holds epoch 50 of term 5 (uncommitted epochs of a primary that lost; its synchronisation with term
        // 6's primary was undone), b3 epoch 45 of term 6 (that successor's history, which holds every commit).
        let standing = [
            Self.candidate("b2", epoch: 50, held: 5, sessions: [5, 6]), Self.candidate("b3", epoch: 45, held: 6),
        ]
        #expect(Candidacy.first(standing)?.node == "b3")
        let record = CommitGroupRecord(term: 6, backups: 2, quorum: 1)
        #expect(Self.verdict(for: "b3", among: standing, record: record) == .promote)
        Self.expectWait(
            Self.verdict(for: "b2", among: standing, record: record), saying: "node b3 holds epoch 45 of term 6")
    }

    @Test func noCandidateOlderThanTheTermThatLastCommittedWins() {
        // Term 6 confirmed commits, but only backups holding term 5 stand: one of term 6 must come.
        let standing = [Self.candidate("b1", epoch: 60, held: 5), Self.candidate("b2", epoch: 61, held: 5)]
        Self.expectWait(
            Self.verdict(for: "b2", among: standing, record: CommitGroupRecord(term: 6, backups: 3, quorum: 2)),
            saying: "no candidate holds an epoch of term 6")
    }

    @Test func theLastCommittingGroupSetsHowManyMustStand() {
        let record = CommitGroupRecord(term: 6, backups: 3, quorum: 2)
        let alone = [Self.candidate("b1", epoch: 60, held: 6)]
        Self.expectWait(
            Self.verdict(for: "b1", among: alone, record: record, known: BackupGroup(backups: 1, quorum: 1)),
            saying: "1 of the 2 candidates needed")
        let two = alone + [Self.candidate("b2", epoch: 58, held: 6)]
        #expect(Self.verdict(for: "b1", among: two, record: record) == .promote)
        // A candidate of a newer term than the record's started from every commit: no count is needed.
        #expect(Self.verdict(for: "b3", among: [Self.candidate("b3", epoch: 12, held: 7)], record: record) == .promote)
    }

    @Test func onlyBackupsOfTheCommittingTermCount() {
        // Term 8 confirmed commits with quorum 2 of 3; b1 holds epoch 99 of it. x was never one of term 8's
        // backups (its last session was with term 6): it does not make the second candidate needed, whatever
        // it holds (c and d, which acknowledged epoch 100, may be the ones gone).
        let record = CommitGroupRecord(term: 8, backups: 3, quorum: 2)
        let b1 = Self.candidate("b1", epoch: 99, held: 8)
        let outsider = Self.candidate("x", epoch: 120, held: 6)
        Self.expectWait(
            Self.verdict(for: "b1", among: [b1, outsider], record: record),
            saying: "1 of the 2 candidates needed that served term 8")
        // A backup of term 8 that lags (it holds term 6 still, but began a session with term 8's primary)
        // counts: it did not acknowledge term 8's commits, so b1 holds the last.
        let lagging = Self.candidate("c", epoch: 80, held: 6, sessions: [6, 8])
        #expect(Self.verdict(for: "b1", among: [b1, outsider, lagging], record: record) == .promote)
    }

    @Test func withoutARecordTheKnownGroupCounts() {
        let standing = [Self.candidate("b1", epoch: 9, held: 0)]
        Self.expectWait(
            Self.verdict(for: "b1", among: standing, record: nil),
            saying: "1 of the 2 candidates needed (of 3 backups, quorum 2)")
        let ties = standing + [Self.candidate("a0", epoch: 9, held: 0)]
        #expect(Self.verdict(for: "a0", among: ties, record: nil) == .promote)
    }

    @Test func recordsAndCandidaciesReadBackAndRefuseWhatNoNodeWrites() throws {
        let record = CommitGroupRecord(term: 9, backups: 3, quorum: 2)
        #expect(try CommitGroupRecord.decode(record.encoded, key: "k") == record)
        for bad in ["term=9 backups=3", "term=9 backups=2 quorum=3", "term=x backups=3 quorum=2", ""] {
            #expect(throws: CoordinationError.self) { try CommitGroupRecord.decode(Array(bad.utf8), key: "k") }
        }
        let candidacy = Candidacy(node: "b1", term: 4, epoch: 30, heldTerm: 3, sessionTerms: [2, 3, 4])
        #expect(Candidacy(node: "b1", value: candidacy.encoded) == candidacy)
        let none = Candidacy(node: "b1", term: 4, epoch: 30, heldTerm: 0, sessionTerms: [])
        #expect(Candidacy(node: "b1", value: none.encoded) == none)
        // An older node's value, without the held term, counts with an unknown one and no sessions.
        #expect(Candidacy(node: "b1", value: Array("term=4 epoch=30".utf8))?.heldTerm == 0)
        for bad in [
            "term=4 epoch=30 held=x sessions=", "term=4 epoch=30 held=3", "term=4 epoch=30 held=3 sessions=1,y",
        ] {
            #expect(Candidacy(node: "b1", value: Array(bad.utf8)) == nil, "\(bad)")
        }
    }
}
