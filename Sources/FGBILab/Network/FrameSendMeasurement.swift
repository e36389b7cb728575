import FGBI
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Times whole frames through ``FrameConnection`` on one ``FrameSendPath`` over a loopback TCP connection:
/// what `fgbi bench send --frames` reports, and what ``FrameSendPath/automatic``'s split was chosen from.
/// The receiver only drains bytes (no parsing), the same for every path.
public enum FrameSendMeasurement {
    public struct Result: Sendable, Codable {
        public var path: String
        public var payloadBytes: Int
        public var frames: Int
        public var framesPerSecond: Double
        public var gigabytesPerSecond: Double
        /// CPU time of the sending thread per GB of payload (io_uring's kernel workers not counted).
        public var senderCPUSecondsPerGB: Double
        /// How the frames went out, from the connection's own counters.
        public var socketFrames: Int
        public var uringFrames: Int
        public var zeroCopyFrames: Int
        public var copiedNotifications: Int
    }

    /// Sends `frames` frames of `payloadBytes` each (after a warm-up of a tenth as many) on `path`.
    ///
    /// - Throws: ``SystemError`` when the path cannot run here or a socket call fails.
    public static func measure(path: FrameSendPath, payloadBytes: Int, frames: Int) throws -> Result {
        let (client, server) = try connectedLoopbackPair()
        let drained = Atomic<Int>(0)
        let receiver = try JoinableThread(name: "fgbi-drain") {
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 64)
            defer { buffer.deallocate() }
            while true {
                let n = recv(server.descriptor, buffer, 1 << 20, 0)
                if n > 0 {
                    drained.add(n, ordering: .relaxed)
                    continue
                }
                if n < 0 && errno == EINTR { continue }
                return
            }
        }
        let connection = try FrameConnection(
            socket: client, peer: "measurement", isPrimary: true, maximumPayload: payloadBytes,
            sendPath: path)
        let payload = [UInt8](repeating: 0x5A, count: payloadBytes)
        try payload.withUnsafeBytes { bytes in
            for _ in 0..<max(frames / 10, 1) { try connection.send(.epoch, bytes) }
        }
        let cpuBefore = MonotonicClock.threadCPUSeconds()
        let start = MonotonicClock.nanoseconds()
        try payload.withUnsafeBytes { bytes in
            for _ in 0..<frames { try connection.send(.epoch, bytes) }
        }
        let seconds = Double(MonotonicClock.nanoseconds() - start) / 1e9
        let cpu = MonotonicClock.threadCPUSeconds() - cpuBefore
        client.shutdownWrite()
        receiver.join()
        let statistics = connection.sendStatistics
        let gigabytes = Double(frames * payloadBytes) / 1e9
        return Result(
            path: connection.sendPath.description, payloadBytes: payloadBytes, frames: frames,
            framesPerSecond: Double(frames) / seconds, gigabytesPerSecond: gigabytes / seconds,
            senderCPUSecondsPerGB: gigabytes > 0 ? cpu / gigabytes : 0,
            socketFrames: statistics.socketFrames, uringFrames: statistics.uringFrames,
            zeroCopyFrames: statistics.zeroCopyFrames, copiedNotifications: statistics.copiedNotifications)
    }

    /// Two ends of one TCP connection over loopback: what the measurements send on and receive from.
    static func connectedLoopbackPair() throws(SystemError) -> (client: Socket, server: Socket) {
        let listener = try Socket.listen(on: Endpoint(host: "127.0.0.1", port: 0))
        let client = try Socket.connect(to: Endpoint(host: "127.0.0.1", port: listener.localPort))
        return (client, try listener.accept().socket)
    }
}
