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
        let pointers = parts.map { UnsafeRawPointer($0.baseAddress) }
        let lengths = parts.map(\.count)
        let result = key.bytes.withUnsafeBytes { keyBytes in
            pointers.withUnsafeBufferPointer { pointerBuffer in
                lengths.withUnsafeBufferPointer { lengthBuffer in
                    code.withUnsafeMutableBufferPointer { out in
                        // A nil base (an empty part) is fine: its length is 0.
                        CSupport_hmac_sha256(
                            keyBytes.baseAddress, keyBytes.count, pointerBuffer.baseAddress,
                            lengthBuffer.baseAddress, parts.count, out.baseAddress)
                    }
                }
            }
        }
        precondition(result == 0, "HMAC-SHA256 failed inside libcrypto")
        return code
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

    /// ChaCha20-Poly1305: the ciphertext followed by the 16-byte tag.
    static func seal(
        _ plaintext: UnsafeRawBufferPointer, key: SymmetricKey, nonce: [UInt8], authenticating aad: [UInt8]
    ) throws(LibraryError) -> [UInt8] {
        precondition(key.bytes.count == 32 && nonce.count == 12)
        var out = [UInt8](repeating: 0, count: plaintext.count + 16)
        let result = key.bytes.withUnsafeBufferPointer { k in
            nonce.withUnsafeBufferPointer { n in
                aad.withUnsafeBytes { a in
                    out.withUnsafeMutableBufferPointer { o in
                        CSupport_chacha20_poly1305_seal(
                            k.baseAddress, n.baseAddress, a.baseAddress, a.count, plaintext.baseAddress,
                            plaintext.count, o.baseAddress, o.baseAddress! + plaintext.count)
                    }
                }
            }
        }
        guard result == 0 else { throw LibraryError(operation: "ChaCha20-Poly1305 seal") }
        return out
    }

    /// Opens ciphertext followed by its tag; nil when it does not authenticate.
    static func open(_ sealed: [UInt8], key: SymmetricKey, nonce: [UInt8], authenticating aad: [UInt8]) -> [UInt8]? {
        precondition(key.bytes.count == 32 && nonce.count == 12)
        guard sealed.count >= 16 else { return nil }
        let length = sealed.count - 16
        var out = [UInt8](repeating: 0, count: length)
        let result = key.bytes.withUnsafeBufferPointer { k in
            nonce.withUnsafeBufferPointer { n in
                aad.withUnsafeBytes { a in
                    sealed.withUnsafeBufferPointer { s in
                        out.withUnsafeMutableBufferPointer { o in
                            CSupport_chacha20_poly1305_open(
                                k.baseAddress, n.baseAddress, a.baseAddress, a.count, s.baseAddress, length,
                                s.baseAddress! + length, o.baseAddress)
                        }
                    }
                }
            }
        }
        return result == 0 ? out : nil
    }

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
