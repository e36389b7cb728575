import Foundation
import Synchronization
import Testing

@testable import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// The primary proves the key first: a stranger who connects to a backup gets a welcome with nothing keyed
/// in it, and after a wrong proof only a refusal, never the backup's proof (Docs/SECURITY.md).
@Suite("Handshake order")
struct HandshakeOrderTests {
    private static let layout = SessionSetup.Layout(blockSize: 64, pageSize: 4096, regionLengths: [1 << 20])

    /// A backup's side of one handshake on a thread of its own, against a peer that `client` drives.
    private static func withBackup(key: PresharedKey, _ client: (FrameConnection) throws -> Void) throws -> Result<
        Void, any Error
    > {
        let listener = try Socket.listen(on: Endpoint(host: "127.0.0.1", port: 0))
        let stranger = try FrameConnection(
            socket: Socket.connect(to: Endpoint(host: "127.0.0.1", port: listener.localPort)),
            peer: "backup", isPrimary: true, maximumPayload: 64 << 10)
        let backup = FrameConnection(
            socket: try listener.accept().socket, peer: "stranger", isPrimary: false, maximumPayload: 64 << 10)
        backup.setReceiveTimeout(milliseconds: 5000)
        stranger.setReceiveTimeout(milliseconds: 5000)
        let outcome = Mutex<Result<Void, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let result = Result<Void, any Error> {
                _ = try SessionSetup.openAsBackup(backup, layout: layout, key: key, peerIsLoopback: true, nextEpoch: 0)
            }
            outcome.withLock { $0 = result }
            done.signal()
        }
        try client(stranger)
        done.wait()
        return outcome.withLock { $0! }
    }

    private static func hello() -> Hello {
        Hello(
            mode: .fgbi, wantsAuthentication: true, blockSize: 64, pageSize: 4096, regionLengths: [1 << 20],
            nonce: randomBytes(32))
    }

    @Test func aStrangerGetsNoProofFromTheBackup() throws {
        let key = try PresharedKey(bytes: [UInt8](repeating: 9, count: 32))
        var seen: [Frame] = []
        let outcome = try Self.withBackup(key: key) { stranger in
            try stranger.send(.hello, Self.hello().encoded)
            let welcome = try stranger.receive()
            seen.append(welcome)
            #expect(welcome.type == .welcome)
            #expect(
                welcome.payload.count == 16 + 32 + 8,
                "a welcome holds a session id, a nonce and an epoch: nothing keyed")
            try stranger.send(.auth, randomBytes(32))
            seen.append(try stranger.receive())
        }
        #expect(seen.last?.type == .error, "after a wrong proof, a refusal")
        #expect(!seen.contains { $0.type == .auth }, "the backup must not prove the key to a stranger")
        #expect(throws: WireError.self) { try outcome.get() }
    }

    @Test func bothEndsProveTheKeyInTurn() throws {
        let key = try PresharedKey(bytes: [UInt8](repeating: 9, count: 32))
        let outcome = try Self.withBackup(key: key) { primary in
            _ = try SessionSetup.openAsPrimary(primary, hello: Self.hello(), key: key)
        }
        try outcome.get()
    }

    @Test func aPrimaryWithAnotherKeyIsRefusedAndLearnsNothing() throws {
        let key = try PresharedKey(bytes: [UInt8](repeating: 9, count: 32))
        let other = try PresharedKey(bytes: [UInt8](repeating: 8, count: 32))
        var thrown: (any Error)?
        let outcome = try Self.withBackup(key: key) { primary in
            do { _ = try SessionSetup.openAsPrimary(primary, hello: Self.hello(), key: other) } catch { thrown = error }
        }
        #expect(
            thrown.map { "\($0)" }?.contains("the primary's proof of the key is wrong") == true,
            "\(String(describing: thrown))")
        #expect(throws: WireError.self) { try outcome.get() }
    }
}

/// The handshake names the guest: a primary of one guest cannot overwrite another guest's backup, even with
/// the key they share, and each guest's sessions run on a key derived for it (Docs/SECURITY.md).
@Suite("Guest names in the handshake")
struct GuestNameHandshakeTests {
    /// A keyed backup of guest `db1` (of `backupCluster`): each primary named in `refused` (guest, cluster,
    /// the refusal expected) is turned away, and one named as the backup is replicated.
    private static func checkNames(
        backupCluster: String?, refused: [(guest: String?, cluster: String?, expected: String)]
    ) throws {
        let key = try PresharedKey(bytes: [UInt8](repeating: 3, count: 32))
        let memory = try GuestMemory.anonymous(length: 1 << 20)
        var backupConfiguration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
        backupConfiguration.key = key
        backupConfiguration.guestName = "db1"
        backupConfiguration.clusterName = backupCluster
        let backup = try Backup(regions: [memory], geometry: try BlockGeometry(), configuration: backupConfiguration)
        Thread.detachNewThread { _ = try? backup.serve() }
        defer { backup.stop() }
        let guest = try GuestMemory.anonymous(length: 1 << 20)
        func primary(guest name: String?, cluster: String?) throws -> Primary {
            var configuration = PrimaryConfiguration.onThisKernel(
                backup: Endpoint(host: "127.0.0.1", port: backup.port))
            configuration.key = key
            configuration.guestName = name
            configuration.clusterName = cluster
            configuration.reconnectWindow = .zero
            return try Primary(regions: [guest], configuration: configuration)
        }
        for attempt in refused {
            let stranger = try primary(guest: attempt.guest, cluster: attempt.cluster)
            let error = #expect(throws: WireError.self) { try stranger.start() }
            #expect("\(error.map { "\($0)" } ?? "")".contains(attempt.expected), "\(String(describing: error))")
        }
        let own = try primary(guest: "db1", cluster: backupCluster)
        try own.start()
        #expect(own.waitForCommit(2, timeout: .seconds(30)))
        _ = try own.stop()
    }

    @Test func aPrimaryOfAnotherGuestIsRefusedByName() throws {
        try Self.checkNames(
            backupCluster: nil,
            refused: [
                ("web", nil, "the primary replicates guest 'web' and this backup holds guest 'db1'"),
                (nil, nil, "the primary replicates an unnamed guest and this backup holds guest 'db1'"),
            ])
    }

    /// Two clusters with guests of one name and one key do not cross: the cluster is carried and keyed too.
    @Test func aPrimaryOfAnotherClusterIsRefused() throws {
        try Self.checkNames(
            backupCluster: "prod",
            refused: [
                ("db1", "staging", "the primary replicates guest 'staging/db1' and this backup holds guest 'prod/db1'"),
                ("db1", nil, "the primary replicates guest 'db1' and this backup holds guest 'prod/db1'"),
            ])
        let key = try PresharedKey(bytes: [UInt8](repeating: 3, count: 32))
        #expect(
            key.forGuest("db1", cluster: "prod").proof(label: "x", transcript: [1])
                != key.forGuest("db1", cluster: "staging").proof(label: "x", transcript: [1]))
    }

    @Test func eachGuestHasAKeyOfItsOwn() throws {
        let key = try PresharedKey(bytes: [UInt8](repeating: 3, count: 32))
        let transcript = Array("t".utf8)
        let web = key.forGuest("web").proof(label: "x", transcript: transcript)
        #expect(web != key.forGuest("db1").proof(label: "x", transcript: transcript))
        #expect(web != key.proof(label: "x", transcript: transcript))
        #expect(
            key.forGuest("").proof(label: "x", transcript: transcript) == key.proof(label: "x", transcript: transcript))
        var hello = Hello(
            mode: .fgbi, wantsAuthentication: true, blockSize: 64, pageSize: 4096, regionLengths: [4096],
            nonce: randomBytes(32))
        hello.guest = "db1"
        #expect(try Hello(decoding: hello.encoded) == hello)
        var long = hello.encoded
        long[1 + 1 + 4 + 4 + 4 + 8] = 200 // a name length over the bound
        #expect(throws: WireError.self) { try Hello(decoding: long) }
    }
}

/// One deadline for the whole handshake, however the peer paces it: a peer that answers each frame just in
/// time, or drips bytes, holds a backup for one handshake timeout, not one per frame (Docs/SECURITY.md).
@Suite("Handshake deadline")
struct HandshakeDeadlineTests {
    @Test func aSlowPeerIsCutAtOneDeadlineForTheWholeHandshake() throws {
        let listener = try Socket.listen(on: Endpoint(host: "127.0.0.1", port: 0))
        let client = try FrameConnection(
            socket: Socket.connect(to: Endpoint(host: "127.0.0.1", port: listener.localPort)),
            peer: "backup", isPrimary: true, maximumPayload: 64 << 10)
        let server = FrameConnection(
            socket: try listener.accept().socket, peer: "slow", isPrimary: false, maximumPayload: 64 << 10)
        let timeout = 1000
        server.setReceiveTimeout(milliseconds: timeout)
        server.setHandshakeDeadline(milliseconds: timeout)
        let start = MonotonicClock.nanoseconds()
        let elapsed = Mutex<UInt64?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let layout = SessionSetup.Layout(blockSize: 64, pageSize: 4096, regionLengths: [1 << 20])
            _ = try? SessionSetup.openAsBackup(server, layout: layout, key: nil, peerIsLoopback: true, nextEpoch: 0)
            elapsed.withLock { $0 = MonotonicClock.nanoseconds() - start }
            done.signal()
        }
        // The hello just in time, then the auth frame one byte every 150 ms.
        usleep(800_000)
        let hello = Hello(
            mode: .fgbi, wantsAuthentication: false, blockSize: 64, pageSize: 4096, regionLengths: [1 << 20],
            nonce: randomBytes(32))
        try client.send(.hello, hello.encoded)
        _ = try client.receive()
        var sealer = FrameSealer(direction: 0)
        _ = try hello.encoded.withUnsafeBytes { try sealer.seal(.hello, payload: $0) } // the auth frame is the second
        let auth = try SessionSetup.noProof.withUnsafeBytes { try sealer.seal(.auth, payload: $0) }
        for byte in auth.header + SessionSetup.noProof {
            guard elapsed.withLock({ $0 == nil }) else { break } // the backup gave up: stop dripping
            var value = byte
            _ = write(client.socket.descriptor, &value, 1)
            usleep(150_000)
        }
        done.wait()
        let seconds = Double(elapsed.withLock { $0! }) / 1e9
        #expect(seconds > 0.9, "the backup must have waited for the dripped frame, not refused it (\(seconds) s)")
        #expect(seconds < 1.5, "the handshake held the backup for \(seconds) s with a deadline of \(timeout) ms")
    }
}
