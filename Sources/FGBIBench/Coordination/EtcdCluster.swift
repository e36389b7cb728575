import FGBI
import FGBICoordination
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real etcd cluster of several members on this machine (three by default, as Docs/OPERATIONS.md deploys
/// them), each an ``EtcdServer`` with its own ports and data: a member can be killed, stopped and restarted
/// to test what a leader change or a lost quorum does to leases and promotion.
public final class EtcdCluster: @unchecked Sendable {
    public let members: [EtcdServer]

    /// Starts `count` members on `host` and waits until every one answers with a leader.
    public init(
        members count: Int = 3, host: String = "127.0.0.1", electionTimeout: Duration = .milliseconds(250),
        startTimeout: Duration = .seconds(20)
    ) throws {
        let token = "fgbi-cluster-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        members = try (0..<count).map {
            try EtcdServer(
                member: "m\($0)", host: host, clusterToken: token, electionTimeout: electionTimeout,
                startTimeout: startTimeout)
        }
        let cluster = members.map { "\($0.name)=\($0.peerURL)" }.joined(separator: ",")
        do {
            for member in members { try member.startMember(cluster: cluster) }
            for member in members { try member.waitUntilReady() }
        } catch {
            for member in members { member.kill9() }
            throw error
        }
    }

    /// Every member's client URL, for `--etcd` or ``EtcdClient``.
    public var clientURLs: [String] { members.map(\.clientURL) }

    /// The member that leads now (asked of each running member in turn), or nil when none knows of a leader.
    public func leader() -> EtcdServer? {
        for member in members where member.isRunning {
            guard let client = try? EtcdClient(endpoints: [member.clientURL], requestTimeout: .milliseconds(300)),
                let status = try? client.status(), status.hasLeader
            else { continue }
            for candidate in members where candidate.isRunning {
                if let other = try? EtcdClient(endpoints: [candidate.clientURL], requestTimeout: .milliseconds(300)),
                    let own = try? other.status(), own.memberID == status.leader
                {
                    return candidate
                }
            }
        }
        return nil
    }

    /// Stops every member.
    public func stop() {
        for member in members { member.stop() }
    }
}
