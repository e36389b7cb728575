@testable import FGBI

/// Array forms of the wire's sealing and opening, for tests that build or check frames and known answers:
/// production code seals into a buffer kept across frames and opens in place.
extension Cryptography {
    /// ChaCha20-Poly1305: the ciphertext followed by the 16-byte tag.
    static func seal(
        _ plaintext: UnsafeRawBufferPointer, key: SymmetricKey, nonce: [UInt8], authenticating aad: [UInt8]
    ) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: plaintext.count + aeadTagLength)
        try out.withUnsafeMutableBytes {
            try seal(plaintext, key: key, nonce: nonce, authenticating: aad, into: $0.baseAddress!)
        }
        return out
    }

    /// Opens ciphertext followed by its tag; nil when it does not authenticate.
    static func open(_ sealed: [UInt8], key: SymmetricKey, nonce: [UInt8], authenticating aad: [UInt8]) -> [UInt8]? {
        var opened = sealed
        let authentic = opened.withUnsafeMutableBytes {
            openInPlace($0, key: key, nonce: nonce, authenticating: aad)
        }
        guard authentic else { return nil }
        opened.removeLast(aeadTagLength)
        return opened
    }
}

extension FrameSealer {
    /// ``seal(_:payload:encryptingInto:)`` with the encrypted payload as an array of its own.
    mutating func seal(_ type: WireFormat.FrameType, payload: UnsafeRawBufferPointer) throws -> (
        header: [UInt8], encrypted: [UInt8]?, mac: [UInt8]
    ) {
        let buffer = SealedPayloadBuffer()
        return try withExtendedLifetime(buffer) {
            let sealed = try seal(type, payload: payload, encryptingInto: buffer)
            return (sealed.header, sealed.encrypted.map { Array($0) }, sealed.mac)
        }
    }
}
