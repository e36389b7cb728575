#if canImport(Glibc)
    import Glibc
#endif

/// The secret both ends share, from which each session's frame key is derived. At least 32 bytes; a key
/// file must be private to its user (`PrivateFile`), so
/// `install -m 600 /dev/null key && head -c 32 /dev/urandom > key` makes one.
///
/// A key file holds the key byte for byte, with one exception: a text key (printable ASCII, as an editor
/// or `openssl rand -hex 32 > key` writes it) loses one trailing line ending. A binary key is never cut, even
/// when its last byte happens to be 0x0A or 0x0D (2 random keys in 256).
public struct PresharedKey: Sendable {
    let key: SymmetricKey

    /// The shortest key accepted: 256 bits.
    public static let minimumBytes = 32

    /// A key from raw bytes.
    public init(bytes: [UInt8]) throws(FGBIError) {
        guard bytes.count >= Self.minimumBytes else {
            throw .invalidArgument(
                "a pre-shared key needs at least \(Self.minimumBytes) bytes, got \(bytes.count) "
                    + "(make one with `head -c 32 /dev/urandom`)")
        }
        key = SymmetricKey(data: bytes)
    }

    /// A fresh key of ``minimumBytes`` from OpenSSL's random generator (as the handshake's nonces), for a
    /// session whose two ends share one process (benchmarks, tests): it exists only in memory.
    public static func random() -> PresharedKey { PresharedKey(key: SymmetricKey(data: randomBytes(minimumBytes))) }

    private init(key: SymmetricKey) { self.key = key }

    /// Reads a key file.
    ///
    /// - Throws: ``SystemError`` naming the file when it cannot be read; ``FGBIError/invalidArgument(_:)``
    ///   when it is too short, or open to group or others, or owned by another user (`PrivateFile`).
    public init(file path: String) throws {
        let fd = try Syscall.libc(
            "open(\(path))",
            hint: { code in
                code == ENOENT ? "no such key file" : code == EACCES ? "the key file is not readable by this user" : ""
            }
        ) { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        try PrivateFile.check(descriptor: fd, path: path, what: "key file")
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 1 << 20 {
            let n = try Syscall.libc("read(\(path))") {
                chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        bytes.removeLast(Self.textLineEndingLength(bytes))
        do {
            try self.init(bytes: bytes)
        } catch {
            throw FGBIError.invalidArgument("key file \(path): \(error)")
        }
    }

    /// How many trailing bytes of a key file are a line ending to drop: 1 or 2 ("\n", "\r\n") when the
    /// rest is printable ASCII text, else 0 (a binary key is taken as it is).
    static func textLineEndingLength(_ bytes: [UInt8]) -> Int {
        let ending = bytes.last == 0x0A ? (bytes.dropLast().last == 0x0D ? 2 : 1) : 0
        guard ending > 0, bytes.dropLast(ending).allSatisfy({ (0x20...0x7E).contains($0) }) else { return 0 }
        return ending
    }

    /// The key named by the `FGBI_KEY_FILE` environment variable, if set.
    public static func fromEnvironment() throws -> PresharedKey? {
        guard let path = getenv("FGBI_KEY_FILE") else { return nil }
        return try PresharedKey(file: String(cString: path))
    }

    /// The key of one guest: HKDF-SHA256 of this key with the guest's name (`CLUSTER/GUEST` when the guest
    /// belongs to a cluster), so that a primary holding a key shared by several guests, or clusters, cannot
    /// authenticate to another guest's backup. An empty name and cluster (an unnamed guest) keep the key as
    /// it is.
    public func forGuest(_ name: String, cluster: String = "") -> PresharedKey {
        let identity = Self.identity(guest: name, cluster: cluster)
        guard !identity.isEmpty else { return self }
        return PresharedKey(
            derived: Cryptography.hkdfSHA256(
                key: key, salt: Array("fgbi guest key v1".utf8),
                info: Array(identity.utf8), count: 32))
    }

    /// How a guest is named where its cluster matters: `CLUSTER/GUEST`, or the guest's name alone when it
    /// belongs to no cluster (what its key is derived from, and what a refusal names).
    static func identity(guest: String, cluster: String) -> String {
        cluster.isEmpty ? guest : "\(cluster)/\(guest)"
    }

    private init(derived: SymmetricKey) { key = derived }

    /// A proof that the holder knows the key, bound to this session's handshake.
    func proof(label: String, transcript: [UInt8]) -> [UInt8] {
        Cryptography.hmacSHA256(key: key, Array(label.utf8), transcript)
    }

    /// Whether `proof` is right for this key and transcript (constant time).
    func verify(_ proof: [UInt8], label: String, transcript: [UInt8]) -> Bool {
        Cryptography.constantTimeEqual(proof, self.proof(label: label, transcript: transcript))
    }

    /// The session's frame key: HKDF-SHA256 of the pre-shared key over the handshake transcript.
    func sessionKey(transcript: [UInt8]) -> SymmetricKey {
        Cryptography.hkdfSHA256(key: key, salt: transcript, info: Array("fgbi frames v1".utf8), count: 32)
    }

    /// The session's payload encryption key (ChaCha20-Poly1305), derived apart from the frame key.
    func encryptionKey(transcript: [UInt8]) -> SymmetricKey {
        Cryptography.hkdfSHA256(key: key, salt: transcript, info: Array("fgbi encryption v1".utf8), count: 32)
    }
}

/// A session's frame key, passed from the handshake to the connection.
struct SymmetricKeyBox: Sendable {
    let key: SymmetricKey
}
