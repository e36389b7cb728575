/// Seals outgoing frames: header, sequence number and, with a session key, protection: an encrypted session
/// encrypts the payload with ChaCha20-Poly1305 (the header as associated data; its tag authenticates both), a
/// session in clear appends a Poly1305 authenticator over header and payload (the ChaCha20-Poly1305 tag of no
/// plaintext). Either way the nonce is the direction and the sequence number, so a frame reflected back to its
/// sender, replayed or reordered fails.
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
    /// encryption key, their payloads are encrypted instead (the encryption's tag authenticates them).
    package mutating func startSession(key: SymmetricKey?, encryptionKey: SymmetricKey? = nil) {
        self.key = key
        self.encryptionKey = encryptionKey
        nextSequence = 1
    }

    /// The header, the payload to send in place of `payload` when encrypting (nil: send `payload`; else
    /// ciphertext and tag in `buffer`, valid until its next use), and the authentication code to send after
    /// the payload (empty without a key, and on an encrypted session).
    mutating func seal(
        _ type: WireFormat.FrameType, payload: UnsafeRawBufferPointer, encryptingInto buffer: SealedPayloadBuffer
    ) throws -> (header: [UInt8], encrypted: UnsafeRawBufferPointer?, mac: [UInt8]) {
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
        let nonce = frameNonce(direction: direction, sequence: sequence)
        if let encryptionKey {
            let out = buffer.reserve(payload.count + WireFormat.aeadTagLength)
            try Cryptography.seal(payload, key: encryptionKey, nonce: nonce, authenticating: header, into: out)
            return (header, UnsafeRawBufferPointer(start: out, count: payload.count + WireFormat.aeadTagLength), [])
        }
        guard let key else { return (header, nil, []) }
        let mac = header.withUnsafeBytes { Cryptography.poly1305Tag(key: key, nonce: nonce, [$0, payload]) }
        return (header, nil, mac)
    }
}

/// Where a sender's frames are encrypted: one buffer kept across frames, grown when a frame outgrows it, so an
/// epoch of tens of MiB costs no allocation (and no first touch of fresh memory) per frame. Used under the
/// connection's send lock.
final class SealedPayloadBuffer: @unchecked Sendable {
    private var storage: UnsafeMutableRawPointer?
    private var capacity = 0

    init() {}

    deinit { storage?.deallocate() }

    /// `count` bytes to write, valid until the next call.
    func reserve(_ count: Int) -> UnsafeMutableRawPointer {
        if let storage, count <= capacity { return storage }
        storage?.deallocate()
        capacity = max(count, 2 * capacity, 4096)
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
        storage = fresh
        return fresh
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

    /// Whether a frame with `header` carries an authentication code after its payload (a session in clear
    /// with a key; an encrypted payload carries its own tag).
    package static func carriesCode(_ header: Header) -> Bool { header.authenticated && !header.encrypted }

    /// Checks a whole frame; on success the next sequence number is expected. An encrypted payload is
    /// decrypted where it lies (`payload` is consumed: given its only reference, no copy is made).
    package mutating func accept(_ header: Header, payload: consuming [UInt8], mac: [UInt8]) throws(WireError)
        -> Frame
    {
        guard header.authenticated == (key != nil) else {
            throw .authenticationFailed(
                header.authenticated
                    ? "authenticated frame on a session without a key"
                    : "frame without an authentication code on an authenticated session")
        }
        guard header.encrypted == (encryptionKey != nil) else {
            throw .authenticationFailed(
                header.encrypted
                    ? "encrypted frame on a session without encryption" : "plain frame on an encrypted session")
        }
        let nonce = frameNonce(direction: direction, sequence: header.sequence)
        var plain = consume payload
        if let encryptionKey {
            guard plain.count >= WireFormat.aeadTagLength else {
                throw .malformed("encrypted payload shorter than its tag")
            }
            let authentic = plain.withUnsafeMutableBytes {
                Cryptography.openInPlace($0, key: encryptionKey, nonce: nonce, authenticating: header.bytes)
            }
            guard authentic else {
                throw .authenticationFailed("the payload does not decrypt (wrong key or tampered frame)")
            }
            plain.removeLast(WireFormat.aeadTagLength)
        } else if let key {
            guard mac.count == WireFormat.macLength else {
                throw .authenticationFailed("frame without an authentication code on an authenticated session")
            }
            let expected = header.bytes.withUnsafeBytes { headerBytes in
                plain.withUnsafeBytes { Cryptography.poly1305Tag(key: key, nonce: nonce, [headerBytes, $0]) }
            }
            guard Cryptography.constantTimeEqual(expected, mac) else {
                throw .authenticationFailed("wrong authentication code (wrong key or tampered frame)")
            }
        }
        guard header.sequence == expectedSequence else {
            throw .outOfSequence(expected: expectedSequence, got: header.sequence)
        }
        if let requiredTerm, header.term != requiredTerm { throw .fenced(term: header.term, current: requiredTerm) }
        if expectedSequence > 0 { expectedSequence += 1 }
        return Frame(type: header.type, sequence: header.sequence, term: header.term, payload: plain)
    }
}

/// The ChaCha20-Poly1305 nonce of a frame (for its encryption or its authenticator): the direction and the
/// sequence number, unique per session key.
func frameNonce(direction: UInt8, sequence: UInt64) -> [UInt8] {
    var bytes: [UInt8] = [direction, 0, 0, 0]
    appendLittleEndian(sequence, to: &bytes)
    return bytes
}

@inline(__always)
package func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
    withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
}
