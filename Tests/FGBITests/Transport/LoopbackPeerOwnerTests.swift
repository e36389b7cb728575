import Foundation
import Testing

@testable import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// Without a key, loopback is trusted only when the other end runs as the same user (or root): found
/// from the kernel's socket table. The cross-user cases run a peer as user 65534 through `setpriv`.
@Suite("Loopback peer owner", .serialized)
struct LoopbackPeerOwnerTests {
    private static let foreign = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", "-c"]

    /// Runs `script` as user 65534 with `PORT` set.
    private static func runAsNobody(_ script: String, port: UInt16) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = foreign + [script]
        process.environment = ["PORT": String(port), "PATH": "/usr/bin:/bin"]
        try process.run()
        return process
    }

    @Test func bothEndsOfAConnectionInThisProcessAreThisUser() throws {
        let listener = try Socket.listen(on: Endpoint(host: "127.0.0.1", port: 0))
        let client = try Socket.connect(to: Endpoint(host: "127.0.0.1", port: listener.localPort))
        let server = try listener.accept().socket
        #expect(LoopbackPeerOwner.owner(of: client) == geteuid())
        #expect(LoopbackPeerOwner.owner(of: server) == geteuid())
        #expect(LoopbackPeerOwner.isTrusted(client) && LoopbackPeerOwner.isTrusted(server))
        let listener6 = try Socket.listen(on: Endpoint(host: "::1", port: 0))
        let client6 = try Socket.connect(to: Endpoint(host: "::1", port: listener6.localPort))
        #expect(LoopbackPeerOwner.owner(of: client6) == geteuid(), "IPv6 loopback goes through /proc/net/tcp6")
    }

    /// The kernel hands out /proc/net/tcp a page (about 27 sockets) per read: a connection made after a few
    /// hundred others is listed far past the first page, and must still be found.
    @Test func aConnectionPastTheTablesFirstPageIsFound() throws {
        let listener = try Socket.listen(on: Endpoint(host: "127.0.0.1", port: 0))
        var held: [Socket] = []
        for _ in 0..<150 {
            held.append(try Socket.connect(to: Endpoint(host: "127.0.0.1", port: listener.localPort)))
            held.append(try listener.accept().socket)
        }
        let lines = try KernelFile.text("/proc/net/tcp").split(separator: "\n").count
        #expect(lines > 300, "the table lists every held socket: \(lines) lines")
        let client = try Socket.connect(to: Endpoint(host: "127.0.0.1", port: listener.localPort))
        let server = try listener.accept().socket
        #expect(LoopbackPeerOwner.owner(of: client) == geteuid(), "table of \(lines) lines")
        #expect(LoopbackPeerOwner.owner(of: server) == geteuid())
        withExtendedLifetime(held) {}
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to run a peer as another user"))
    func aPeerRunByAnotherUserIsNotTrusted() throws {
        let listener = try Socket.listen(on: Endpoint(host: "127.0.0.1", port: 0))
        let peer = try Self.runAsNobody("exec 3<>/dev/tcp/127.0.0.1/$PORT; sleep 2", port: listener.localPort)
        defer {
            peer.terminate()
            peer.waitUntilExit()
        }
        let server = try listener.accept().socket
        #expect(LoopbackPeerOwner.owner(of: server) == 65534)
        #expect(!LoopbackPeerOwner.isTrusted(server))
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to run a peer as another user"))
    func aKeylessBackupRefusesAPrimaryRunByAnotherUser() throws {
        let memory = try GuestMemory.anonymous(length: 1 << 20)
        var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
        configuration.primaryTimeout = .seconds(5)
        let backup = try Backup(regions: [memory], geometry: try BlockGeometry(), configuration: configuration)
        let service = try backup.start()
        defer { _ = try? service.stop() }
        // A well-formed hello, written by the other user's process, and the backup's answer read back.
        var sealer = FrameSealer(direction: 0)
        let hello = Hello(
            mode: .fgbi, wantsAuthentication: false, blockSize: 64, pageSize: 4096,
            regionLengths: [1 << 20], nonce: randomBytes(32))
        let frame = try hello.encoded.withUnsafeBytes { try sealer.seal(.hello, payload: $0) }
        let directory = NSTemporaryDirectory() + "fgbi-owner-\(getpid())"
        mkdir(directory, 0o755)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        chmod(directory, 0o777)
        let request = directory + "/hello"
        let answer = directory + "/answer"
        _ = FileManager.default.createFile(atPath: request, contents: Data(frame.header + hello.encoded))
        chmod(request, 0o644)
        let peer = try Self.runAsNobody(
            "exec 3<>/dev/tcp/127.0.0.1/$PORT; cat \(request) >&3; timeout 5 cat <&3 > \(answer)",
            port: backup.port)
        peer.waitUntilExit()
        let reply = try Data(contentsOf: URL(fileURLWithPath: answer))
        let text = String(decoding: reply, as: UTF8.self)
        #expect(
            text.contains("runs as another user than this backup"),
            "the backup answered: \(PeerText.printable(Array(reply)))")
        #expect(reply.count > 6 && reply[6] == WireFormat.FrameType.error.rawValue, "an error frame, not a welcome")
    }
}
