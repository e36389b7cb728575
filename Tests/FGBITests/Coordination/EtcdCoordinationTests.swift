import FGBI
import FGBIBench
import FGBICoordination
import Foundation
import Testing

/// Primaryship and promotion against a real single-member etcd: one holder at a time, terms that only grow,
/// a lease that lapses by the primary's own clock when etcd goes away, and a backup that is promoted only once
/// the lease is gone, never while etcd is unreachable.
@Suite("Etcd coordination", .serialized,
       .enabled(if: EtcdServer.isAvailable, "needs etcd (Debian package etcd-server; Scripts/bootstrap installs it)"))
struct EtcdCoordinationTests {
    func withServer(_ body: (EtcdServer, EtcdClient) throws -> Void) throws {
        let server = try EtcdServer()
        defer { server.stop() }
        try body(server, try EtcdClient(endpoints: [server.clientURL], requestTimeout: .milliseconds(300)))
    }

    /// What `arbiter` decides once it stops answering `wait`, asking every 100 ms for up to `seconds`.
    static func decision(of arbiter: EtcdFailoverArbiter, lastEpoch: UInt64, waitingUpTo seconds: Double) -> FailoverDecision {
        let start = Date()
        var decision = arbiter.decide(lastEpoch: lastEpoch)
        while case .wait = decision, Date().timeIntervalSince(start) < seconds {
            usleep(100_000)
            decision = arbiter.decide(lastEpoch: lastEpoch)
        }
        return decision
    }

    @Test func primaryshipHasOneHolderAndTermsOnlyGrow() throws {
        try withServer { _, client in
            let keys = try GuestKeys(cluster: "t", guest: "g1")
            let first = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "a", ttlSeconds: 5)
            #expect(first.term == 1)
            #expect(first.isHeld)
            do {
                _ = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "b", ttlSeconds: 5, wait: .milliseconds(300))
                Issue.record("a second node acquired a held guest")
            } catch let error as CoordinationError {
                guard case .primaryHeld(let guest, let record, _) = error else { throw error }
                #expect(guest == "g1" && record.node == "a" && record.term == 1)
                #expect("\(error)".contains("node a, term 1"))
            }
            // Another guest is independent.
            let other = try EtcdPrimaryLease.acquire(client: client, keys: try GuestKeys(cluster: "t", guest: "g2"), node: "b", ttlSeconds: 5)
            #expect(other.term == 1)
            other.release()
            first.release()
            #expect(!first.isHeld, "released")
            #expect(try client.get(keys.primary) == nil, "releasing revokes the lease, and the key goes with it")
            let second = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "b", ttlSeconds: 5)
            #expect(second.term == 2)
            second.release()
        }
    }

    @Test func aWaitingNodeAcquiresOnceTheHolderReleases() throws {
        try withServer { _, client in
            let keys = try GuestKeys(cluster: "t", guest: "g")
            let holder = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "a", ttlSeconds: 5)
            DispatchQueue.global().asyncAfter(deadline: .now() + 0.5) { holder.release() }
            let start = Date()
            let next = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "b", ttlSeconds: 5, wait: .seconds(10))
            #expect(next.term == 2)
            #expect(Date().timeIntervalSince(start) < 3)
            next.release()
        }
    }

    @Test func aLeaseLapsesByTheHoldersClockWhenEtcdIsGone() throws {
        try withServer { server, client in
            let keys = try GuestKeys(cluster: "t", guest: "g")
            let lease = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "a", ttlSeconds: 1)
            // Renewals run every third of the TTL: after 1.5 s the lease still holds.
            Thread.sleep(forTimeInterval: 1.5)
            #expect(lease.isHeld, "renewed: \(lease.lossReason)")
            server.kill9()
            let killed = MonotonicClock.nanoseconds()
            let deadline = lease.validUntilNanoseconds
            #expect(deadline <= killed + 1_000_000_000, "valid at most one TTL past the last renewal")
            while lease.isHeld, MonotonicClock.nanoseconds() < killed + 3_000_000_000 { usleep(5_000) }
            #expect(!lease.isHeld)
            #expect(MonotonicClock.nanoseconds() - killed < 1_200_000_000, "lapsed within one TTL of losing etcd")
            #expect(lease.lossReason.contains("renew"), "says why: \(lease.lossReason)")
            // Terms survive a restart: the next holder gets a newer one.
            try server.restart()
            let next = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "b", ttlSeconds: 1, wait: .seconds(10))
            #expect(next.term == 2)
            next.release()
        }
    }

    @Test func theBackupIsPromotedOnlyOnceThePrimarysLeaseIsGone() throws {
        try withServer { _, client in
            let keys = try GuestKeys(cluster: "t", guest: "g")
            let primary = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "a", ttlSeconds: 5)
            let arbiter = try EtcdFailoverArbiter(client: client, keys: keys, node: "b", ttlSeconds: 5)
            #expect(arbiter.currentTerm() == 1)
            guard case .wait(let why) = arbiter.decide(lastEpoch: 17) else {
                Issue.record("promoted while the primary's lease lives")
                return
            }
            #expect(why.contains("node a is primary with term 1"), "\(why)")
            primary.release()
            #expect(arbiter.decide(lastEpoch: 17) == .promote(term: 2))
            let record = try #require(try client.get(keys.committed))
            #expect(record.string?.contains("\"epoch\":17") == true, "the promotion records the epoch: \(record.string ?? "")")
            let promoted = try #require(arbiter.promotedLease)
            #expect(promoted.term == 2 && promoted.isHeld)
            // The old primary cannot come back while the promoted node holds the guest.
            #expect(throws: CoordinationError.self) {
                _ = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "a", ttlSeconds: 5)
            }
            #expect(arbiter.currentTerm() == 2)
            promoted.release()
        }
    }

    @Test func losingEtcdNeverPromotes() throws {
        try withServer { server, client in
            let keys = try GuestKeys(cluster: "t", guest: "g")
            let primary = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "a", ttlSeconds: 1)
            let arbiter = try EtcdFailoverArbiter(client: client, keys: keys, node: "b", ttlSeconds: 1)
            #expect(arbiter.currentTerm() == 1)
            server.stop()
            // The primary's lease lapses meanwhile, but the backup cannot see that etcd let it go.
            for _ in 0..<10 {
                guard case .wait(let why) = arbiter.decide(lastEpoch: 5) else {
                    Issue.record("promoted without etcd")
                    return
                }
                #expect(why.contains("cannot ask etcd"), "\(why)")
                usleep(200_000)
            }
            #expect(!primary.isHeld)
            #expect(arbiter.currentTerm() == 1, "the newest term seen, while etcd is away")
            try server.restart()
            // etcd restores the lease with a fresh TTL; it expires unrenewed, then the backup is promoted.
            #expect(Self.decision(of: arbiter, lastEpoch: 5, waitingUpTo: 10) == .promote(term: 2))
            arbiter.promotedLease?.release()
        }
    }

    @Test func aBackupWithoutAnEpochStandsDown() throws {
        try withServer { _, client in
            let keys = try GuestKeys(cluster: "t", guest: "g")
            let arbiter = try EtcdFailoverArbiter(client: client, keys: keys, node: "b", ttlSeconds: 1)
            guard case .standDown = arbiter.decide(lastEpoch: nil) else {
                Issue.record("an empty backup took over")
                return
            }
        }
    }

    @Test func namesThatCannotGoIntoKeysAreRefused() {
        #expect(throws: CoordinationError.self) { _ = try GuestKeys(cluster: "a/b", guest: "g") }
        #expect(throws: CoordinationError.self) { _ = try GuestKeys(cluster: "c", guest: "") }
        #expect(throws: CoordinationError.self) { _ = try GuestKeys(cluster: "c", guest: String(repeating: "x", count: 65)) }
        #expect((try? GuestKeys(cluster: "prod-1", guest: "db_1"))?.primary == "/fgbi/prod-1/db_1/primary")
    }

    @Test(.enabled(if: CommandRunner.executable != nil, "the fgbi executable was not built beside the tests"))
    func eachOfSeveralGuestsHoldsItsOwnLeaseAndTerm() throws {
        try withServer { server, client in
            let backups = try ["one", "two"].map { name -> (Backup, BackupThread) in
                var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
                configuration.primaryTimeout = .seconds(10)
                configuration.guestName = name  // the handshake names the guest
                let backup = try Backup(regions: [try GuestMemory.anonymous(length: 4 << 20)], geometry: try BlockGeometry(),
                                        configuration: configuration)
                return (backup, BackupThread(backup))
            }
            // Guest "two" already has a primary elsewhere: this process must not take it over.
            let elsewhere = try EtcdPrimaryLease.acquire(client: client, keys: try GuestKeys(cluster: "many", guest: "two"), node: "other", ttlSeconds: 5)
            defer { elsewhere.release() }
            let outcome = try CommandRunner.run(["primary", "--region-mib", "4", "--duration", "1", "--pages-per-second", "2000", "--threads", "1",
                                                 "--guest", "name=one,backup=127.0.0.1:\(backups[0].0.port)",
                                                 "--guest", "name=two,backup=127.0.0.1:\(backups[1].0.port)",
                                                 "--etcd", server.clientURL, "--cluster", "many", "--node", "p1", "--reconnect-s", "0",
                                                 "--tracker", Kernel.preferredTracker.rawValue])
            #expect(outcome.status != 0, "guest two is held by another node")
            #expect(outcome.stderr.contains("guest two already has a primary: node other, term 1"), "stderr was: \(outcome.stderr)")
            // Guest one was never started either: the group is made whole or not at all, and its lease was given back.
            #expect(try client.get("/fgbi/many/one/primary") == nil)
            elsewhere.release()
            let second = try CommandRunner.run(["primary", "--region-mib", "4", "--duration", "1", "--pages-per-second", "2000", "--threads", "1",
                                                "--guest", "name=one,backup=127.0.0.1:\(backups[0].0.port)",
                                                "--guest", "name=two,backup=127.0.0.1:\(backups[1].0.port)",
                                                "--etcd", server.clientURL, "--cluster", "many", "--node", "p1", "--reconnect-s", "0",
                                                 "--tracker", Kernel.preferredTracker.rawValue])
            #expect(second.status == 0, "stderr was: \(second.stderr)")
            #expect(second.stderr.contains("is primary of guest one with term 2"), "one's first lease was granted (term 1), then given back")
            #expect(second.stderr.contains("is primary of guest two with term 2"))
            for (backup, thread) in backups {
                #expect(try thread.result(within: .seconds(120)) == .primaryFinished(lastEpoch: backup.lastEpoch))
                #expect(backup.lastEpoch != nil)
            }
            #expect(try client.get("/fgbi/many/one/primary") == nil, "released at the end")
            #expect(try client.get("/fgbi/many/two/term")?.string == "2")
        }
    }
}
