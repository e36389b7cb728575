import Crypto
import Foundation

/// Seals outgoing frames: header, sequence number, and (with a session key) an HMAC-SHA256 over the
/// direction, header and payload.
struct FrameSealer: @unchecked Sendable {  // its SymmetricKey is immutable
    private(set) var nextSequence: UInt64 = 0
    private var key: SymmetricKey?
    private let direction: UInt8

    /// `direction` differs per side (0: primary to backup, 1: backup to primary), so a frame reflected back
    /// to its sender fails authentication.
    init(direction: UInt8) {
        self.direction = direction
    }

    /// From now on frames carry sequence numbers from 1 and, with a key, an authentication code.
    mutating func startSession(key: SymmetricKey?) {
        self.key = key
        nextSequence = 1
    }

    /// The header and the authentication code (empty without a key) to send around `payload`.
    mutating func seal(_ type: WireFormat.FrameType, payload: UnsafeRawBufferPointer) -> (header: [UInt8], mac: [UInt8]) {
        var header = [UInt8]()
        header.reserveCapacity(WireFormat.headerLength)
        header += WireFormat.magic
        appendLittleEndian(WireFormat.version, to: &header)
        header.append(type.rawValue)
        header.append(key == nil ? 0 : WireFormat.flagAuthenticated)
        appendLittleEndian(nextSequence, to: &header)
        appendLittleEndian(UInt64(payload.count), to: &header)
        appendLittleEndian(UInt64(0), to: &header)
        if nextSequence > 0 { nextSequence += 1 }
        guard let key else { return (header, []) }
        var mac = HMAC<SHA256>(key: key)
        mac.update(data: [direction])
        mac.update(data: header)
        mac.update(data: payload)
        return (header, Array(mac.finalize()))
    }
}

/// Checks incoming frames: magic, version, length limit, sequence (replays refused) and authentication.
struct FrameOpener: @unchecked Sendable {  // its SymmetricKey is immutable
    struct Header {
        var type: WireFormat.FrameType
        var authenticated: Bool
        var sequence: UInt64
        var length: Int
        var bytes: [UInt8]
    }

    private(set) var expectedSequence: UInt64 = 0
    private var key: SymmetricKey?
    private let direction: UInt8
    /// The longest payload accepted.
    let maximumPayload: Int

    init(direction: UInt8, maximumPayload: Int) {
        self.direction = direction
        self.maximumPayload = maximumPayload
    }

    mutating func startSession(key: SymmetricKey?) {
        self.key = key
        expectedSequence = 1
    }

    /// Whether frames must carry an authentication code.
    var expectsAuthentication: Bool { key != nil }

    /// Reads a header.
    func parseHeader(_ bytes: [UInt8]) throws(WireError) -> Header {
        guard bytes.count == WireFormat.headerLength else { throw .malformed("short header") }
        guard Array(bytes[0..<4]) == WireFormat.magic else { throw .badMagic }
        let version = UInt16(bytes[4]) | UInt16(bytes[5]) << 8
        guard version == WireFormat.version else { throw .unsupportedVersion(version) }
        guard let type = WireFormat.FrameType(rawValue: bytes[6]) else { throw .malformed("unknown frame type \(bytes[6])") }
        let flags = bytes[7]
        guard flags & ~WireFormat.flagAuthenticated == 0 else { throw .malformed("unknown flags \(flags)") }
        let sequence = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[8 + $1]) << UInt64(8 * $1) }
        let length = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[16 + $1]) << UInt64(8 * $1) }
        guard length <= UInt64(maximumPayload) else { throw .frameTooLarge(length: Int(clamping: length), limit: maximumPayload) }
        guard bytes[24..<32].allSatisfy({ $0 == 0 }) else { throw .malformed("reserved header bytes are not zero") }
        return Header(type: type, authenticated: flags & WireFormat.flagAuthenticated != 0, sequence: sequence,
                      length: Int(length), bytes: bytes)
    }

    /// Checks a whole frame; on success the next sequence number is expected.
    mutating func accept(_ header: Header, payload: [UInt8], mac: [UInt8]) throws(WireError) -> Frame {
        if let key {
            guard header.authenticated, mac.count == WireFormat.macLength else {
                throw .authenticationFailed("frame without an authentication code on an authenticated session")
            }
            var expected = HMAC<SHA256>(key: key)
            expected.update(data: [direction])
            expected.update(data: header.bytes)
            expected.update(data: payload)
            // MessageAuthenticationCode's == with bytes compares in constant time.
            guard expected.finalize() == mac else {
                throw .authenticationFailed("wrong authentication code (wrong key or tampered frame)")
            }
        } else if header.authenticated {
            throw .authenticationFailed("authenticated frame on a session without a key")
        }
        guard header.sequence == expectedSequence else { throw .outOfSequence(expected: expectedSequence, got: header.sequence) }
        if expectedSequence > 0 { expectedSequence += 1 }
        return Frame(type: header.type, sequence: header.sequence, payload: payload)
    }
}

@inline(__always)
func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
    withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
}
