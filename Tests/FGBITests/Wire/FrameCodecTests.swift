import Testing

@testable import FGBI

/// Frames are sealed and opened with sequence numbers and authenticators (Poly1305 in clear, the encryption's
/// tag when encrypted): tampering, replay, reflection and mismatched authentication are all refused.
@Suite("Frame codec")
struct FrameCodecTests {
    let key = SymmetricKey(data: [UInt8](repeating: 7, count: 32))

    /// Seals `payload` from the primary side and returns the bytes that would travel.
    func seal(_ sealer: inout FrameSealer, _ type: WireFormat.FrameType, _ payload: [UInt8]) -> (
        [UInt8], [UInt8], [UInt8]
    ) {
        let (header, encrypted, mac) = try! payload.withUnsafeBytes { try sealer.seal(type, payload: $0) }
        return (header, encrypted ?? payload, mac)
    }

    func open(_ opener: inout FrameOpener, _ frame: ([UInt8], [UInt8], [UInt8])) throws(WireError) -> Frame {
        let header = try opener.parseHeader(frame.0)
        return try opener.accept(header, payload: frame.1, mac: frame.2)
    }

    func pair(key: SymmetricKey?, encryptionKey: SymmetricKey? = nil) -> (FrameSealer, FrameOpener) {
        var sealer = FrameSealer(direction: 0)
        var opener = FrameOpener(direction: 0, maximumPayload: 1 << 20)
        sealer.startSession(key: key, encryptionKey: encryptionKey)
        opener.startSession(key: key, encryptionKey: encryptionKey)
        return (sealer, opener)
    }

    @Test func encryptedFramesHideThePayloadAndRoundTrip() throws {
        let secret = SymmetricKey(data: [UInt8](repeating: 9, count: 32))
        var (sealer, opener) = pair(key: key, encryptionKey: secret)
        let payload = Array("the guest's memory, which must not travel in the clear".utf8)
        let frame = seal(&sealer, .epoch, payload)
        #expect(frame.1.count == payload.count + 16)
        #expect(!frame.1.starts(with: payload.prefix(16)), "the payload travels encrypted")
        #expect(try open(&opener, frame).payload == payload)
        var tampered = seal(&sealer, .epoch, payload)
        tampered.1[3] ^= 0x40
        #expect(throws: WireError.self) { try open(&opener, tampered) }
    }

    /// An encrypted frame carries no code of its own: its tag authenticates the header too, so a changed type,
    /// term or sequence, or the frame reflected to its sender, does not open.
    @Test func encryptedFramesAuthenticateTheirHeaderWithTheirTag() {
        let secret = SymmetricKey(data: [UInt8](repeating: 9, count: 32))
        var (sealer, _) = pair(key: key, encryptionKey: secret)
        let frame = seal(&sealer, .epoch, [1, 2, 3, 4])
        #expect(frame.2.isEmpty, "no authentication code after an encrypted payload")
        for offset in [6, 24] {
            var (_, opener) = pair(key: key, encryptionKey: secret)
            var changed = frame
            changed.0[offset] ^= offset == 6 ? 0x01 : 0x10 // epoch -> ack; another term
            #expect(throws: WireError.self, "header byte \(offset) changed") { try open(&opener, changed) }
        }
        var reflecting = FrameOpener(direction: 1, maximumPayload: 1 << 20)
        reflecting.startSession(key: key, encryptionKey: secret)
        #expect(throws: WireError.self, "reflected") { try open(&reflecting, frame) }
    }

    /// A frame in clear on a keyed session carries a 16-byte authenticator over header and payload.
    @Test func authenticatedFramesCarryAPoly1305Code() throws {
        var (sealer, opener) = pair(key: key)
        let frame = seal(&sealer, .epoch, [5, 6, 7])
        #expect(frame.2.count == WireFormat.macLength && WireFormat.macLength == 16)
        var changedType = frame
        changedType.0[6] ^= 0x01
        var (_, fresh) = pair(key: key)
        #expect(throws: WireError.self) { try open(&fresh, changedType) }
        var forged = frame
        forged.2[0] ^= 0x80
        #expect(throws: WireError.self) { try open(&opener, forged) }
        #expect(try open(&opener, frame).payload == [5, 6, 7])
    }

    @Test func encryptionMustMatchTheSession() {
        let secret = SymmetricKey(data: [UInt8](repeating: 9, count: 32))
        var (encrypting, _) = pair(key: key, encryptionKey: secret)
        var (_, plainOpener) = pair(key: key)
        #expect(throws: WireError.self) { try open(&plainOpener, seal(&encrypting, .epoch, [1, 2, 3])) }
        var (plain, _) = pair(key: key)
        var (_, encryptedOpener) = pair(key: key, encryptionKey: secret)
        #expect(throws: WireError.self) { try open(&encryptedOpener, seal(&plain, .epoch, [1, 2, 3])) }
    }

    @Test func framesCarryTheFencingTermAndAnotherTermIsRefused() throws {
        var (sealer, opener) = pair(key: key)
        sealer.term = 7
        opener.requiredTerm = 7
        #expect(try open(&opener, seal(&sealer, .epoch, [1])).term == 7)
        sealer.term = 6
        #expect(throws: WireError.fenced(term: 6, current: 7)) { try open(&opener, seal(&sealer, .ack, [2])) }
        // The term is inside the authenticated header: changing it on the path breaks the code.
        var (honest, checking) = pair(key: key)
        honest.term = 3
        checking.requiredTerm = 4
        var frame = seal(&honest, .epoch, [1])
        frame.0[24] = 4
        #expect(throws: WireError.self) { try open(&checking, frame) }
        // Without a coordinator the term is 0 and nothing is required.
        var (plain, open0) = pair(key: nil)
        #expect(try open(&open0, seal(&plain, .epoch, [1])).term == 0)
    }

    @Test func roundTripsInSequence() throws {
        var (sealer, opener) = pair(key: key)
        for i in 1...5 {
            let frame = try open(&opener, seal(&sealer, .epoch, [UInt8](repeating: UInt8(i), count: i * 100)))
            #expect(frame.sequence == UInt64(i) && frame.type == .epoch && frame.payload.count == i * 100)
        }
    }

    @Test func tamperedPayloadIsRefused() {
        var (sealer, opener) = pair(key: key)
        var frame = seal(&sealer, .epoch, [1, 2, 3, 4])
        frame.1[2] ^= 1
        #expect(throws: WireError.self) { try open(&opener, frame) }
    }

    @Test func replayedFrameIsRefused() throws {
        var (sealer, opener) = pair(key: key)
        let first = seal(&sealer, .epoch, [1])
        _ = try open(&opener, first)
        #expect(throws: WireError.outOfSequence(expected: 2, got: 1)) { try open(&opener, first) }
    }

    @Test func reflectedFrameIsRefused() {
        var sealer = FrameSealer(direction: 0)
        var opener = FrameOpener(direction: 1, maximumPayload: 1 << 20)
        sealer.startSession(key: key)
        opener.startSession(key: key)
        #expect(throws: WireError.self) { try open(&opener, seal(&sealer, .ack, [1, 0, 0, 0, 0, 0, 0, 0])) }
    }

    @Test func wrongKeyIsRefused() {
        var sealer = FrameSealer(direction: 0)
        var opener = FrameOpener(direction: 0, maximumPayload: 1 << 20)
        sealer.startSession(key: SymmetricKey(data: [UInt8](repeating: 8, count: 32)))
        opener.startSession(key: key)
        #expect(throws: WireError.self) { try open(&opener, seal(&sealer, .epoch, [9])) }
    }

    @Test func authenticationMustMatchTheSession() {
        var (plain, _) = pair(key: nil)
        var (_, authenticated) = pair(key: key)
        #expect(throws: WireError.self) { try open(&authenticated, seal(&plain, .epoch, [1])) }
        var (signed, _) = pair(key: key)
        var (_, unauthenticated) = pair(key: nil)
        #expect(throws: WireError.self) { try open(&unauthenticated, seal(&signed, .epoch, [1])) }
    }

    @Test func oversizedAndForeignHeadersAreRefused() {
        var (sealer, _) = pair(key: nil)
        let small = FrameOpener(direction: 0, maximumPayload: 10)
        let frame = seal(&sealer, .epoch, [UInt8](repeating: 0, count: 11))
        #expect(throws: WireError.frameTooLarge(length: 11, limit: 10)) { try small.parseHeader(frame.0) }
        var foreign = frame.0
        foreign[0] = 0x47
        #expect(throws: WireError.badMagic) { try small.parseHeader(foreign) }
        var future = frame.0
        future[4] = 9
        #expect(throws: WireError.unsupportedVersion(9)) { try small.parseHeader(future) }
    }

    @Test func handshakeMessagesRoundTripAndRejectGarbage() throws {
        let hello = Hello(
            mode: .xbzrle, wantsAuthentication: true, blockSize: 128, pageSize: 4096, regionLengths: [4096, 8192],
            nonce: randomBytes(32))
        #expect(try Hello(decoding: hello.encoded) == hello)
        let welcome = Welcome(sessionID: randomBytes(16), nonce: randomBytes(32), nextEpoch: 42)
        #expect(try Welcome(decoding: welcome.encoded) == welcome)
        #expect(throws: WireError.self) { try Hello(decoding: Array(hello.encoded.dropLast())) }
        #expect(throws: WireError.self) { try Welcome(decoding: welcome.encoded + [0]) }
        var hostile = hello.encoded
        hostile[10] = 0xFF // region count low byte: 255 regions claimed, not present
        #expect(throws: WireError.self) { try Hello(decoding: hostile) }
    }
}
