import FGBI
import FGBIBench
import FGBICoordination
import Foundation
import Testing

/// Primaryship and promotion on a real three-member etcd cluster, as Docs/OPERATIONS.md deploys it: the
/// leader's death moves requests to the other members and the lease lives on; a lost quorum stops every
/// renewal and every promotion until a member returns.
@Suite(
    "Etcd cluster", .serialized,
    .enabled(if: EtcdServer.isAvailable, "needs etcd (Debian package etcd-server; Scripts/bootstrap installs it)"))
struct EtcdClusterTests {
    @Test func theLeadersDeathNeitherCostsTheLeaseNorPromotes() throws {
        let cluster = try EtcdCluster()
        defer { cluster.stop() }
        let client = try EtcdClient(endpoints: cluster.clientURLs, requestTimeout: .milliseconds(300))
        let keys = try GuestKeys(cluster: "c3", guest: "g")
        let primary = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "a", ttlSeconds: 2)
        let arbiter = try EtcdFailoverArbiter(client: client, keys: keys, node: "b", ttlSeconds: 2)
        let leader = try #require(cluster.leader())
        leader.kill9()
        // Two TTLs without the old leader: renewals go to the others, and the backup never takes over.
        let start = Date()
        while Date().timeIntervalSince(start) < 4 {
            #expect(primary.isHeld, "the lease lapsed after the leader died: \(primary.lossReason)")
            guard case .wait = arbiter.decide(lastEpoch: 9) else {
                Issue.record("promoted while the primary renews")
                break
            }
            usleep(250_000)
        }
        #expect(cluster.leader() != nil && cluster.leader() !== leader, "a new leader was elected")
        primary.release()
        #expect(arbiter.decide(lastEpoch: 9) == .promote(term: 2))
        arbiter.promotedLease?.release()
    }

    @Test func withoutAQuorumNoOneRenewsAndNoOneIsPromoted() throws {
        let cluster = try EtcdCluster()
        defer { cluster.stop() }
        let client = try EtcdClient(endpoints: cluster.clientURLs, requestTimeout: .milliseconds(300))
        let keys = try GuestKeys(cluster: "c3", guest: "g")
        let primary = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "a", ttlSeconds: 1)
        let arbiter = try EtcdFailoverArbiter(client: client, keys: keys, node: "b", ttlSeconds: 1)
        cluster.members[0].kill9()
        cluster.members[1].kill9()
        let lost = MonotonicClock.nanoseconds()
        // One member of three cannot commit anything: the primary's renewals fail and its right lapses by its
        // own clock, and the backup is never promoted, though the lease it sees does not expire meanwhile.
        while primary.isHeld, MonotonicClock.nanoseconds() < lost + 3_000_000_000 { usleep(10_000) }
        #expect(!primary.isHeld)
        // A leader left without a quorum still renews leases until it steps down (about an election timeout,
        // 250 ms here); a new leader extends every lease when elected, so this never overlaps a promotion.
        #expect(
            MonotonicClock.nanoseconds() - lost < 1_600_000_000,
            "lapsed within one TTL and an election timeout of the quorum's loss")
        for _ in 0..<4 {
            guard case .wait = arbiter.decide(lastEpoch: 3) else {
                Issue.record("promoted without a quorum")
                return
            }
        }
        // A member returns: the quorum is back, the lease (restored with a fresh TTL, unrenewed) expires, and
        // only then is the backup promoted.
        try cluster.members[1].restart()
        #expect(EtcdCoordinationTests.decision(of: arbiter, lastEpoch: 3, waitingUpTo: 15) == .promote(term: 2))
        arbiter.promotedLease?.release()
    }
}
