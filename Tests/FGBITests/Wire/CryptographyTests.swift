import Testing

@testable import FGBI

/// Known answers from the RFCs pin the libcrypto wrappers the wire protocol uses.
@Suite("Cryptography")
struct CryptographyTests {
    static func hex(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            bytes.append(UInt8(text[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }

    @Test func hmacSHA256MatchesRFC4231() {
        let code = Cryptography.hmacSHA256(
            key: SymmetricKey(data: Array("Jefe".utf8)), Array("what do ya want ".utf8), Array("for nothing?".utf8))
        #expect(
            code == Self.hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            "test case 2, given in two parts")
        #expect(Cryptography.constantTimeEqual(code, code))
        var altered = code
        altered[31] ^= 1
        #expect(!Cryptography.constantTimeEqual(code, altered))
        #expect(!Cryptography.constantTimeEqual(code, Array(code.prefix(16))))
    }

    @Test func hkdfSHA256MatchesRFC5869() {
        let okm = Cryptography.hkdfSHA256(
            key: SymmetricKey(data: [UInt8](repeating: 0x0b, count: 22)),
            salt: Self.hex("000102030405060708090a0b0c"), info: Self.hex("f0f1f2f3f4f5f6f7f8f9"), count: 42)
        #expect(
            okm.bytes
                == Self.hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"),
            "test case 1")
    }

    @Test func sha256MatchesFIPS180() {
        #expect(
            Cryptography.sha256(Array("abc".utf8))
                == Self.hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
    }

    @Test func chaCha20Poly1305MatchesRFC8439AndRefusesTampering() throws {
        let key = SymmetricKey(data: (0x80...0x9f).map { UInt8($0) })
        let nonce = Self.hex("070000004041424344454647")
        let aad = Self.hex("50515253c0c1c2c3c4c5c6c7")
        let plaintext = Array(
            """
            Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen \
            would be it.
            """
            .utf8)
        let sealed = try plaintext.withUnsafeBytes {
            try Cryptography.seal($0, key: key, nonce: nonce, authenticating: aad)
        }
        let ciphertext = Self.hex(
            "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b"
                + "1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7"
                + "bc3ff4def08e4b7a9de576d26586cec64b6116"
        )
        #expect(sealed == ciphertext + Self.hex("1ae10b594f09e26a7e902ecbd0600691"), "section 2.8.2")
        #expect(Cryptography.open(sealed, key: key, nonce: nonce, authenticating: aad) == plaintext)
        var tampered = sealed
        tampered[5] ^= 0x40
        #expect(Cryptography.open(tampered, key: key, nonce: nonce, authenticating: aad) == nil)
        #expect(
            Cryptography.open(sealed, key: key, nonce: nonce, authenticating: aad + [0]) == nil, "other associated data"
        )
        #expect(
            Cryptography.open(Array(sealed.prefix(10)), key: key, nonce: nonce, authenticating: aad) == nil,
            "shorter than a tag")
        let empty = try [UInt8]().withUnsafeBytes {
            try Cryptography.seal($0, key: key, nonce: nonce, authenticating: [])
        }
        #expect(empty.count == 16)
        #expect(Cryptography.open(empty, key: key, nonce: nonce, authenticating: []) == [])
    }

    /// The authenticator of frames in clear is the ChaCha20-Poly1305 tag of no plaintext over the parts (the
    /// AEAD pinned above by RFC 8439), however the associated data is split into parts.
    @Test func poly1305TagIsTheAEADTagOfNoPlaintextOverTheParts() throws {
        let key = SymmetricKey(data: (0x80...0x9f).map { UInt8($0) })
        let nonce = Self.hex("070000004041424344454647")
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let aead = try [UInt8]().withUnsafeBytes {
            try Cryptography.seal($0, key: key, nonce: nonce, authenticating: data)
        }
        for split in [0, 1, 32, 999, 1000] {
            let tag = data.withUnsafeBytes { bytes in
                Cryptography.poly1305Tag(
                    key: key, nonce: nonce,
                    [
                        UnsafeRawBufferPointer(rebasing: bytes[..<split]),
                        UnsafeRawBufferPointer(rebasing: bytes[split...]),
                    ])
            }
            #expect(tag == aead, "split at \(split)")
        }
        var changed = data
        changed[500] ^= 1
        let other = changed.withUnsafeBytes { Cryptography.poly1305Tag(key: key, nonce: nonce, [$0]) }
        #expect(other != aead, "one bit of the data changes the tag")
        let otherNonce = data.withUnsafeBytes {
            Cryptography.poly1305Tag(key: key, nonce: Self.hex("070000004041424344454648"), [$0])
        }
        #expect(otherNonce != aead, "another nonce gives another tag")
    }

    /// Opening in place leaves the plaintext where the ciphertext was.
    @Test func chaCha20Poly1305OpensInPlace() throws {
        let key = SymmetricKey(data: Array(repeating: 3, count: 32))
        let nonce = Array(repeating: UInt8(1), count: 12)
        let plaintext = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var sealed = try plaintext.withUnsafeBytes {
            try Cryptography.seal($0, key: key, nonce: nonce, authenticating: [9])
        }
        let authentic = sealed.withUnsafeMutableBytes {
            Cryptography.openInPlace($0, key: key, nonce: nonce, authenticating: [9])
        }
        #expect(authentic)
        #expect(Array(sealed.prefix(plaintext.count)) == plaintext)
        sealed = try plaintext.withUnsafeBytes {
            try Cryptography.seal($0, key: key, nonce: nonce, authenticating: [9])
        }
        sealed[sealed.count - 1] ^= 1
        #expect(
            !sealed.withUnsafeMutableBytes { Cryptography.openInPlace($0, key: key, nonce: nonce, authenticating: [9]) }
        )
    }

    @Test func randomBytesDiffer() {
        #expect(Cryptography.randomBytes(32) != Cryptography.randomBytes(32))
        #expect(Cryptography.randomBytes(0).isEmpty)
    }
}
