/// Seals outgoing frames: header, sequence number, and (with a session key) an HMAC-SHA256 over the
/// direction, header and payload.
struct FrameSealer: Sendable {
    private(set) var nextSequence: UInt64 = 0
    /// The fencing term stamped on every frame (0 without a coordinator).
    var term: UInt64 = 0
    private var key: SymmetricKey?
    private var encryptionKey: SymmetricKey?
    private let direction: UInt8

    /// `direction` differs per side (0: primary to backup, 1: backup to primary), so a frame reflected back
    /// to its sender fails authentication.
    package init(direction: UInt8) {
        self.direction = direction
    }

    /// From now on frames carry sequence numbers from 1 and, with a key, an authentication code; with an
    /// encryption key, their payloads are encrypted too.
    package mutating func startSession(key: SymmetricKey?, encryptionKey: SymmetricKey? = nil) {
        self.key = key
        self.encryptionKey = encryptionKey
        nextSequence = 1
    }

    /// The header, the payload to send in place of `payload` when encrypting (nil: send `payload`), and the
    /// authentication code (empty without a key).
    mutating func seal(_ type: WireFormat.FrameType, payload: UnsafeRawBufferPointer) throws -> (
        header: [UInt8], encrypted: [UInt8]?, mac: [UInt8]
    ) {
        let sequence = nextSequence
        if nextSequence > 0 { nextSequence += 1 }
        var flags: UInt8 = key == nil ? 0 : WireFormat.flagAuthenticated
        if encryptionKey != nil { flags |= WireFormat.flagEncrypted }
        var header = [UInt8]()
        header.reserveCapacity(WireFormat.headerLength)
        header += WireFormat.magic
        appendLittleEndian(WireFormat.version, to: &header)
        header.append(type.rawValue)
        header.append(flags)
        appendLittleEndian(sequence, to: &header)
        appendLittleEndian(UInt64(payload.count + (encryptionKey == nil ? 0 : WireFormat.aeadTagLength)), to: &header)
        appendLittleEndian(term, to: &header)
        var encrypted: [UInt8]?
        if let encryptionKey {
            encrypted = try Cryptography.seal(
                payload, key: encryptionKey, nonce: frameNonce(direction: direction, sequence: sequence),
                authenticating: header)
        }
        guard let key else { return (header, encrypted, []) }
        let direction = [self.direction]
        let mac = direction.withUnsafeBytes { directionBytes in
            header.withUnsafeBytes { headerBytes in
                if let encrypted {
                    return encrypted.withUnsafeBytes {
                        Cryptography.hmacSHA256(key: key, [directionBytes, headerBytes, $0])
                    }
                }
                return Cryptography.hmacSHA256(key: key, [directionBytes, headerBytes, payload])
            }
        }
        return (header, encrypted, mac)
    }
}

/// Checks incoming frames: magic, version, length limit, sequence (replays refused), fencing term and
/// authentication.
package struct FrameOpener: Sendable {
    package struct Header {
        package var type: WireFormat.FrameType
        package var authenticated: Bool
        package var encrypted: Bool
        package var sequence: UInt64
        package var length: Int
        /// The sender's fencing term.
        package var term: UInt64
        package var bytes: [UInt8]
    }

    private(set) var expectedSequence: UInt64 = 0
    private var key: SymmetricKey?
    private var encryptionKey: SymmetricKey?
    private let direction: UInt8
    /// The longest payload accepted.
    var maximumPayload: Int
    /// When set, a frame of any other fencing term is refused (``WireError/fenced(term:current:)``).
    var requiredTerm: UInt64?

    package init(direction: UInt8, maximumPayload: Int) {
        self.direction = direction
        self.maximumPayload = maximumPayload
    }

    package mutating func startSession(key: SymmetricKey?, encryptionKey: SymmetricKey? = nil) {
        self.key = key
        self.encryptionKey = encryptionKey
        expectedSequence = 1
    }

    /// Whether frames must carry an authentication code.
    var expectsAuthentication: Bool { key != nil }

    /// Reads a header.
    package func parseHeader(_ bytes: [UInt8]) throws(WireError) -> Header {
        guard bytes.count == WireFormat.headerLength else { throw .malformed("short header") }
        guard Array(bytes[0..<4]) == WireFormat.magic else { throw .badMagic }
        let version = UInt16(bytes[4]) | UInt16(bytes[5]) << 8
        guard version == WireFormat.version else { throw .unsupportedVersion(version) }
        guard let type = WireFormat.FrameType(rawValue: bytes[6]) else {
            throw .malformed("unknown frame type \(bytes[6])")
        }
        let flags = bytes[7]
        guard flags & ~(WireFormat.flagAuthenticated | WireFormat.flagEncrypted) == 0 else {
            throw .malformed("unknown flags \(flags)")
        }
        let sequence = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[8 + $1]) << UInt64(8 * $1) }
        let length = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[16 + $1]) << UInt64(8 * $1) }
        guard length <= UInt64(maximumPayload) else {
            throw .frameTooLarge(length: Int(clamping: length), limit: maximumPayload)
        }
        let term = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[24 + $1]) << UInt64(8 * $1) }
        return Header(
            type: type, authenticated: flags & WireFormat.flagAuthenticated != 0,
            encrypted: flags & WireFormat.flagEncrypted != 0, sequence: sequence,
            length: Int(length), term: term, bytes: bytes)
    }

    /// Checks a whole frame; on success the next sequence number is expected.
    package mutating func accept(_ header: Header, payload: [UInt8], mac: [UInt8]) throws(WireError) -> Frame {
        if let key {
            guard header.authenticated, mac.count == WireFormat.macLength else {
                throw .authenticationFailed("frame without an authentication code on an authenticated session")
            }
            let expected = Cryptography.hmacSHA256(key: key, [direction], header.bytes, payload)
            guard Cryptography.constantTimeEqual(expected, mac) else {
                throw .authenticationFailed("wrong authentication code (wrong key or tampered frame)")
            }
        } else if header.authenticated {
            throw .authenticationFailed("authenticated frame on a session without a key")
        }
        guard header.sequence == expectedSequence else {
            throw .outOfSequence(expected: expectedSequence, got: header.sequence)
        }
        if let requiredTerm, header.term != requiredTerm { throw .fenced(term: header.term, current: requiredTerm) }
        guard header.encrypted == (encryptionKey != nil) else {
            throw .authenticationFailed(
                header.encrypted
                    ? "encrypted frame on a session without encryption" : "plain frame on an encrypted session")
        }
        var plain = payload
        if let encryptionKey {
            guard payload.count >= WireFormat.aeadTagLength else {
                throw .malformed("encrypted payload shorter than its tag")
            }
            guard
                let opened = Cryptography.open(
                    payload, key: encryptionKey, nonce: frameNonce(direction: direction, sequence: header.sequence),
                    authenticating: header.bytes)
            else {
                throw .authenticationFailed("the payload does not decrypt (wrong key or tampered frame)")
            }
            plain = opened
        }
        if expectedSequence > 0 { expectedSequence += 1 }
        return Frame(type: header.type, sequence: header.sequence, term: header.term, payload: plain)
    }
}

/// The ChaCha20-Poly1305 nonce of a frame: the direction and the sequence number, unique per session key.
func frameNonce(direction: UInt8, sequence: UInt64) -> [UInt8] {
    var bytes: [UInt8] = [direction, 0, 0, 0]
    appendLittleEndian(sequence, to: &bytes)
    return bytes
}

@inline(__always)
package func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
    withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
}
