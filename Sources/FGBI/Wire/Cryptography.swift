import CSupport

/// The wire protocol's cryptographic primitives, from OpenSSL's libcrypto through the C shim: HMAC-SHA256,
/// HKDF-SHA256, SHA-256 and ChaCha20-Poly1305, each with fixed parameters. Known-answer tests from RFC 4231,
/// RFC 5869 and RFC 8439 pin them (Tests/FGBITests/Wire/CryptographyTests.swift).
enum Cryptography {
    /// An error of the crypto library itself (not an authentication failure): out of memory, say.
    struct LibraryError: Error, CustomStringConvertible {
        var operation: String
        var description: String { "libcrypto: \(operation) failed" }
    }

    /// HMAC-SHA256 of the concatenation of `parts`.
    static func hmacSHA256(key: SymmetricKey, _ parts: [UnsafeRawBufferPointer]) -> [UInt8] {
        var code = [UInt8](repeating: 0, count: 32)
        let result = key.bytes.withUnsafeBytes { keyBytes in
            withParts(parts) { pointers, lengths in
                code.withUnsafeMutableBufferPointer { out in
                    CSupport_hmac_sha256(
                        keyBytes.baseAddress, keyBytes.count, pointers, lengths, parts.count, out.baseAddress)
                }
            }
        }
        precondition(result == 0, "HMAC-SHA256 failed inside libcrypto")
        return code
    }

    /// Calls `body` with the base addresses and lengths of `parts`, as the shim's functions over several parts
    /// take them (a nil base, an empty part, is fine: its length is 0).
    private static func withParts(
        _ parts: [UnsafeRawBufferPointer],
        _ body: (UnsafePointer<UnsafeRawPointer?>?, UnsafePointer<Int>?) -> Int32
    ) -> Int32 {
        let pointers = parts.map { UnsafeRawPointer($0.baseAddress) }
        let lengths = parts.map(\.count)
        return pointers.withUnsafeBufferPointer { pointerBuffer in
            lengths.withUnsafeBufferPointer { body(pointerBuffer.baseAddress, $0.baseAddress) }
        }
    }

    /// HMAC-SHA256 of byte arrays.
    static func hmacSHA256(key: SymmetricKey, _ parts: [UInt8]...) -> [UInt8] {
        func with(_ index: Int, _ buffers: [UnsafeRawBufferPointer]) -> [UInt8] {
            guard index < parts.count else { return hmacSHA256(key: key, buffers) }
            return parts[index].withUnsafeBytes { with(index + 1, buffers + [$0]) }
        }
        return with(0, [])
    }

    /// Whether `code` equals `expected`, compared in constant time.
    static func constantTimeEqual(_ code: [UInt8], _ expected: [UInt8]) -> Bool {
        guard code.count == expected.count else { return false }
        return code.withUnsafeBytes { a in
            expected.withUnsafeBytes { b in CSupport_constant_time_equal(a.baseAddress, b.baseAddress, a.count) == 1 }
        }
    }

    /// HKDF-SHA256 (extract then expand) of `count` bytes.
    static func hkdfSHA256(key: SymmetricKey, salt: [UInt8], info: [UInt8], count: Int) -> SymmetricKey {
        var out = [UInt8](repeating: 0, count: count)
        let result = key.bytes.withUnsafeBytes { k in
            salt.withUnsafeBytes { s in
                info.withUnsafeBytes { i in
                    out.withUnsafeMutableBytes { o in
                        CSupport_hkdf_sha256(
                            k.baseAddress, k.count, s.baseAddress, s.count, i.baseAddress, i.count,
                            o.baseAddress?.assumingMemoryBound(to: UInt8.self), count)
                    }
                }
            }
        }
        precondition(result == 0, "HKDF-SHA256 failed inside libcrypto")
        return SymmetricKey(data: out)
    }

    static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        let result = bytes.withUnsafeBytes { b in
            out.withUnsafeMutableBufferPointer { CSupport_sha256(b.baseAddress, b.count, $0.baseAddress) }
        }
        precondition(result == 0, "SHA-256 failed inside libcrypto")
        return out
    }

    /// ChaCha20-Poly1305 into `out`, which holds `plaintext.count + 16` bytes: the ciphertext, then the tag.
    static func seal(
        _ plaintext: UnsafeRawBufferPointer, key: SymmetricKey, nonce: [UInt8], authenticating aad: [UInt8],
        into out: UnsafeMutableRawPointer
    ) throws(LibraryError) {
        precondition(key.bytes.count == 32 && nonce.count == 12)
        let bytes = out.assumingMemoryBound(to: UInt8.self)
        let result = key.bytes.withUnsafeBufferPointer { k in
            nonce.withUnsafeBufferPointer { n in
                aad.withUnsafeBytes { a in
                    CSupport_chacha20_poly1305_seal(
                        k.baseAddress, n.baseAddress, a.baseAddress, a.count, plaintext.baseAddress,
                        plaintext.count, bytes, bytes + plaintext.count)
                }
            }
        }
        guard result == 0 else { throw LibraryError(operation: "ChaCha20-Poly1305 seal") }
    }

    /// Opens `sealed` (ciphertext, then its 16-byte tag) where it lies: afterwards its first `count - 16`
    /// bytes are the plaintext. False when it does not authenticate (the bytes are then garbage) or is shorter
    /// than a tag.
    static func openInPlace(
        _ sealed: UnsafeMutableRawBufferPointer, key: SymmetricKey, nonce: [UInt8], authenticating aad: [UInt8]
    ) -> Bool {
        precondition(key.bytes.count == 32 && nonce.count == 12)
        guard sealed.count >= aeadTagLength, let base = sealed.baseAddress else { return false }
        let length = sealed.count - aeadTagLength
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        let result = key.bytes.withUnsafeBufferPointer { k in
            nonce.withUnsafeBufferPointer { n in
                aad.withUnsafeBytes { a in
                    // In place: OpenSSL allows the output to be exactly the input.
                    CSupport_chacha20_poly1305_open(
                        k.baseAddress, n.baseAddress, a.baseAddress, a.count, bytes, length, bytes + length, bytes)
                }
            }
        }
        return result == 0
    }

    /// The ChaCha20-Poly1305 tag of an empty plaintext with the concatenation of `parts` as associated data:
    /// a Poly1305 authenticator under a one-time key drawn from `key` and `nonce` (RFC 8439), for data sent in
    /// clear. Secure only while no two messages under one key share a nonce.
    static func poly1305Tag(key: SymmetricKey, nonce: [UInt8], _ parts: [UnsafeRawBufferPointer]) -> [UInt8] {
        precondition(key.bytes.count == 32 && nonce.count == 12)
        var tag = [UInt8](repeating: 0, count: aeadTagLength)
        let result = key.bytes.withUnsafeBufferPointer { k in
            nonce.withUnsafeBufferPointer { n in
                withParts(parts) { pointers, lengths in
                    tag.withUnsafeMutableBufferPointer { out in
                        CSupport_chacha20_poly1305_tag(
                            k.baseAddress, n.baseAddress, pointers, lengths, parts.count, out.baseAddress)
                    }
                }
            }
        }
        precondition(result == 0, "ChaCha20-Poly1305 failed inside libcrypto")
        return tag
    }

    /// Bytes of a ChaCha20-Poly1305 tag.
    static let aeadTagLength = 16

    /// Bytes from the operating system's random source (through libcrypto's DRBG).
    static func randomBytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let result = out.withUnsafeMutableBytes { CSupport_random_bytes($0.baseAddress, count) }
        precondition(result == 0, "no random bytes from libcrypto")
        return out
    }
}

/// Key material held by value (immutable once made).
package struct SymmetricKey: Sendable, Equatable {
    let bytes: [UInt8]

    package init(data: [UInt8]) { bytes = data }
}
