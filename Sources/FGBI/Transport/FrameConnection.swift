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

    /// `isPrimary` fixes the direction label both ends authenticate with.
    init(socket: Socket, peer: String, isPrimary: Bool, maximumPayload: Int) {
        self.socket = socket
        self.peer = peer
        sealer = Mutex(FrameSealer(direction: isPrimary ? 0 : 1))
        opener = FrameOpener(direction: isPrimary ? 1 : 0, maximumPayload: maximumPayload)
    }

    /// Switches both directions to sequence-numbered frames, authenticated when `key` is given and
    /// encrypted when `encryptionKey` is.
    func startSession(key: SymmetricKeyBox?, encryptionKey: SymmetricKeyBox? = nil) {
        sealer.withLock { $0.startSession(key: key?.key, encryptionKey: encryptionKey?.key) }
        opener.startSession(key: key?.key, encryptionKey: encryptionKey?.key)
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
        var header = [UInt8](repeating: 0, count: WireFormat.headerLength)
        try header.withUnsafeMutableBytes { buffer in
            try socket.receiveExactly(buffer.count, into: buffer.baseAddress!, timeoutMilliseconds: receiveTimeout)
        }
        let parsed = try opener.parseHeader(header)
        var payload = [UInt8](repeating: 0, count: parsed.length)
        if parsed.length > 0 {
            try payload.withUnsafeMutableBytes { buffer in
                try socket.receiveExactly(buffer.count, into: buffer.baseAddress!, timeoutMilliseconds: receiveTimeout)
            }
        }
        var mac: [UInt8] = []
        if parsed.authenticated {
            mac = [UInt8](repeating: 0, count: WireFormat.macLength)
            try mac.withUnsafeMutableBytes { buffer in
                try socket.receiveExactly(buffer.count, into: buffer.baseAddress!, timeoutMilliseconds: receiveTimeout)
            }
        }
        return try opener.accept(parsed, payload: payload, mac: mac)
    }

    /// Ends the connection, waking any blocked receive.
    func close() { socket.shutdownBoth() }
}
