import FGBI
import FGBIBench
import FGBICoordination
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The whole cycle through the library with etcd (Docs/RELIABILITY.md, promise 5d): a backup promoted by
/// etcd serves as the primary of its replica under the term it was granted, and the former primary rejoins
/// as its backup, fenced to that term.
@Suite(
    "Etcd takeover", .serialized,
    .enabled(if: EtcdServer.isAvailable, "needs etcd (Debian package etcd-server; Scripts/bootstrap installs it)"))
struct EtcdTakeoverTests {
    @Test func aPromotedBackupServesUnderItsTermAndTheFormerPrimaryRejoins() throws {
        let server = try EtcdServer()
        defer { server.stop() }
        let client = try EtcdClient(endpoints: [server.clientURL], requestTimeout: .milliseconds(300))
        let keys = try GuestKeys(cluster: "t", guest: "g")
        let length = 16 << 20
        let nodeA = try GuestMemory.anonymous(length: length)
        let nodeB = try GuestMemory.anonymous(length: length)
        for node in [nodeA, nodeB] { try node.prefault() }
        SyntheticWorkload.fillInitial(nodeA, seed: 11)

        // A primary of term 1, B its backup under an etcd arbiter.
        let leaseA = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "a", ttlSeconds: 2)
        var backupConfiguration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
        backupConfiguration.primaryTimeout = .milliseconds(300)
        let arbiterB = try EtcdFailoverArbiter(client: client, keys: keys, node: "b", ttlSeconds: 2)
        backupConfiguration.arbiter = arbiterB
        let backupB = try Backup(regions: [nodeB], configuration: backupConfiguration)
        defer { arbiterB.promotedLease?.release() }
        let servedB = try backupB.start()
        var configuration = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backupB.port))
        configuration.authority = leaseA
        configuration.reconnectWindow = .zero
        let primaryA = try Primary(regions: [nodeA], configuration: configuration)
        try primaryA.start()
        #expect(primaryA.waitForCommit(1, timeout: .seconds(30)))
        TakeoverTests.scribble(nodeA, seed: 1, pages: 100)
        #expect(primaryA.waitForCommit((primaryA.committedEpoch ?? 0) + 2, timeout: .seconds(30)))
        // A loses its lease (as a node cut from etcd would): it halts without a bye; B is promoted.
        leaseA.release()
        #expect(throws: LostPrimaryship.self) { try primaryA.stop() }
        TakeoverTests.scribble(nodeA, seed: 2, pages: 50) // A's guest ran on past its last confirmed epoch
        let outcome = try #require(try servedB.outcome(timeout: .seconds(30)), "B ended")
        guard case .promoted(let epoch?, let term, _) = outcome else {
            Issue.record("B was not promoted: \(outcome)")
            return
        }
        #expect(term == 2)

        // B serves as the primary of its replica under the term it was granted; A rejoins as its backup.
        var rejoinConfiguration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
        rejoinConfiguration.primaryTimeout = .seconds(5)
        rejoinConfiguration.arbiter = try EtcdFailoverArbiter(client: client, keys: keys, node: "a", ttlSeconds: 2)
        let backupA = try Backup(
            regions: [nodeA], configuration: rejoinConfiguration, holding: .formerPrimary(lastEpoch: nil))
        let servedA = try backupA.start()
        var successor = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backupA.port))
        successor.authority = try #require(arbiterB.promotedLease)
        successor.continuesAfterEpoch = epoch
        let primaryB = try Primary(regions: [nodeB], configuration: successor)
        try primaryB.start()
        let first = try #require(primaryB.statistics.lastSynchronisation).epoch
        #expect(first > epoch, "B's epochs number on from its replica's (\(epoch))")
        #expect(primaryB.waitForCommit(first, timeout: .seconds(30)), "the rejoin committed under term \(term)")
        #expect(backupA.lastEpoch != nil)
        TakeoverTests.scribble(nodeB, seed: 3, pages: 100)
        let last = try #require(try primaryB.stop())
        #expect(try servedA.outcome(timeout: .seconds(30)) == .primaryFinished(lastEpoch: last))
        #expect(memcmp(nodeA.base, nodeB.base, length) == 0, "A holds B's last epoch")
        let statistics = primaryB.statistics
        #expect(statistics.lastSynchronisation?.resynchronised == true)
        #expect(statistics.lastSynchronisation?.firstPassBytes ?? .max < length / 10, "only what differed")
    }
}
