/// The framing of the primary-backup connection (Docs/PROTOCOL.md, "Connection").
///
///     header (32 bytes, little-endian)
///       0 magic "FGBW"   4 version (u16)   6 type (u8)   7 flags (u8: 1 authenticated, 2 encrypted)
///       8 sequence (u64)  16 payload length (u64)  24 fencing term (u64, zero without a coordinator)
///     payload (encrypted: ChaCha20-Poly1305 ciphertext, then its 16-byte tag, the header authenticated with it)
///     authentication code: a Poly1305 authenticator (16 bytes: the ChaCha20-Poly1305 tag of no plaintext over
///       header and payload), when flag bit 0 is set and bit 1 is not
/// Both the encryption and the authenticator take as nonce the direction and the sequence number.
package enum WireFormat {
    static let magic: [UInt8] = Array("FGBW".utf8)
    /// The protocol version this build speaks. 3: frames in clear authenticated by Poly1305 instead of
    /// HMAC-SHA256, encrypted frames by their encryption's tag alone.
    public static let version: UInt16 = 3
    package static let headerLength = 32
    /// The authentication code after the payload of a frame in clear on a session with a key.
    package static let macLength = Cryptography.aeadTagLength
    static let flagAuthenticated: UInt8 = 1
    /// The payload is ChaCha20-Poly1305 ciphertext followed by its 16-byte tag.
    static let flagEncrypted: UInt8 = 2
    static let aeadTagLength = Cryptography.aeadTagLength

    /// What a frame carries.
    public enum FrameType: UInt8, Sendable, CustomStringConvertible {
        /// Primary to backup, first: versions, memory layout, a nonce.
        case hello = 1
        /// Backup to primary: session id, its nonce, its proof of the key, the epoch it expects next.
        case welcome = 2
        /// Primary to backup: its proof of the key.
        case auth = 3
        /// Primary to backup: one epoch delta (Docs/PROTOCOL.md, "Epoch delta").
        case epoch = 4
        /// Backup to primary: an epoch is applied.
        case ack = 5
        /// Either way: still alive.
        case heartbeat = 6
        /// Either way, before closing: why (UTF-8).
        case error = 7
        /// Primary to backup: replication ends on purpose (not a failure).
        case bye = 8
        /// Backup to primary, right after the handshake when it holds state: page hashes of its replica
        /// (``ReplicaSummary``), so the primary resynchronises by sending only the pages that differ.
        case summary = 9
        /// Primary to backup: a delta of a synchronisation (pre-copy round) that commits no epoch.
        case precopy = 10
        /// Primary to backup, during a resynchronisation: pages whose block hashes it asks for
        /// (``BlockHashExchange``).
        case blockHashRequest = 11
        /// Backup to primary: the block hashes asked for.
        case blockHashes = 12

        public var description: String {
            switch self {
            case .hello: return "hello"
            case .welcome: return "welcome"
            case .auth: return "auth"
            case .epoch: return "epoch"
            case .ack: return "ack"
            case .heartbeat: return "heartbeat"
            case .error: return "error"
            case .bye: return "bye"
            case .summary: return "summary"
            case .precopy: return "precopy"
            case .blockHashRequest: return "block-hash-request"
            case .blockHashes: return "block-hashes"
            }
        }
    }
}

/// One received frame.
package struct Frame: Sendable {
    public var type: WireFormat.FrameType
    public var sequence: UInt64
    /// The sender's fencing term (``PrimaryAuthority/term``; 0 without a coordinator).
    public var term: UInt64
    public var payload: [UInt8]
}
