import FGBI
import FGBIBench
import Foundation
import Testing

@testable import FGBICoordination

/// Promotion among several backups against a real etcd: nobody is promoted while the lost primary's lease
/// lives or while too few backups stand as candidates, then only the one holding the newest epoch, and the
/// others stand down (to serve the new primary).
@Suite(
    "Etcd promotion among several backups", .serialized,
    .enabled(if: EtcdServer.isAvailable, "needs etcd (Debian package etcd-server; Scripts/bootstrap installs it)"))
struct EtcdGroupPromotionTests {
    @Test func theCandidateHoldingTheNewestEpochIsPromotedOnceEnoughStand() throws {
        let server = try EtcdServer()
        defer { server.stop() }
        let client = try EtcdClient(endpoints: [server.clientURL], requestTimeout: .milliseconds(500))
        let keys = try GuestKeys(cluster: "t", guest: "g")
        let group = BackupGroup(backups: 3, quorum: 2)
        let primary = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "p", ttlSeconds: 5)
        let lostTerm = primary.term
        let arbiters = try ["b1", "b2", "b3"].map {
            try EtcdFailoverArbiter(client: client, keys: keys, node: $0, ttlSeconds: 5)
        }
        // b1 holds epoch 40, b2 epoch 41 (the newest), b3 is gone.
        if case .wait(let why) = arbiters[1].decide(
            lastEpoch: 41, heldTerm: lostTerm, sessionTerms: [lostTerm], group: group, lostTerm: lostTerm)
        {
            #expect(why.contains("still holds primaryship"), "\(why)")
        } else {
            Issue.record("decided while the primary's lease lives")
        }
        primary.release()
        // One candidate of the two needed: b1 waits (it is not enough alone, and it is not the newest either).
        guard
            case .wait(let alone) = arbiters[0].decide(
                lastEpoch: 40, heldTerm: lostTerm, sessionTerms: [lostTerm], group: group, lostTerm: lostTerm)
        else {
            Issue.record("a lone candidate was decided for")
            return
        }
        #expect(alone.contains("1 of the 2 candidates needed"), "\(alone)")
        // b2 stands too: it holds the newest epoch, so it is promoted; b1, asked again, waits for it.
        #expect(
            arbiters[1].decide(
                lastEpoch: 41, heldTerm: lostTerm, sessionTerms: [lostTerm], group: group, lostTerm: lostTerm)
                == .promote(term: lostTerm + 1))
        guard
            case .standDown(let why) = arbiters[0].decide(
                lastEpoch: 40, heldTerm: lostTerm, sessionTerms: [lostTerm], group: group, lostTerm: lostTerm)
        else {
            Issue.record("b1 did not stand down once b2 was primary")
            return
        }
        #expect(why.contains("node b2 is primary with term \(lostTerm + 1)"), "\(why)")
        // The promoted node's candidacy went with its promotion; b1 withdrew on standing down.
        let left = try client.getPrefix(keys.candidates).map(\.key)
        #expect(left.isEmpty, "candidacies left: \(left)")
        arbiters[1].promotedLease?.release()
    }

    @Test func aCandidateBehindNeverOvertakesOneAheadThatStands() throws {
        let server = try EtcdServer()
        defer { server.stop() }
        let client = try EtcdClient(endpoints: [server.clientURL], requestTimeout: .milliseconds(500))
        let keys = try GuestKeys(cluster: "t", guest: "h")
        let group = BackupGroup(backups: 3, quorum: 2)
        let primary = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "p", ttlSeconds: 5)
        let lostTerm = primary.term
        primary.release()
        let behind = try EtcdFailoverArbiter(client: client, keys: keys, node: "a", ttlSeconds: 5)
        let ahead = try EtcdFailoverArbiter(client: client, keys: keys, node: "z", ttlSeconds: 5)
        _ = ahead.decide(lastEpoch: 9, heldTerm: lostTerm, sessionTerms: [lostTerm], group: group, lostTerm: lostTerm)
        for _ in 0..<5 {
            guard
                case .wait(let why) = behind.decide(
                    lastEpoch: 8, heldTerm: lostTerm, sessionTerms: [lostTerm], group: group, lostTerm: lostTerm)
            else {
                Issue.record("the candidate behind decided")
                return
            }
            #expect(why.contains("node z holds epoch 9"), "\(why)")
        }
        // A candidacy of an older term does not count.
        try client.put(keys.candidate("old"), value: Array("term=\(lostTerm - 1) epoch=99".utf8))
        #expect(
            ahead.decide(lastEpoch: 9, heldTerm: lostTerm, sessionTerms: [lostTerm], group: group, lostTerm: lostTerm)
                == .promote(term: lostTerm + 1))
        ahead.promotedLease?.release()
        behind.withdrawCandidacy()
    }
}
