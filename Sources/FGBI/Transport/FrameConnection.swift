import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One side of a primary-backup connection: frames out through a ``FrameSealer`` and a ``FrameWriter``,
/// frames in through a ``FrameOpener``, over a ``Socket``. Sends may come from any thread (they are
/// serialised); receives from one thread at a time.
///
/// How frames are written is a ``FrameSendPath``: by default sendmsg(2), measured fastest here; io_uring
/// paths on request. ``sendPath`` says which was taken and ``sendPathFallback`` why a `by-size` path could
/// not have io_uring.
package final class FrameConnection: @unchecked Sendable {
    let socket: Socket
    /// The peer's address, for log lines.
    let peer: String
    /// The path frames are written on: never `.automatic`.
    package let sendPath: FrameSendPath
    /// Why `.bySize` fell back to the socket path (io_uring disabled or absent, no ring), or nil.
    let sendPathFallback: SystemError?
    /// A pthread lock rather than `Mutex`, so ThreadSanitizer sees the heartbeat and sender threads take turns.
    private let sending: PthreadLock<Sending>
    private let sendCounters = FrameSendCounters()
    private var opener: FrameOpener
    private var receiveTimeout = 0
    /// A long payload handed back by the receiving thread (``recycle(_:)``), to receive the next one into.
    private var spare: [UInt8] = []
    /// While the handshake runs: the most a whole frame may take, and the payload limit then is small, so
    /// a peer that has not proven anything can neither make us allocate much nor hold us up for long.
    /// When the whole handshake must be done (monotonic ns), not each frame of it: a peer that drips bytes
    /// or answers slowly frame by frame holds the backup for one handshake timeout at most.
    private var handshakeDeadline: UInt64?
    private let sessionMaximumPayload: Int
    static let handshakeMaximumPayload = 64 << 10

    /// What a send uses, under one lock: the sealer numbers frames in the order the writer sends them.
    private struct Sending {
        var sealer: FrameSealer
        let writer: any FrameWriter
        /// Where an encrypted session's payloads are encrypted, reused frame after frame.
        let sealed = SealedPayloadBuffer()
    }

    /// `isPrimary` fixes the direction label both ends authenticate with; `maximumPayload` applies once the
    /// session has started (during the handshake the limit is 64 KiB). Frames go out on the
    /// ``FrameSendPath/automatic`` path, which cannot fail.
    package convenience init(socket: Socket, peer: String, isPrimary: Bool, maximumPayload: Int) {
        // Automatic never throws: it falls back to the socket path instead.
        try! self.init(
            socket: socket, peer: peer, isPrimary: isPrimary, maximumPayload: maximumPayload, sendPath: .automatic)
    }

    /// As the initializer without `sendPath`, writing frames on `sendPath`.
    /// - Throws: ``SystemError`` when `sendPath` asks for io_uring (or its zero copy) and this kernel or
    ///   process cannot have it; `.automatic`, `.socket` and `.bySize` never throw.
    package init(socket: Socket, peer: String, isPrimary: Bool, maximumPayload: Int, sendPath: FrameSendPath)
        throws(SystemError)
    {
        self.socket = socket
        self.peer = peer
        sessionMaximumPayload = maximumPayload
        let (writer, fallback) = try FrameWriters.make(for: sendPath, socket: socket, counters: sendCounters)
        self.sendPath = writer.path
        sendPathFallback = fallback
        sending = PthreadLock(Sending(sealer: FrameSealer(direction: isPrimary ? 0 : 1), writer: writer))
        opener = FrameOpener(
            direction: isPrimary ? 1 : 0, maximumPayload: min(maximumPayload, Self.handshakeMaximumPayload))
    }

    /// What this connection's sends did so far: frames per path, io_uring submissions, zero-copy
    /// notifications. Does not wait for a send in progress.
    package var sendStatistics: FrameSendStatistics { sendCounters.snapshot() }

    /// Bounds the time a whole frame may take to arrive until the session starts.
    func setHandshakeDeadline(milliseconds: Int) {
        handshakeDeadline = MonotonicClock.nanoseconds() + UInt64(max(milliseconds, 0)) * 1_000_000
    }

    /// Switches both directions to sequence-numbered frames, authenticated when `key` is given and
    /// encrypted when `encryptionKey` is.
    func startSession(key: SymmetricKeyBox?, encryptionKey: SymmetricKeyBox? = nil) {
        startSession(frameKey: key?.key, encryptionKey: encryptionKey?.key)
    }

    /// As ``startSession(key:encryptionKey:)``, with the session keys themselves (measurements and tests that
    /// skip the handshake).
    package func startSession(frameKey: SymmetricKey?, encryptionKey: SymmetricKey?) {
        sending.withLock { $0.sealer.startSession(key: frameKey, encryptionKey: encryptionKey) }
        opener.startSession(key: frameKey, encryptionKey: encryptionKey)
        opener.maximumPayload = sessionMaximumPayload
        handshakeDeadline = nil
    }

    /// Fences the connection at `term`: every frame sent from now on carries it, and a frame received with
    /// any other term is refused (``WireError/fenced(term:current:)``). Call before the first frame each way
    /// that must be fenced (the primary before its hello, the backup after reading it).
    func fence(term: UInt64) {
        sending.withLock { $0.sealer.term = term }
        opener.requiredTerm = term
    }

    /// How long ``receive()`` waits for a frame to start and complete (0: forever).
    func setReceiveTimeout(milliseconds: Int) {
        receiveTimeout = milliseconds
        socket.setReceiveTimeout(milliseconds: milliseconds)
    }

    /// Sends one frame; throws ``SystemError`` when the connection fails. Returns when `payload` may be
    /// reused.
    package func send(_ type: WireFormat.FrameType, _ payload: UnsafeRawBufferPointer) throws {
        try sending.withLock { sending in
            let (header, encrypted, mac) = try sending.sealer.seal(
                type, payload: payload, encryptingInto: sending.sealed)
            try header.withUnsafeBytes { header in
                try mac.withUnsafeBytes { mac in
                    try sending.writer.write(header: header, payload: encrypted ?? payload, mac: mac)
                }
            }
        }
    }

    /// Sends one frame with `payload` (none by default); throws ``SystemError`` when the connection fails.
    package func send(_ type: WireFormat.FrameType, _ payload: [UInt8] = []) throws {
        try payload.withUnsafeBytes { try send(type, $0) }
    }

    /// Receives and checks one frame; throws ``WireError``.
    package func receive() throws -> Frame {
        let deadline = handshakeDeadline
        var header = [UInt8](repeating: 0, count: WireFormat.headerLength)
        try header.withUnsafeMutableBytes { buffer in
            try socket.receiveExactly(
                buffer.count, into: buffer.baseAddress!, timeoutMilliseconds: receiveTimeout, deadline: deadline)
        }
        let parsed = try opener.parseHeader(header)
        // The announced length is not authenticated until the MAC at the end is checked: memory is given as
        // bytes arrive (doubling), so a forged header costs the forger the bytes it would make us hold. A
        // payload handed back (``recycle(_:)``) that is long enough is filled instead: no fresh memory, whose
        // first touch costs more than the frame's bytes (and nothing new to hold for a forged length).
        var payload: [UInt8]
        if parsed.length > Self.initialPayloadBytes, spare.capacity >= parsed.length {
            payload = spare
            spare = []
            payloadsReused.add(1, ordering: .relaxed)
            Self.resize(&payload, to: parsed.length)
        } else {
            payload = Self.uninitializedBytes(min(parsed.length, Self.initialPayloadBytes), keeping: [])
        }
        var received = 0
        while true {
            payloadBytesAllocated.store(payload.count, ordering: .relaxed)
            if payload.count > received {
                try payload.withUnsafeMutableBytes { buffer in
                    try socket.receiveExactly(
                        buffer.count - received, into: buffer.baseAddress! + received,
                        timeoutMilliseconds: receiveTimeout, deadline: deadline)
                }
                received = payload.count
            }
            guard received < parsed.length else { break }
            payload = Self.uninitializedBytes(min(parsed.length, 2 * received), keeping: payload)
        }
        var mac: [UInt8] = []
        if FrameOpener.carriesCode(parsed) {
            mac = [UInt8](repeating: 0, count: WireFormat.macLength)
            try mac.withUnsafeMutableBytes { buffer in
                try socket.receiveExactly(
                    buffer.count, into: buffer.baseAddress!, timeoutMilliseconds: receiveTimeout, deadline: deadline)
            }
        }
        return try opener.accept(parsed, payload: consume payload, mac: mac)
    }

    /// Hands back the payload of a frame this connection received, once its reader is done with it: the next
    /// long frame is received into its memory. Only from the receiving thread; a payload still referenced
    /// elsewhere costs a copy when reused, never a wrong byte (arrays copy on write).
    package func recycle(_ payload: [UInt8]) {
        if payload.capacity > Self.initialPayloadBytes, payload.capacity > spare.capacity { spare = payload }
    }

    /// Ends the connection, waking any blocked receive and send.
    ///
    /// On the zero-copy path a send also waits for the kernel to let go of its buffers, which for data
    /// still queued behind a peer that stopped reading happens only when the connection is torn down: if a
    /// send is still under way ``closeGracePeriodMilliseconds`` after the shutdown, the connection is
    /// dropped (unsent data discarded, the peer reset). Otherwise, as on the other paths, what was sent
    /// before still reaches a peer that reads.
    package func close() {
        socket.shutdownBoth()
        guard case .uringZeroCopy = sendPath else { return }
        let deadline = MonotonicClock.nanoseconds() + UInt64(Self.closeGracePeriodMilliseconds) * 1_000_000
        while sending.withLockIfAvailable({ _ in true }) == nil {
            if MonotonicClock.nanoseconds() >= deadline {
                socket.disconnect()
                return
            }
            usleep(1000)
        }
    }

    /// Makes `payload` (whose capacity holds `count`) `count` bytes long without reallocating: the bytes it
    /// keeps or gains are about to be received over. By whole copies, not byte by byte (which an unoptimised
    /// build would do for `repeatElement`, at a frame's length).
    private static func resize(_ payload: inout [UInt8], to count: Int) {
        if payload.count > count { payload.removeLast(payload.count - count) }
        zeros.withUnsafeBytes { zeros in
            while payload.count < count {
                payload.append(
                    contentsOf: UnsafeRawBufferPointer(rebasing: zeros[..<min(zeros.count, count - payload.count)]))
            }
        }
    }

    /// What ``resize(_:to:)`` lengthens a payload with.
    private static let zeros = [UInt8](repeating: 0, count: 64 << 10)

    /// `count` bytes that start with `prefix` and are then filled by a receive (one copy, no zero fill).
    private static func uninitializedBytes(_ count: Int, keeping prefix: [UInt8]) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            prefix.withUnsafeBytes { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: $0) }
            initialized = count
        }
    }

    /// The payload memory given before any of a frame's bytes arrive; more follows as they do.
    static let initialPayloadBytes = 1 << 20

    /// The payload bytes allocated for the frame being (or last) received: for tests of the bound above.
    let payloadBytesAllocated = Atomic<Int>(0)

    /// Frames received into a recycled payload (``recycle(_:)``).
    let payloadsReused = Atomic<Int>(0)

    /// How long ``close()`` lets a zero-copy send under way finish before dropping the connection.
    static let closeGracePeriodMilliseconds = 100

    /// Ends the sending side only: the peer reads everything sent so far, then EOF. Receiving goes on, so
    /// frames the peer still sends are read rather than answered with a reset (which could destroy the
    /// frames we sent last before the peer read them).
    func finishSending() { socket.shutdownWrite() }
}
