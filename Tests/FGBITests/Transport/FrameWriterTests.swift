import Foundation
import Synchronization
import Testing

@testable import FGBI

/// Frames go out whole and in order on every send path, over a real loopback TCP connection: plain,
/// authenticated and encrypted sessions, empty to multi-megabyte payloads, tiny socket buffers that make
/// the kernel take a frame piecemeal, and zero copy that returns only after the kernel's notifications.
@Suite("Frame send paths: round trips")
struct FrameWriterTests {
    /// Whether the running kernel is at least `major`.`minor`.
    static func kernelAtLeast(_ major: Int, _ minor: Int) -> Bool {
        let parts = KernelCapabilities.current.kernelRelease.split(whereSeparator: { !$0.isNumber }).prefix(2)
            .compactMap { Int($0) }
        return parts.count == 2 && (parts[0], parts[1]) >= (major, minor)
    }

    /// Whether io_uring sends are known to honour MSG_WAITALL here (older kernels may complete short sends,
    /// which the writer resumes, so only the submission count differs).
    static let kernelHonoursWaitAll = kernelAtLeast(6, 0)

    /// Payload lengths around the interesting edges: empty, tiny, around the 64 KiB zero-copy threshold, large.
    static let lengths = [0, 1, 100, 65_535, 65_536, 300_000, 1 << 20]

    static func payload(_ length: Int, seed: UInt64) -> [UInt8] {
        var random = SeededRandom(seed: seed)
        return (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }

    /// Sends every length (as epochs, with a heartbeat between) and checks what arrives, byte for byte and
    /// in sequence; returns the sender's statistics.
    @discardableResult
    func roundTrip(_ path: FrameSendPath, authenticated: Bool, encrypted: Bool = false, sendBuffer: Int? = nil) throws
        -> FrameSendStatistics
    {
        let pair = try FrameConnectionPair(
            sendPath: path, sendBuffer: sendBuffer, authenticated: authenticated, encrypted: encrypted)
        #expect(pair.sender.sendPath == path)
        let payloads = Self.lengths.enumerated().map { Self.payload($1, seed: UInt64($0) + 1) }
        let receive = pair.receiveConcurrently(payloads.count * 2)
        for payload in payloads {
            try pair.sender.send(.epoch, payload)
            try pair.sender.send(.heartbeat, [1, 2, 3, 4, 5, 6, 7, 8])
        }
        let frames = try receive.wait()
        for (index, payload) in payloads.enumerated() {
            let epoch = frames[2 * index]
            let heartbeat = frames[2 * index + 1]
            #expect(epoch.type == .epoch && epoch.sequence == UInt64(2 * index + 1))
            #expect(epoch.payload == payload, "\(path): payload of \(payload.count) bytes arrived changed")
            #expect(heartbeat.type == .heartbeat && heartbeat.payload == [1, 2, 3, 4, 5, 6, 7, 8])
        }
        let statistics = pair.sender.sendStatistics
        #expect(statistics.frames == payloads.count * 2)
        return statistics
    }

    // MARK: Socket path

    @Test func framesRoundTripOnTheSocketPath() throws {
        for (authenticated, encrypted) in [(false, false), (true, false), (true, true)] {
            let statistics = try roundTrip(.socket, authenticated: authenticated, encrypted: encrypted)
            #expect(statistics.socketFrames == statistics.frames && statistics.uringSubmissions == 0)
        }
    }

    @Test func largeFramesThroughASmallSocketBufferOnTheSocketPath() throws {
        try roundTrip(.socket, authenticated: true, sendBuffer: 4096)
        try largeFrame(.socket)
    }

    // MARK: io_uring path

    @Test(
        .enabled(
            if: URingSupport.sendmsg,
            "io_uring with IORING_OP_SENDMSG is unavailable (kernel.io_uring_disabled, seccomp or an old kernel)"))
    func framesRoundTripOnTheURingPath() throws {
        for (authenticated, encrypted) in [(false, false), (true, false), (true, true)] {
            let statistics = try roundTrip(.uring, authenticated: authenticated, encrypted: encrypted)
            #expect(statistics.uringFrames == statistics.frames && statistics.socketFrames == 0)
            #expect(statistics.uringSubmissions >= statistics.frames)
            #expect(statistics.zeroCopyNotifications == 0)
        }
    }

    @Test(.enabled(if: URingSupport.sendmsg, "io_uring with IORING_OP_SENDMSG is unavailable"))
    func largeFramesThroughASmallSocketBufferOnTheURingPath() throws {
        try roundTrip(.uring, authenticated: true, sendBuffer: 4096)
        let statistics = try largeFrame(.uring)
        #expect(statistics.uringFrames == 1)
        if Self.kernelHonoursWaitAll {
            #expect(
                statistics.uringSubmissions == 1,
                "MSG_WAITALL: the kernel sends the whole 4 MiB frame for one submission")
        }
    }

    /// `.bySize` splits frames between sendmsg and the ring where io_uring works, and falls back to sendmsg
    /// (recording why) elsewhere; the existing initializer takes `.automatic`, which is sendmsg.
    @Test func bySizeSendsSmallFramesWithSendmsgAndLargeOnesThroughTheRing() throws {
        let threshold = FrameSendPath.defaultSplitPayloadBytes
        let pair = try FrameConnectionPair(sendPath: .bySize(uringMinimumPayloadBytes: threshold))
        #expect((pair.sender.sendPath == .socket) == !URingSupport.sendmsg, "without io_uring it falls back to sendmsg")
        #expect(
            (pair.sender.sendPathFallback == nil) == URingSupport.sendmsg,
            "a fallback, and only a fallback, records why")
        let large = [UInt8](repeating: 7, count: threshold)
        let receive = pair.receiveConcurrently(2)
        try pair.sender.send(.epoch, [1, 2, 3])
        try pair.sender.send(.epoch, large)
        #expect(try receive.wait().map(\.payload) == [[1, 2, 3], large])
        let statistics = pair.sender.sendStatistics
        #expect(
            URingSupport.sendmsg
                ? (statistics.socketFrames == 1 && statistics.uringFrames == 1) : statistics.socketFrames == 2)
        let listener = try Socket.listen(on: Endpoint(host: "127.0.0.1", port: 0))
        let socket = try Socket.connect(to: Endpoint(host: "127.0.0.1", port: listener.localPort))
        #expect(
            FrameConnection(socket: socket, peer: "backup", isPrimary: true, maximumPayload: 1 << 20).sendPath
                == .socket)
    }

    // MARK: Zero copy

    @Test(.enabled(if: URingSupport.sendmsgZeroCopy, "io_uring IORING_OP_SENDMSG_ZC is unavailable (needs Linux 6.1)"))
    func framesRoundTripOnTheZeroCopyPath() throws {
        let threshold = FrameSendPath.defaultZeroCopyMinimumPayloadBytes
        for (authenticated, encrypted) in [(false, false), (true, false), (true, true)] {
            let statistics = try roundTrip(
                .uringZeroCopy(minimumPayloadBytes: threshold), authenticated: authenticated, encrypted: encrypted)
            // Encryption adds a 16-byte tag to what is sent, which is what the threshold sees.
            let large = Self.lengths.filter { $0 + (encrypted ? 16 : 0) >= threshold }.count
            #expect(statistics.zeroCopyFrames == large, "only payloads of at least \(threshold) bytes go zero-copy")
            #expect(statistics.uringFrames == statistics.frames - large)
            #expect(
                statistics.zeroCopyNotifications >= large,
                "every zero-copy submission is notified before its send returns")
            #expect(statistics.copiedNotifications <= statistics.zeroCopyNotifications)
        }
    }

    @Test(.enabled(if: URingSupport.sendmsgZeroCopy, "io_uring IORING_OP_SENDMSG_ZC is unavailable (needs Linux 6.1)"))
    func largeFramesThroughASmallSocketBufferOnTheZeroCopyPath() throws {
        try roundTrip(.uringZeroCopy(minimumPayloadBytes: 0), authenticated: true, sendBuffer: 4096)
        let statistics = try largeFrame(.uringZeroCopy(minimumPayloadBytes: 0))
        #expect(statistics.zeroCopyFrames == 1)
        if Self.kernelHonoursWaitAll {
            #expect(
                statistics.uringSubmissions == 1,
                "MSG_WAITALL: the kernel sends the whole 4 MiB frame for one submission")
        }
        #expect(
            statistics.zeroCopyNotifications == statistics.uringSubmissions, "one notification per zero-copy submission"
        )
    }

    @Test(.enabled(if: URingSupport.sendmsgZeroCopy, "io_uring IORING_OP_SENDMSG_ZC is unavailable (needs Linux 6.1)"))
    func zeroCopyNotificationsReportCopiesOnLoopback() throws {
        let (writer, sender, receiver) = try rawWriter(zeroCopyMinimum: 0)
        let counters = sender.counters
        let frame = Self.payload(256 << 10, seed: 3)
        let reader = RawReader(descriptor: receiver.descriptor, count: 32 + frame.count)
        try sendRaw(writer, header: [UInt8](repeating: 0xAB, count: 32), payload: frame)
        #expect(try reader.wait() == [UInt8](repeating: 0xAB, count: 32) + frame)
        let statistics = counters.snapshot()
        #expect(statistics.zeroCopyNotifications == statistics.uringSubmissions)
        // Linux 6.2 and later accept IORING_SEND_ZC_REPORT_USAGE on SENDMSG_ZC; loopback always copies.
        if Self.kernelAtLeast(6, 2) {
            #expect(writer.reportsZeroCopyUsage, "the kernel refused IORING_SEND_ZC_REPORT_USAGE on SENDMSG_ZC")
        }
        if writer.reportsZeroCopyUsage {
            #expect(
                statistics.copiedNotifications == statistics.zeroCopyNotifications, "loopback copies zero-copy sends")
        }
    }

    // MARK: Short sends resumed by the writer itself

    /// With MSG_WAITALL off, the kernel completes a send with whatever fits in a 4 KiB socket buffer: the
    /// writer must resume from the right byte, across the header, payload and mac, many times over.
    @Test(.enabled(if: URingSupport.sendmsg, "io_uring with IORING_OP_SENDMSG is unavailable"))
    func shortURingCompletionsAreResumed() throws {
        try resumesShortCompletions(zeroCopyMinimum: nil)
    }

    @Test(.enabled(if: URingSupport.sendmsgZeroCopy, "io_uring IORING_OP_SENDMSG_ZC is unavailable (needs Linux 6.1)"))
    func shortZeroCopyCompletionsAreResumed() throws {
        let statistics = try resumesShortCompletions(zeroCopyMinimum: 0)
        #expect(
            statistics.zeroCopyNotifications == statistics.uringSubmissions, "every zero-copy submission is notified")
    }

    @discardableResult
    func resumesShortCompletions(zeroCopyMinimum: Int?) throws -> FrameSendStatistics {
        let (writer, sender, receiver) = try rawWriter(zeroCopyMinimum: zeroCopyMinimum)
        writer.asksForWholeFrames = false
        sender.socket.setSendBuffer(bytes: 4096)
        let header = Self.payload(32, seed: 11)
        let mac = Self.payload(32, seed: 12)
        let payload = Self.payload(4 << 20, seed: 13)
        let reader = RawReader(descriptor: receiver.descriptor, count: header.count + payload.count + mac.count)
        try sendRaw(writer, header: header, payload: payload, mac: mac)
        #expect(try reader.wait() == header + payload + mac)
        let statistics = sender.counters.snapshot()
        #expect(
            statistics.shortSends > 8,
            "a 4 KiB socket buffer takes 4 MiB in many pieces (\(statistics.shortSends) short sends)")
        #expect(statistics.uringSubmissions == statistics.shortSends + 1)
        return statistics
    }

    // MARK: A peer that stops reading

    @Test func closeWakesASendBlockedOnAStalledPeerOnTheSocketPath() throws {
        try closeWakesABlockedSend(.socket)
    }

    @Test(.enabled(if: URingSupport.sendmsg, "io_uring with IORING_OP_SENDMSG is unavailable"))
    func closeWakesASendBlockedOnAStalledPeerOnTheURingPath() throws {
        try closeWakesABlockedSend(.uring)
    }

    @Test(.enabled(if: URingSupport.sendmsgZeroCopy, "io_uring IORING_OP_SENDMSG_ZC is unavailable (needs Linux 6.1)"))
    func closeWakesASendBlockedOnAStalledPeerOnTheZeroCopyPath() throws {
        try closeWakesABlockedSend(.uringZeroCopy(minimumPayloadBytes: 0))
    }

    @Test func framesSentBeforeCloseArriveOnTheSocketPath() throws {
        try framesSentBeforeCloseArrive(.socket)
    }

    @Test(.enabled(if: URingSupport.sendmsg, "io_uring with IORING_OP_SENDMSG is unavailable"))
    func framesSentBeforeCloseArriveOnTheURingPath() throws {
        try framesSentBeforeCloseArrive(.uring)
    }

    @Test(.enabled(if: URingSupport.sendmsgZeroCopy, "io_uring IORING_OP_SENDMSG_ZC is unavailable (needs Linux 6.1)"))
    func framesSentBeforeCloseArriveOnTheZeroCopyPath() throws {
        try framesSentBeforeCloseArrive(.uringZeroCopy(minimumPayloadBytes: 0))
    }

    /// Closing an idle connection is orderly on every path: frames already sent (the final `bye`, say) still
    /// arrive, then the end of the stream.
    func framesSentBeforeCloseArrive(_ path: FrameSendPath) throws {
        let pair = try FrameConnectionPair(sendPath: path, authenticated: true)
        let payload = Self.payload(200_000, seed: 5)
        let receive = pair.receiveConcurrently(2)
        try pair.sender.send(.epoch, payload)
        try pair.sender.send(.bye)
        pair.sender.close()
        let frames = try receive.wait()
        #expect(frames.first?.payload == payload && frames.last?.type == .bye)
        #expect(throws: WireError.closed) { try pair.receiver.receive() }
    }

    /// The replicator closes a connection to give up on a backup that stopped reading: a frame send blocked
    /// on the full socket must then fail promptly, with the peer-closed hint, not hang.
    func closeWakesABlockedSend(_ path: FrameSendPath) throws {
        let pair = try FrameConnectionPair(sendPath: path, sendBuffer: 4096, authenticated: true)
        let outcome = Mutex<(any Error)?>(nil)
        let finished = DispatchSemaphore(value: 0)
        let sender = pair.sender
        Thread.detachNewThread {
            let payload = [UInt8](repeating: 0x5A, count: 32 << 20) // far more than both socket buffers hold
            do { try sender.send(.epoch, payload) } catch { outcome.withLock { $0 = error } }
            finished.signal()
        }
        #expect(
            finished.wait(timeout: .now() + .milliseconds(300)) == .timedOut,
            "\(path): the send should block on a peer that does not read")
        let closed = MonotonicClock.nanoseconds()
        pair.sender.close()
        #expect(
            finished.wait(timeout: .now() + .seconds(10)) == .success, "\(path): close did not wake the blocked send")
        let seconds = Double(MonotonicClock.nanoseconds() - closed) / 1e9
        #expect(seconds < 5, "\(path): the send took \(seconds) s to fail after close")
        let error = outcome.withLock { $0 }
        #expect(error is SystemError, "\(path): expected a SystemError, got \(String(describing: error))")
    }

    // MARK: Helpers

    /// One 4 MiB authenticated frame through a 4 KiB socket buffer, received by a concurrent reader.
    @discardableResult
    func largeFrame(_ path: FrameSendPath) throws -> FrameSendStatistics {
        let pair = try FrameConnectionPair(sendPath: path, sendBuffer: 4096, authenticated: true)
        let payload = Self.payload(4 << 20, seed: 99)
        let receive = pair.receiveConcurrently(1)
        try pair.sender.send(.epoch, payload)
        let frames = try receive.wait()
        #expect(frames.first?.payload == payload, "\(path): the 4 MiB payload arrived changed")
        return pair.sender.sendStatistics
    }

    /// The sending side of a raw loopback connection, with its counters.
    struct RawSender {
        let socket: Socket
        let counters: FrameSendCounters
    }

    /// A io_uring writer on a loopback connection whose other end is read as plain bytes.
    func rawWriter(zeroCopyMinimum: Int?) throws -> (URingFrameWriter, RawSender, Socket) {
        let listener = try Socket.listen(on: Endpoint(host: "127.0.0.1", port: 0))
        let client = try Socket.connect(to: Endpoint(host: "127.0.0.1", port: listener.localPort))
        let server = try listener.accept().socket
        let counters = FrameSendCounters()
        let writer = try URingFrameWriter(
            socket: client, counters: counters, zeroCopyMinimumPayloadBytes: zeroCopyMinimum)
        return (writer, RawSender(socket: client, counters: counters), server)
    }

    func sendRaw(_ writer: URingFrameWriter, header: [UInt8], payload: [UInt8], mac: [UInt8] = []) throws {
        try header.withUnsafeBytes { header in
            try payload.withUnsafeBytes { payload in
                try mac.withUnsafeBytes { try writer.write(header: header, payload: payload, mac: $0) }
            }
        }
    }
}

/// Reads `count` bytes from a socket on a thread of its own.
final class RawReader: Sendable {
    private let bytes = Mutex<[UInt8]>([])
    private let done = DispatchSemaphore(value: 0)

    init(descriptor: Int32, count: Int) {
        Thread.detachNewThread { [self] in
            var received: [UInt8] = []
            received.reserveCapacity(count)
            var buffer = [UInt8](repeating: 0, count: 65536)
            while received.count < count {
                let n = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                received += buffer[0..<n]
            }
            bytes.withLock { $0 = received }
            done.signal()
        }
    }

    /// What arrived, once the reader has it all or the connection ended.
    func wait(seconds: Int = 30) throws -> [UInt8] {
        guard done.wait(timeout: .now() + .seconds(seconds)) == .success else {
            throw WireError.timedOut(milliseconds: seconds * 1000)
        }
        return bytes.withLock { $0 }
    }
}
