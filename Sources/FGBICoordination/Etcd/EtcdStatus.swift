/// What one etcd member says about itself (`/v3/maintenance/status`): enough to check at start-up that the
/// cluster is there and has a leader.
public struct EtcdStatus: Sendable, Equatable {
    /// The client URL that answered.
    public var endpoint: String
    /// The etcd server's version, such as "3.4.23".
    public var version: String
    /// The member that answered.
    public var memberID: UInt64
    /// The member the answering one takes for the leader, 0 when it knows of none.
    public var leader: UInt64
    /// The cluster's current revision.
    public var revision: Int64
    /// The raft term.
    public var raftTerm: UInt64

    public init(endpoint: String, version: String, memberID: UInt64, leader: UInt64, revision: Int64, raftTerm: UInt64)
    {
        self.endpoint = endpoint
        self.version = version
        self.memberID = memberID
        self.leader = leader
        self.revision = revision
        self.raftTerm = raftTerm
    }

    /// Whether the answering member knows of a leader.
    public var hasLeader: Bool { leader != 0 }
}
