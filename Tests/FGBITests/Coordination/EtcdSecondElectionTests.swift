import FGBI
import FGBIBench
import Foundation
import Testing

@testable import FGBICoordination

/// A promoted backup's primaryship across its turn into `fgbi primary`, and what happens when it is lost on
/// the way, against a real etcd: the lease is handed over (the `primary` key never vanishes), a successor
/// lost before it serves is replaced by a second election among the backups left, and a promoted node that
/// gave its lease up serves its replica again only if no other promotion came since.
@Suite(
    "Etcd: handover and second election", .serialized,
    .enabled(if: EtcdServer.isAvailable, "needs etcd (Debian package etcd-server; Scripts/bootstrap installs it)"))
struct EtcdSecondElectionTests {
    private static func promote(
        _ arbiters: [EtcdFailoverArbiter], epochs: [UInt64], group: BackupGroup, lostTerm: UInt64
    ) -> Int? {
        for _ in 0..<3 {
            for (index, arbiter) in arbiters.enumerated() {
                let decision = arbiter.decide(
                    lastEpoch: epochs[index], heldTerm: lostTerm, sessionTerms: [lostTerm], group: group,
                    lostTerm: lostTerm)
                if case .promote = decision { return index }
            }
        }
        return nil
    }

    @Test func aHandedOverLeaseIsAdoptedAndRecordsTheFirstCommit() throws {
        let server = try EtcdServer()
        defer { server.stop() }
        let client = try EtcdClient(endpoints: [server.clientURL], requestTimeout: .milliseconds(500))
        let keys = try GuestKeys(cluster: "t", guest: "handover")
        let old = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "b1", ttlSeconds: 2)
        let handover = try old.handOver()
        #expect(handover == EtcdPrimaryLease.Handover(leaseID: old.leaseID, term: old.term))
        #expect(try EtcdPrimaryLease.Handover(parsing: handover.description) == handover)
        old.release() // handed over: nothing to revoke
        #expect(try client.get(keys.primary) != nil, "the primary key vanished in the handover")
        #expect(throws: FGBIError.self) {
            try EtcdPrimaryLease.adopt(client: client, keys: keys, node: "b2", handover: handover)
        }
        let adopted = try EtcdPrimaryLease.adopt(client: client, keys: keys, node: "b1", handover: handover)
        defer { adopted.release() }
        #expect(adopted.isHeld && adopted.term == old.term)
        #expect(adopted.recordFirstCommit(backups: 3, quorum: 2))
        let record = try #require(try client.get(keys.commitGroup))
        #expect(
            try CommitGroupRecord.decode(record.value, key: keys.commitGroup)
                == CommitGroupRecord(term: old.term, backups: 3, quorum: 2))
        #expect(adopted.recordFirstCommit(backups: 3, quorum: 2), "recording twice is not idempotent")
        // Renewals go on from the adopting process: still held after more than a time to live.
        MonotonicClock.sleep(nanoseconds: 2_500_000_000)
        #expect(adopted.isHeld, "the adopted lease was not renewed: \(adopted.lossReason)")
        #expect(throws: (any Error).self) { try EtcdPrimaryLease.Handover(parsing: "12") }
    }

    @Test func aSuccessorLostBeforeItServesIsReplacedByASecondElection() throws {
        let server = try EtcdServer()
        defer { server.stop() }
        let client = try EtcdClient(endpoints: [server.clientURL], requestTimeout: .milliseconds(500))
        let keys = try GuestKeys(cluster: "t", guest: "second")
        let group = BackupGroup(backups: 3, quorum: 2)
        let primary = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "p", ttlSeconds: 1)
        let lostTerm = primary.term
        primary.release()
        let arbiters = try ["b1", "b2", "b3"].map {
            try EtcdFailoverArbiter(client: client, keys: keys, node: $0, ttlSeconds: 1)
        }
        let first = try #require(Self.promote(arbiters, epochs: [41, 40, 39], group: group, lostTerm: lostTerm))
        #expect(first == 0)
        // The others stand down for b1 while it holds the key.
        guard
            case .standDown = arbiters[1].decide(
                lastEpoch: 40, heldTerm: lostTerm, sessionTerms: [lostTerm], group: group, lostTerm: lostTerm)
        else {
            Issue.record("b2 did not follow the promoted b1")
            return
        }
        // b1 dies before serving anyone: its lease goes, the term it was granted stays.
        let successor = try #require(arbiters[0].promotedLease)
        _ = try successor.handOver()
        _ = try client.revoke(successor.leaseID)
        let survivors = Array(arbiters[1...])
        guard
            case .wait(let why) = survivors[0].decide(
                lastEpoch: 40, heldTerm: lostTerm, sessionTerms: [lostTerm], group: group, lostTerm: lostTerm)
        else {
            Issue.record("b2 elected again at once, with no time for a promoted node to acquire anew")
            return
        }
        #expect(why.contains("no node holds it now"), "\(why)")
        let deadline = MonotonicClock.nanoseconds() + 6_000_000_000
        var second: Int?
        while second == nil, MonotonicClock.nanoseconds() < deadline {
            second = Self.promote(survivors, epochs: [40, 39], group: group, lostTerm: lostTerm)
            MonotonicClock.sleep(nanoseconds: 100_000_000)
        }
        #expect(second == 0, "b2, holding the newest epoch left, was not promoted in a second election")
        #expect(survivors[0].promotedLease?.term == successor.term + 1)
        survivors[0].promotedLease?.release()
        survivors[1].withdrawCandidacy()
    }

    @Test func aPromotedNodeServesItsReplicaAgainOnlyIfNoPromotionCameSince() throws {
        let server = try EtcdServer()
        defer { server.stop() }
        let client = try EtcdClient(endpoints: [server.clientURL], requestTimeout: .milliseconds(500))
        let keys = try GuestKeys(cluster: "t", guest: "again")
        let primary = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "p", ttlSeconds: 2)
        primary.release()
        let arbiter = try EtcdFailoverArbiter(client: client, keys: keys, node: "b", ttlSeconds: 2)
        #expect(arbiter.decide(lastEpoch: 9) == .promote(term: primary.term + 1))
        arbiter.promotedLease?.release() // given up for an --on-failover service
        #expect(throws: FGBIError.self) {
            try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "b", ttlSeconds: 2, continuingAfter: 8)
        }
        let again = try EtcdPrimaryLease.acquire(
            client: client, keys: keys, node: "b", ttlSeconds: 2, continuingAfter: 9)
        #expect(again.term == primary.term + 2)
        again.release()
        // Another node took over since: b's replica may lack what it committed.
        let other = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "q", ttlSeconds: 2)
        other.release()
        #expect(throws: FGBIError.self) {
            try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "b", ttlSeconds: 2, continuingAfter: 9)
        }
    }

    @Test func aPromotedNodeWhoseTermCommittedSinceDoesNotServeItsOldReplica() throws {
        let server = try EtcdServer()
        defer { server.stop() }
        let client = try EtcdClient(endpoints: [server.clientURL], requestTimeout: .milliseconds(500))
        let keys = try GuestKeys(cluster: "t", guest: "stale")
        let primary = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "p", ttlSeconds: 2)
        primary.release()
        let arbiter = try EtcdFailoverArbiter(client: client, keys: keys, node: "b", ttlSeconds: 2)
        #expect(arbiter.decide(lastEpoch: 9) == .promote(term: primary.term + 1))
        // The promoted lease, adopted by `fgbi primary`, confirmed commits after epoch 9, then the node died.
        let promoted = try #require(arbiter.promotedLease)
        #expect(promoted.recordFirstCommit(backups: 1, quorum: 1))
        promoted.release()
        #expect(throws: FGBIError.self) {
            try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "b", ttlSeconds: 2, continuingAfter: 9)
        }
    }

    @Test func aLoneBackupNeverTakesOverPastCommitsItMayLack() throws {
        let server = try EtcdServer()
        defer { server.stop() }
        let client = try EtcdClient(endpoints: [server.clientURL], requestTimeout: .milliseconds(500))
        let keys = try GuestKeys(cluster: "t", guest: "alone")
        let primary = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "p", ttlSeconds: 2)
        let term = primary.term
        #expect(primary.recordFirstCommit(backups: 3, quorum: 2))
        primary.release()
        let arbiter = try EtcdFailoverArbiter(client: client, keys: keys, node: "b", ttlSeconds: 2)
        // Term `term` committed with three backups: a backup whose last primary named it alone waits for
        // their election, and one holding an older term waits for a backup of the newer.
        guard case .wait(let group) = arbiter.decide(lastEpoch: 9, heldTerm: term) else {
            Issue.record("a lone backup took over past a group's commits")
            return
        }
        #expect(group.contains("only an election among them"), "\(group)")
        guard case .wait(let older) = arbiter.decide(lastEpoch: 9, heldTerm: term - 1) else {
            Issue.record("a backup of an older term took over")
            return
        }
        #expect(older.contains("confirmed commits after the epoch this backup holds"), "\(older)")
    }
}
