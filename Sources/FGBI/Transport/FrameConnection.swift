import Synchronization

/// One side of a primary-backup connection: frames out through a ``FrameSealer``, frames in through a
/// ``FrameOpener``, over a ``Socket``. Sends may come from any thread (they are serialised); receives
/// from one thread at a time.
final class FrameConnection: @unchecked Sendable {
    let socket: Socket
    /// The peer's address, for log lines.
    let peer: String
    private let sealer: Mutex<FrameSealer>
    private var opener: FrameOpener
    private var receiveTimeout = 0
    /// While the handshake runs: the most a whole frame may take, and the payload limit then is small, so
    /// a peer that has not proven anything can neither make us allocate much nor hold us up for long.
    private var handshakeDeadline: Int?
    private let sessionMaximumPayload: Int
    static let handshakeMaximumPayload = 64 << 10

    /// `isPrimary` fixes the direction label both ends authenticate with; `maximumPayload` applies once the
    /// session has started (during the handshake the limit is 64 KiB).
    init(socket: Socket, peer: String, isPrimary: Bool, maximumPayload: Int) {
        self.socket = socket
        self.peer = peer
        sessionMaximumPayload = maximumPayload
        sealer = Mutex(FrameSealer(direction: isPrimary ? 0 : 1))
        opener = FrameOpener(direction: isPrimary ? 1 : 0, maximumPayload: min(maximumPayload, Self.handshakeMaximumPayload))
    }

    /// Bounds the time a whole frame may take to arrive until the session starts.
    func setHandshakeDeadline(milliseconds: Int) {
        handshakeDeadline = milliseconds
    }

    /// Switches both directions to sequence-numbered frames, authenticated when `key` is given and
    /// encrypted when `encryptionKey` is.
    func startSession(key: SymmetricKeyBox?, encryptionKey: SymmetricKeyBox? = nil) {
        sealer.withLock { $0.startSession(key: key?.key, encryptionKey: encryptionKey?.key) }
        opener.startSession(key: key?.key, encryptionKey: encryptionKey?.key)
        opener.maximumPayload = sessionMaximumPayload
        handshakeDeadline = nil
    }

    /// How long ``receive()`` waits for a frame to start and complete (0: forever).
    func setReceiveTimeout(milliseconds: Int) {
        receiveTimeout = milliseconds
        socket.setReceiveTimeout(milliseconds: milliseconds)
    }

    /// Sends one frame.
    /// Sends one frame; throws ``SystemError`` when the connection fails.
    func send(_ type: WireFormat.FrameType, _ payload: UnsafeRawBufferPointer) throws {
        try sealer.withLock { sealer in
            let (header, encrypted, mac) = try sealer.seal(type, payload: payload)
            try header.withUnsafeBytes { header in
                try mac.withUnsafeBytes { mac in
                    if let encrypted {
                        try encrypted.withUnsafeBytes { try socket.sendAll([header, $0, mac]) }
                    } else {
                        try socket.sendAll([header, payload, mac])
                    }
                }
            }
        }
    }

    func send(_ type: WireFormat.FrameType, _ payload: [UInt8] = []) throws {
        try payload.withUnsafeBytes { try send(type, $0) }
    }

    /// Receives and checks one frame; throws ``WireError``.
    func receive() throws -> Frame {
        let deadline = handshakeDeadline.map { MonotonicClock.nanoseconds() + UInt64($0) * 1_000_000 }
        var header = [UInt8](repeating: 0, count: WireFormat.headerLength)
        try header.withUnsafeMutableBytes { buffer in
            try socket.receiveExactly(buffer.count, into: buffer.baseAddress!, timeoutMilliseconds: receiveTimeout, deadline: deadline)
        }
        let parsed = try opener.parseHeader(header)
        var payload = [UInt8](repeating: 0, count: parsed.length)
        if parsed.length > 0 {
            try payload.withUnsafeMutableBytes { buffer in
                try socket.receiveExactly(buffer.count, into: buffer.baseAddress!, timeoutMilliseconds: receiveTimeout, deadline: deadline)
            }
        }
        var mac: [UInt8] = []
        if parsed.authenticated {
            mac = [UInt8](repeating: 0, count: WireFormat.macLength)
            try mac.withUnsafeMutableBytes { buffer in
                try socket.receiveExactly(buffer.count, into: buffer.baseAddress!, timeoutMilliseconds: receiveTimeout, deadline: deadline)
            }
        }
        return try opener.accept(parsed, payload: payload, mac: mac)
    }

    /// Ends the connection, waking any blocked receive.
    func close() { socket.shutdownBoth() }

    /// Ends the sending side only: the peer reads everything sent so far, then EOF. Receiving goes on, so
    /// frames the peer still sends are read rather than answered with a reset (which could destroy the
    /// frames we sent last before the peer read them).
    func finishSending() { socket.shutdownWrite() }
}
