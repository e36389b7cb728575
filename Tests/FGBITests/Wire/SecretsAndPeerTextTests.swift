import Foundation
import Testing

@testable import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// Key and config files must be private to their user, keys long enough, text from peers safe to log, and
/// loopback decided by address: each check here fails without its defence (Docs/SECURITY.md).
@Suite("Secrets and peer text")
struct SecretsAndPeerTextTests {
    private static func scratchPath(_ name: String) -> String {
        NSTemporaryDirectory() + "fgbi-secret-\(getpid())-\(name)"
    }

    @Test func aKeyFileOpenToGroupOrOthersIsRefusedWithTheFix() throws {
        let path = Self.scratchPath("open-key")
        unlink(path)
        defer { unlink(path) }
        try PrivateFile.create(path, bytes: [UInt8](repeating: 5, count: 32))
        _ = try PresharedKey(file: path)
        for mode: mode_t in [0o644, 0o640, 0o604, 0o620] {
            chmod(path, mode)
            let error = #expect(throws: FGBIError.self) { try PresharedKey(file: path) }
            #expect("\(error.map { "\($0)" } ?? "")".contains("chmod 600 \(path)"), "mode \(String(mode, radix: 8))")
        }
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to give the file to another user"))
    func aKeyFileOwnedByAnotherUserIsRefused() throws {
        let path = Self.scratchPath("foreign-key")
        unlink(path)
        defer { unlink(path) }
        try PrivateFile.create(path, bytes: [UInt8](repeating: 5, count: 32))
        chown(path, 65534, 65534)
        let error = #expect(throws: FGBIError.self) { try PresharedKey(file: path) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("belongs to user 65534"))
    }

    @Test func aKeyShorterThan32BytesIsRefused() throws {
        #expect(throws: FGBIError.self) { try PresharedKey(bytes: [UInt8](repeating: 1, count: 31)) }
        let path = Self.scratchPath("short-key")
        unlink(path)
        defer { unlink(path) }
        try PrivateFile.create(path, bytes: Array("sixteen byte key".utf8) + [0x0A])
        let error = #expect(throws: FGBIError.self) { try PresharedKey(file: path) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("at least 32 bytes, got 16"))
    }

    @Test func aBinaryKeyEndingInALineFeedIsKeptWholeAndATextKeyLosesItsNewline() throws {
        let path = Self.scratchPath("line-ending-key")
        unlink(path)
        defer { unlink(path) }
        let transcript: [UInt8] = [1, 2, 3]
        let text: [UInt8] = Array("0123456789abcdef0123456789abcdef".utf8)
        let binary: [UInt8] = (0..<30).map { (index: Int) -> UInt8 in UInt8(index * 7 + 1) }
        let cases: [(file: [UInt8], key: [UInt8]?)] = [
            (binary + [0x00, 0x0A], nil), (binary + [0x0D, 0x0A], nil),
            (text + [0x0A], text), (text + [0x0D, 0x0A], text), (text, text),
        ]
        for (bytes, expected) in cases {
            unlink(path)
            try PrivateFile.create(path, bytes: bytes)
            let loaded = try PresharedKey(file: path)
            let reference = try PresharedKey(bytes: expected ?? bytes)
            #expect(
                loaded.proof(label: "t", transcript: transcript) == reference.proof(label: "t", transcript: transcript),
                "key file \(bytes)")
        }
    }

    @Test func creatingAPrivateFileNeverFollowsOrReplacesWhatIsThere() throws {
        let path = Self.scratchPath("existing")
        let target = Self.scratchPath("target")
        unlink(path)
        unlink(target)
        defer {
            unlink(path)
            unlink(target)
        }
        symlink(target, path)
        #expect(throws: SystemError.self) { try PrivateFile.create(path, bytes: [1]) }
        #expect(access(target, F_OK) != 0, "the link's target must not be created")
        unlink(path)
        try PrivateFile.create(path, bytes: [1, 2, 3])
        var info = stat()
        stat(path, &info)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(throws: SystemError.self) { try PrivateFile.create(path, bytes: [4]) }
    }

    @Test func aConfigFileOpenToOthersIsRefusedByTheCommand() throws {
        let path = Self.scratchPath("config.json")
        unlink(path)
        defer { unlink(path) }
        try PrivateFile.create(path, bytes: Array(#"{"backup": {"on-failover": "/bin/true"}}"#.utf8))
        chmod(path, 0o666)
        let outcome = try CommandRunner.run(["backup", "--config", path, "--listen", "127.0.0.1:0"])
        #expect(outcome.status != 0 && outcome.status < 128)
        #expect(
            outcome.stderr.contains("config file \(path) is open to group or others (mode 666)"), "\(outcome.stderr)")
    }

    @Test func peerTextIsEscapedAndCutBeforeItIsLogged() {
        let forged = Array("refused\n2026-12-03T00:00:00Z critical fgbi: [FGBI] fake line\u{1B}[2J\u{202E}".utf8)
        let text = PeerText.printable(forged)
        #expect(!text.contains("\n") && !text.contains("\u{1B}") && !text.contains("\u{202E}"))
        #expect(text.hasPrefix("refused\\u{a}2026-12-03"))
        #expect(text.contains("\\u{1b}[2J\\u{202e}"))
        let long = PeerText.printable([UInt8](repeating: 0x41, count: 100_000))
        #expect(long == String(repeating: "A", count: PeerText.maximumBytes) + "…")
        #expect(PeerText.printable(Array("layout mismatch: 4 regions".utf8)) == "layout mismatch: 4 regions")
    }

    @Test(arguments: [
        ("127.0.0.1", true), ("127.1.2.3", true), ("::1", true), ("localhost", true),
        ("127.0.0.1.example", false), ("127.x.evil.example", false), ("10.0.0.2", false), ("::ffff:10.0.0.1", false),
        ("backup.lan", false),
    ])
    func loopbackIsDecidedByTheAddressNotTheName(host: String, loopback: Bool) {
        #expect(Endpoint(host: host, port: 7070).isLoopback == loopback)
    }

    @Test func theAddressReachedIsClassifiedAfterConnecting() throws {
        let listener = try Socket.listen(on: Endpoint(host: "127.0.0.1", port: 0))
        let client = try Socket.connect(to: Endpoint(host: "127.0.0.1", port: listener.localPort))
        let (address, isLoopback) = try client.peerAddress()
        #expect(address == "127.0.0.1" && isLoopback)
    }
}
