/// Where one replicated guest's coordination lives in etcd, under `/fgbi/<cluster>/<guest>/`:
/// - `primary`: who is primary now (a ``PrimaryRecord``), attached to that node's lease, so it vanishes when
///   the lease expires;
/// - `term`: the newest fencing term granted (decimal), never attached to a lease, so terms only grow;
/// - `committed`: written by each promotion: the new term, the node and the last committed epoch it took
///   over at;
/// - `candidates/<node>`: with several backups, each backup that lost the primary says here, on a lease of
///   its own, which epoch it holds and of which term (a ``Candidacy``), so the one holding the newest is
///   promoted;
/// - `commit-group`: the newest primaryship that confirmed a committed epoch, with how many backups it had
///   and how many acknowledged each commit (a ``CommitGroupRecord``), written before that first confirmation:
///   what a promotion among several backups must find among its candidates.
public struct GuestKeys: Sendable, Equatable {
    public let cluster: String
    public let guest: String

    /// - Throws: ``CoordinationError/invalidName(_:_:)`` unless both names are 1-64 of `A-Z a-z 0-9 _ -`.
    public init(cluster: String, guest: String) throws(CoordinationError) {
        try Self.validate(cluster, what: "cluster")
        try Self.validate(guest, what: "guest")
        self.cluster = cluster
        self.guest = guest
    }

    public var prefix: String { "/fgbi/\(cluster)/\(guest)/" }
    public var primary: String { prefix + "primary" }
    public var term: String { prefix + "term" }
    public var committed: String { prefix + "committed" }
    public var candidates: String { prefix + "candidates/" }
    public var commitGroup: String { prefix + "commit-group" }
    public func candidate(_ node: String) -> String { candidates + node }

    /// Checks a name used in keys (cluster, guest, node).
    public static func validate(_ name: String, what: String) throws(CoordinationError) {
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x5F || byte == 0x2D
        }
        guard (1...64).contains(name.utf8.count), allowed else {
            throw .invalidName(what, name)
        }
    }
}
