import FGBI

/// What a backup of several says in etcd once it lost its primary: the term it elects a successor for, the
/// epoch it holds, the fencing term of the primaryship that produced that epoch, and the terms of the last
/// primaries it began sessions with (`term=T epoch=E held=H sessions=S1,S2`), under `candidates/<node>` on a
/// lease of its own, so a candidate that dies drops out.
struct Candidacy: Equatable {
    var node: String
    var term: UInt64
    var epoch: UInt64
    /// The term of the primary whose epoch the replica holds (0: unknown, which ranks lowest).
    var heldTerm: UInt64
    /// Terms of primaries this backup began a session with (the newest few): it was one of their backups.
    var sessionTerms: [UInt64]

    /// This node's candidacy as it stands in etcd.
    struct Held {
        var candidacy: Candidacy
        var leaseID: Int64
        var renewedAt: UInt64
    }

    var encoded: [UInt8] {
        let sessions = sessionTerms.map(String.init).joined(separator: ",")
        return Array("term=\(term) epoch=\(epoch) held=\(heldTerm) sessions=\(sessions)".utf8)
    }

    /// Nil for a value no FGBI node writes (it does not count). A value without `held=` and `sessions=` (an
    /// older node's) counts with an unknown held term and no sessions.
    init?(node: String, value: [UInt8]) {
        let fields = String(decoding: value, as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count == 2 || fields.count == 4, fields[0].hasPrefix("term="), fields[1].hasPrefix("epoch="),
            let term = UInt64(fields[0].dropFirst(5)), let epoch = UInt64(fields[1].dropFirst(6))
        else { return nil }
        var heldTerm: UInt64 = 0
        var sessionTerms: [UInt64] = []
        if fields.count == 4 {
            guard fields[2].hasPrefix("held="), let held = UInt64(fields[2].dropFirst(5)),
                fields[3].hasPrefix("sessions=")
            else { return nil }
            let listed = fields[3].dropFirst(9).split(separator: ",")
            let terms = listed.compactMap { UInt64($0) }
            guard terms.count == listed.count, terms.count <= 64 else { return nil }
            heldTerm = held
            sessionTerms = terms
        }
        self.init(node: node, term: term, epoch: epoch, heldTerm: heldTerm, sessionTerms: sessionTerms)
    }

    init(node: String, term: UInt64, epoch: UInt64, heldTerm: UInt64, sessionTerms: [UInt64] = []) {
        self.node = node
        self.term = term
        self.epoch = epoch
        self.heldTerm = heldTerm
        self.sessionTerms = sessionTerms
    }

    /// Whether this candidate was one of the backups of the primary of `term`: it holds an epoch of that term,
    /// or began a session with it.
    func servedPrimary(ofTerm term: UInt64) -> Bool { heldTerm == term || sessionTerms.contains(term) }

    /// Who goes first: the newest history (the term of the primary that produced the held epoch, then the
    /// epoch), then, for a tie, the smallest node name.
    static func first(_ candidates: [Candidacy]) -> Candidacy? {
        candidates.min { ($1.heldTerm, $1.epoch, $0.node) < ($0.heldTerm, $0.epoch, $1.node) }
    }
}

/// The value of a guest's `commit-group` key: the newest primaryship that confirmed a committed epoch, how many
/// backups it replicated to and how many acknowledged each commit (`term=T backups=N quorum=K`). Its primary
/// writes it before it confirms its first commit, once `quorum` backups applied an epoch of its term.
struct CommitGroupRecord: Sendable, Equatable {
    var term: UInt64
    var backups: Int
    var quorum: Int

    init(term: UInt64, backups: Int, quorum: Int) {
        self.term = term
        self.backups = backups
        self.quorum = quorum
    }

    var encoded: [UInt8] { Array("term=\(term) backups=\(backups) quorum=\(quorum)".utf8) }

    /// - Throws: ``CoordinationError/malformedRecord(_:_:)`` for bytes that are not such a record.
    static func decode(_ bytes: [UInt8], key: String) throws(CoordinationError) -> CommitGroupRecord {
        let fields = String(decoding: bytes, as: UTF8.self).split(separator: " ")
        guard fields.count == 3, fields[0].hasPrefix("term="), fields[1].hasPrefix("backups="),
            fields[2].hasPrefix("quorum="), let term = UInt64(fields[0].dropFirst(5)),
            let backups = Int(fields[1].dropFirst(8)), let quorum = Int(fields[2].dropFirst(7)),
            backups >= 1, (1...backups).contains(quorum)
        else { throw .malformedRecord(key, String(decoding: bytes.prefix(80), as: UTF8.self)) }
        return CommitGroupRecord(term: term, backups: backups, quorum: quorum)
    }
}

/// Whether a candidate may be promoted among the candidacies standing for one lost term: the rule, apart from
/// etcd, so that it is read and tested on its own.
///
/// Every committed epoch was confirmed under a term no newer than the `commit-group` record's, `g`, and at
/// least its quorum of backups applied an epoch of term `g` before the record was written. So the candidate
/// first by (held term, epoch) holds every committed epoch when:
/// - its held term is newer than `g`: that primaryship started from a replica holding every commit (it was
///   promoted by this rule, or took over its own), and none was confirmed after it began;
/// - its held term is `g` and at least `backups - quorum + 1` of the candidates were backups of term `g`'s
///   primary (they hold an epoch of it, or began a session with it; any other node, whatever it says, does
///   not count): the backups that acknowledged `g`'s last commit all began a session with that primary, so
///   one of them stands, and the first among those holding term `g` holds at least that epoch.
/// A first candidate holding an older term than `g` never wins: the backups holding term `g` must stand. A
/// backup of term `g` that never connected to its primary does not count either (it cannot show it was one),
/// which may keep a promotion waiting that a count by name would allow.
/// Without a record (no primary confirmed a commit through this rule), the group the candidate knows from
/// its primary's handshake sets the count, as before.
enum GroupElection {
    enum Verdict: Equatable {
        case promote
        case wait(String)
    }

    static func verdict(
        standing: [Candidacy], record: CommitGroupRecord?, knownGroup: BackupGroup, node: String
    ) -> Verdict {
        guard let first = Candidacy.first(standing) else { return .wait("no candidate stands yet") }
        if let record {
            if first.heldTerm < record.term {
                return .wait(
                    """
                    no candidate holds an epoch of term \(record.term), the newest primaryship that confirmed a \
                    commit (quorum \(record.quorum) of \(record.backups)): waiting for one of its backups
                    """
                )
            }
            let needed = record.backups - record.quorum + 1
            let members = standing.filter { $0.servedPrimary(ofTerm: record.term) }.count
            if first.heldTerm == record.term, members < needed {
                return .wait(
                    """
                    \(members) of the \(needed) candidates needed that served term \(record.term) (which confirmed \
                    commits with quorum \(record.quorum) of \(record.backups) backups) have said which epoch they hold
                    """
                )
            }
        } else if standing.count < knownGroup.candidatesNeeded {
            return .wait(
                """
                \(standing.count) of the \(knownGroup.candidatesNeeded) candidates needed (of \(knownGroup.backups) \
                backups, quorum \(knownGroup.quorum)) have said which epoch they hold
                """
            )
        }
        guard first.node == node else {
            return .wait(
                """
                node \(first.node) holds epoch \(first.epoch) of term \(first.heldTerm), newer than this backup's \
                (or first by name)
                """
            )
        }
        return .promote
    }
}
