import FGBI
import FGBIBench
import FGBICoordination
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Primaryship and promotion against a real single-member etcd: one holder at a time, terms that only grow,
/// a lease that lapses by the primary's own clock when etcd goes away, and a backup that is promoted only once
/// the lease is gone, never while etcd is unreachable.
@Suite(
    "Etcd coordination", .serialized,
    .enabled(if: EtcdServer.isAvailable, "needs etcd (Debian package etcd-server; Scripts/bootstrap installs it)"))
struct EtcdCoordinationTests {
    func withServer(_ body: (EtcdServer, EtcdClient) throws -> Void) throws {
        let server = try EtcdServer()
        defer { server.stop() }
        try body(server, try EtcdClient(endpoints: [server.clientURL], requestTimeout: .milliseconds(300)))
    }

    /// What `arbiter` decides once it stops answering `wait`, asking every 100 ms for up to `seconds`.
    static func decision(of arbiter: EtcdFailoverArbiter, lastEpoch: UInt64, waitingUpTo seconds: Double)
        -> FailoverDecision
    {
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
                _ = try EtcdPrimaryLease.acquire(
                    client: client, keys: keys, node: "b", ttlSeconds: 5, wait: .milliseconds(300))
                Issue.record("a second node acquired a held guest")
            } catch let error as CoordinationError {
                guard case .primaryHeld(let guest, let record, _) = error else { throw error }
                #expect(guest == "g1" && record.node == "a" && record.term == 1)
                #expect("\(error)".contains("node a, term 1"))
            }
            // Another guest is independent.
            let other = try EtcdPrimaryLease.acquire(
                client: client, keys: try GuestKeys(cluster: "t", guest: "g2"), node: "b", ttlSeconds: 5)
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
            let next = try EtcdPrimaryLease.acquire(
                client: client, keys: keys, node: "b", ttlSeconds: 5, wait: .seconds(10))
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
            let next = try EtcdPrimaryLease.acquire(
                client: client, keys: keys, node: "b", ttlSeconds: 1, wait: .seconds(10))
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
            #expect(
                record.string?.contains("\"epoch\":17") == true,
                "the promotion records the epoch: \(record.string ?? "")")
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

    /// Waits until `lease` no longer holds, up to `seconds`; returns how long that took.
    static func secondsUntilLost(_ lease: EtcdPrimaryLease, upTo seconds: Double) -> Double {
        let start = Date()
        while lease.isHeld, Date().timeIntervalSince(start) < seconds { usleep(10_000) }
        return Date().timeIntervalSince(start)
    }

    /// Whoever can write etcd and deletes or rewrites the primary's key (the lease alone would go on renewing)
    /// ends that primaryship within one time to live: each renewal checks the key's value and lease first.
    @Test func aPrimaryWhoseKeyIsDeletedOrRewrittenLosesItWithinOneTTL() throws {
        try withServer { _, client in
            let keys = try GuestKeys(cluster: "t", guest: "g")
            let deleted = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "a", ttlSeconds: 1)
            #expect(deleted.isHeld)
            #expect(try client.delete(keys.primary))
            let afterDelete = Self.secondsUntilLost(deleted, upTo: 5)
            #expect(afterDelete < 1.0, "lost \(afterDelete) s after the key was deleted; the lease's TTL is 1 s")
            #expect(deleted.lossReason.contains("deleted or rewritten"), "\(deleted.lossReason)")
            deleted.release()

            let rewritten = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "a", ttlSeconds: 1)
            #expect(rewritten.term == 2)
            _ = try client.put(
                keys.primary, value: Array(#"{"node":"intruder","term":2}"#.utf8), lease: rewritten.leaseID)
            let afterRewrite = Self.secondsUntilLost(rewritten, upTo: 5)
            #expect(afterRewrite < 1.0, "lost \(afterRewrite) s after the key was rewritten")
            rewritten.release()
        }
    }

    /// A term at its largest value cannot be followed: refused with a clear error (it used to trap on `+ 1`),
    /// and a backup stands down saying why instead of waiting for ever.
    @Test func aTermAtItsMaximumIsRefusedClearly() throws {
        try withServer { _, client in
            let keys = try GuestKeys(cluster: "t", guest: "g")
            _ = try client.put(keys.term, value: Array(String(UInt64.max).utf8))
            #expect(throws: CoordinationError.termExhausted(keys.term)) {
                _ = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "a", ttlSeconds: 1)
            }
            let arbiter = try EtcdFailoverArbiter(client: client, keys: keys, node: "b", ttlSeconds: 1)
            guard case .standDown(let why) = arbiter.decide(lastEpoch: 3) else {
                Issue.record("a backup went on with a term at its maximum")
                return
            }
            #expect(why.contains("largest possible term"), "\(why)")
        }
    }

    /// A record no FGBI node writes ends the backup's wait with a logged, clear reason: it stands down rather
    /// than wait for ever or promote on keys it cannot read.
    @Test func aMalformedRecordMakesTheBackupStandDownSayingWhy() throws {
        try withServer { _, client in
            let keys = try GuestKeys(cluster: "t", guest: "g")
            _ = try client.put(keys.primary, value: Array("not json".utf8))
            let arbiter = try EtcdFailoverArbiter(client: client, keys: keys, node: "b", ttlSeconds: 1)
            guard case .standDown(let why) = arbiter.decide(lastEpoch: 3) else {
                Issue.record("the backup did not stand down on a malformed record")
                return
            }
            #expect(why.contains("not an FGBI record"), "\(why)")
            #expect(throws: CoordinationError.self) {
                _ = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "a", ttlSeconds: 1)
            }
        }
    }

    /// Through real processes: an `fgbi primary` process replicating to a backup coordinated by etcd; its key is
    /// deleted behind its back. The primary halts within one TTL (exit 12, "lost primaryship"), the backup is
    /// promoted with the next term, and every epoch the old primary confirmed is in the backup's replica: no
    /// two primaries confirm.
    @Test(.enabled(if: CommandRunner.executable != nil, "the fgbi executable was not built beside the tests"))
    func deletingThePrimarysKeyHaltsThePrimaryProcessAndPromotesTheBackup() throws {
        try withServer { server, client in
            let keys = try GuestKeys(cluster: "t", guest: "g")
            var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
            configuration.primaryTimeout = .milliseconds(500)
            configuration.guestName = "g"
            configuration.clusterName = "t"
            configuration.arbiter = try EtcdFailoverArbiter(client: client, keys: keys, node: "b", ttlSeconds: 2)
            let backup = try Backup(
                regions: [try GuestMemory.anonymous(length: 4 << 20)], geometry: try BlockGeometry(),
                configuration: configuration)
            let serving = BackupThread(backup)
            let process = Process()
            process.executableURL = CommandRunner.executable
            process.arguments = [
                "primary", "--backup", "127.0.0.1:\(backup.port)", "--region-mib", "4", "--duration", "30",
                "--pages-per-second", "2000", "--threads", "1", "--etcd", server.clientURL, "--cluster", "t",
                "--guest-name", "g", "--node", "p", "--lease-ttl-s", "2", "--tracker", Kernel.preferredTracker.rawValue,
            ]
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
            let start = Date()
            while (backup.lastEpoch ?? 0) < 5, Date().timeIntervalSince(start) < 30 { usleep(20_000) }
            #expect((backup.lastEpoch ?? 0) >= 5, "the primary never got going")
            let record = try #require(try client.get(keys.primary))
            #expect(record.string?.contains("\"node\":\"p\"") == true)
            let deletedAt = Date()
            #expect(try client.delete(keys.primary))
            while process.isRunning, Date().timeIntervalSince(deletedAt) < 10 { usleep(10_000) }
            let halted = Date().timeIntervalSince(deletedAt)
            let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(
                !process.isRunning && process.terminationStatus == 12,
                "status \(process.terminationStatus); stderr: \(stderr)")
            // The halt itself comes within one renewal interval; the process then tears down its session.
            #expect(halted < 2.0 + 1.0, "the primary ran \(halted) s after its key was deleted (TTL 2 s)")
            #expect(stderr.contains("deleted or rewritten"), "stderr: \(stderr)")
            let outcome = try serving.result(within: .seconds(60))
            guard case .promoted(let held, let term, _) = outcome else {
                Issue.record("the backup was not promoted: \(outcome)")
                return
            }
            #expect(term == 2)
            // The old primary's last confirmed epoch, from its own words, is one the backup holds.
            if let range = stderr.range(of: "the last was epoch "),
                let confirmed = UInt64(stderr[range.upperBound...].prefix { $0.isNumber })
            {
                #expect(
                    confirmed <= (held ?? 0),
                    "the old primary confirmed epoch \(confirmed), the backup took over at \(String(describing: held))")
            } else {
                Issue.record("the primary did not say its last confirmed epoch: \(stderr)")
            }
            configuration.arbiter.flatMap { $0 as? EtcdFailoverArbiter }?.promotedLease?.release()
        }
    }

    /// etcd over TLS with client certificates: a client with the lab's authority and certificate works (a lease
    /// and a promotion through it), and each missing piece is refused with a reason: no client certificate, an
    /// authority that did not sign the server's certificate, plain http:// to a TLS member.
    @Test func etcdOverTLSWithClientCertificates() throws {
        let directory = NSTemporaryDirectory() + "fgbi-etcd-tls-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let certificates = try EtcdCertificates(directory: directory + "/lab")
        let server = try EtcdServer(tls: certificates)
        defer { server.stop() }
        #expect(server.clientURL.hasPrefix("https://"))
        let client = try EtcdClient(
            endpoints: [server.clientURL], requestTimeout: .milliseconds(1000), tls: certificates.clientTLS)
        #expect(try client.status().hasLeader)
        let keys = try GuestKeys(cluster: "t", guest: "g")
        let primary = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "a", ttlSeconds: 1)
        #expect(primary.term == 1 && primary.isHeld)
        primary.release()
        let arbiter = try EtcdFailoverArbiter(client: client, keys: keys, node: "b", ttlSeconds: 1)
        #expect(Self.decision(of: arbiter, lastEpoch: 4, waitingUpTo: 5) == .promote(term: 2))
        arbiter.promotedLease?.release()

        // Without a client certificate etcd ends the handshake.
        let anonymous = try EtcdClient(
            endpoints: [server.clientURL], requestTimeout: .milliseconds(1000),
            tls: EtcdTLS(caFile: certificates.caFile))
        #expect(throws: EtcdError.self) { _ = try anonymous.status() }
        // An authority that did not sign etcd's certificate: the client refuses the server, saying why.
        let other = try EtcdCertificates(directory: directory + "/other")
        let misled = try EtcdClient(
            endpoints: [server.clientURL], requestTimeout: .milliseconds(1000), tls: other.clientTLS)
        let refusal = #expect(throws: EtcdError.self) { _ = try misled.status() }
        #expect("\(refusal.map { "\($0)" } ?? "")".contains("certificate"), "\(String(describing: refusal))")
        // Plain HTTP to a TLS member gets no answer etcd would give.
        let plain = try EtcdClient(
            endpoints: [server.clientURL.replacingOccurrences(of: "https://", with: "http://")],
            requestTimeout: .milliseconds(1000))
        #expect(throws: EtcdError.self) { _ = try plain.status() }
        // TLS options without https:// members, and a certificate without its key, are refused up front.
        #expect(throws: EtcdError.self) {
            _ = try EtcdClient(endpoints: ["http://127.0.0.1:2379"], tls: certificates.clientTLS)
        }
        #expect(throws: EtcdError.self) {
            _ = try EtcdClient(
                endpoints: [server.clientURL],
                tls: EtcdTLS(caFile: certificates.caFile, certificateFile: certificates.clientCertificate))
        }

        // The command line: `fgbi primary` with --etcd-ca, --etcd-cert and --etcd-key holds its lease over TLS.
        guard CommandRunner.executable != nil else { return }
        var backupConfiguration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
        backupConfiguration.clusterName = "cli" // with --etcd the handshake names the cluster
        let backup = try Backup(
            regions: [try GuestMemory.anonymous(length: 4 << 20)], geometry: try BlockGeometry(),
            configuration: backupConfiguration)
        let serving = BackupThread(backup)
        let outcome = try CommandRunner.run([
            "primary", "--backup", "127.0.0.1:\(backup.port)", "--region-mib", "4", "--duration", "1",
            "--pages-per-second", "2000", "--threads", "1", "--etcd", server.clientURL,
            "--etcd-ca", certificates.caFile, "--etcd-cert", certificates.clientCertificate,
            "--etcd-key", certificates.clientKey, "--cluster", "cli", "--node", "p",
            "--tracker", Kernel.preferredTracker.rawValue,
        ])
        #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.contains("answers at \(server.clientURL)"), "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.contains("is primary of guest guest with term 1"), "stderr: \(outcome.stderr)")
        #expect(try serving.result(within: .seconds(60)) == .primaryFinished(lastEpoch: backup.lastEpoch))
        // A client key open to others is refused before anything is sent.
        chmod(certificates.clientKey, 0o644)
        let loose = try CommandRunner.run([
            "primary", "--backup", "127.0.0.1:1", "--etcd", server.clientURL, "--etcd-ca", certificates.caFile,
            "--etcd-cert", certificates.clientCertificate, "--etcd-key", certificates.clientKey,
        ])
        #expect(loose.status != 0 && loose.stderr.contains("chmod 600"), "stderr: \(loose.stderr)")
    }

    /// etcd's user/password authentication, over TLS (server certificates only: etcd's gateway refuses
    /// passwords where client certificates are required): a user with rights on /fgbi/ only holds a lease and
    /// is promoted; no credentials, a wrong password, or a key outside its prefix are refused.
    @Test func etcdWithUserAndPasswordOverTLS() throws {
        let directory = NSTemporaryDirectory() + "fgbi-etcd-auth-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let certificates = try EtcdCertificates(directory: directory)
        let server = try EtcdServer(tls: certificates, requireClientCertificates: false)
        defer { server.stop() }
        let user = EtcdCredentials(user: "fgbi", password: "correct horse battery staple")
        try server.enableAuthentication(rootPassword: "root-\(UInt64.random(in: 0 ... .max))", user: user)
        let client = try EtcdClient(
            endpoints: [server.clientURL], requestTimeout: .milliseconds(2000),
            tls: server.clientTLS, credentials: user)
        let keys = try GuestKeys(cluster: "t", guest: "g")
        let primary = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: "a", ttlSeconds: 1)
        #expect(primary.term == 1)
        primary.release()
        let arbiter = try EtcdFailoverArbiter(client: client, keys: keys, node: "b", ttlSeconds: 1)
        #expect(Self.decision(of: arbiter, lastEpoch: 4, waitingUpTo: 5) == .promote(term: 2))
        arbiter.promotedLease?.release()

        let anonymous = try EtcdClient(
            endpoints: [server.clientURL], requestTimeout: .milliseconds(2000), tls: server.clientTLS)
        #expect(throws: EtcdError.self) { _ = try anonymous.get(keys.term) }
        let wrong = try EtcdClient(
            endpoints: [server.clientURL], requestTimeout: .milliseconds(2000), tls: server.clientTLS,
            credentials: EtcdCredentials(user: "fgbi", password: "guess"))
        let refusal = #expect(throws: EtcdError.self) { _ = try wrong.get(keys.term) }
        #expect("\(refusal.map { "\($0)" } ?? "")".contains("authentication failed"), "\(String(describing: refusal))")
        #expect(throws: EtcdError.self) { try client.put("/elsewhere", value: [1]) }
        #expect(try client.get(keys.term)?.string == "2")
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
        #expect(throws: CoordinationError.self) {
            _ = try GuestKeys(cluster: "c", guest: String(repeating: "x", count: 65))
        }
        #expect((try? GuestKeys(cluster: "prod-1", guest: "db_1"))?.primary == "/fgbi/prod-1/db_1/primary")
    }

    @Test(.enabled(if: CommandRunner.executable != nil, "the fgbi executable was not built beside the tests"))
    func eachOfSeveralGuestsHoldsItsOwnLeaseAndTerm() throws {
        try withServer { server, client in
            let backups = try ["one", "two"].map { name -> (Backup, BackupThread) in
                var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
                configuration.primaryTimeout = .seconds(10)
                configuration.guestName = name // the handshake names the guest and its cluster
                configuration.clusterName = "many"
                let backup = try Backup(
                    regions: [try GuestMemory.anonymous(length: 4 << 20)], geometry: try BlockGeometry(),
                    configuration: configuration)
                return (backup, BackupThread(backup))
            }
            // Guest "two" already has a primary elsewhere: this process must not take it over.
            let elsewhere = try EtcdPrimaryLease.acquire(
                client: client, keys: try GuestKeys(cluster: "many", guest: "two"), node: "other", ttlSeconds: 5)
            defer { elsewhere.release() }
            let outcome = try CommandRunner.run([
                "primary", "--region-mib", "4", "--duration", "1", "--pages-per-second", "2000", "--threads", "1",
                "--guest", "name=one,backup=127.0.0.1:\(backups[0].0.port)",
                "--guest", "name=two,backup=127.0.0.1:\(backups[1].0.port)",
                "--etcd", server.clientURL, "--cluster", "many", "--node", "p1", "--reconnect-s", "0",
                "--tracker", Kernel.preferredTracker.rawValue,
            ])
            #expect(outcome.status != 0, "guest two is held by another node")
            #expect(
                outcome.stderr.contains("guest two already has a primary: node other, term 1"),
                "stderr was: \(outcome.stderr)")
            // Guest one was never started either: the group is made whole or not at all, and its lease was given back.
            #expect(try client.get("/fgbi/many/one/primary") == nil)
            elsewhere.release()
            let second = try CommandRunner.run([
                "primary", "--region-mib", "4", "--duration", "1", "--pages-per-second", "2000", "--threads", "1",
                "--guest", "name=one,backup=127.0.0.1:\(backups[0].0.port)",
                "--guest", "name=two,backup=127.0.0.1:\(backups[1].0.port)",
                "--etcd", server.clientURL, "--cluster", "many", "--node", "p1", "--reconnect-s", "0",
                "--tracker", Kernel.preferredTracker.rawValue,
            ])
            #expect(second.status == 0, "stderr was: \(second.stderr)")
            #expect(
                second.stderr.contains("is primary of guest one with term 2"),
                "one's first lease was granted (term 1), then given back")
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
