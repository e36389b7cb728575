import FGBI
import Synchronization

/// Times whole frames through a sending and a receiving ``FrameConnection`` over loopback at each level of
/// frame protection: what the sealing and opening cost each side, per GB of payload. What
/// `fgbi bench send --security` reports.
///
/// Unlike ``FrameSendMeasurement`` (whose receiver only drains bytes), the receiver here reads and checks
/// every frame as a backup does (``FrameConnection``'s receive: header, payload, authentication, decryption),
/// so the receiver's CPU is the backup's frame cost.
public enum FrameSecurityMeasurement {
    /// How frames are protected; both ends use fixed session keys (the handshake is not timed).
    public enum Security: String, CaseIterable, Sendable, Codable {
        /// Sequence numbers only: keyless loopback.
        case none
        /// Every frame authenticated: a key, in clear (loopback).
        case authenticated
        /// Every frame encrypted and authenticated: a key off loopback (the default there).
        case encrypted
    }

    public struct Result: Sendable, Codable {
        public var security: Security
        public var payloadBytes: Int
        public var frames: Int
        public var gigabytesPerSecond: Double
        /// CPU time of the sending thread per GB of payload: sealing and writing.
        public var senderCPUSecondsPerGB: Double
        /// CPU time of the receiving thread per GB of payload: reading, checking and opening.
        public var receiverCPUSecondsPerGB: Double
    }

    /// Sends `frames` frames of `payloadBytes` each at `security` (after a warm-up of a tenth as many), each
    /// received and checked by a second connection.
    ///
    /// - Throws: ``SystemError`` when a socket call fails, ``WireError`` when a frame is refused.
    public static func measure(security: Security, payloadBytes: Int, frames: Int) throws -> Result {
        let (client, server) = try FrameSendMeasurement.connectedLoopbackPair()
        let limit = payloadBytes + 64
        let sender = FrameConnection(socket: client, peer: "measurement", isPrimary: true, maximumPayload: limit)
        let receiver = FrameConnection(socket: server, peer: "measurement", isPrimary: false, maximumPayload: limit)
        let frameKey = security == .none ? nil : SymmetricKey(data: [UInt8](repeating: 0x11, count: 32))
        let encryptionKey = security == .encrypted ? SymmetricKey(data: [UInt8](repeating: 0x22, count: 32)) : nil
        sender.startSession(frameKey: frameKey, encryptionKey: encryptionKey)
        receiver.startSession(frameKey: frameKey, encryptionKey: encryptionKey)
        let warmUp = max(frames / 10, 1)
        let receiverCPU = Mutex<Result?>(nil)
        let failure = Mutex<Error?>(nil)
        let thread = try JoinableThread(name: "fgbi-open") {
            do {
                // As a backup does: each payload handed back once read.
                for _ in 0..<warmUp { receiver.recycle(try receiver.receive().payload) }
                let before = MonotonicClock.threadCPUSeconds()
                for _ in 0..<frames { receiver.recycle(try receiver.receive().payload) }
                let cpu = MonotonicClock.threadCPUSeconds() - before
                receiverCPU.withLock {
                    $0 = Result(
                        security: security, payloadBytes: payloadBytes, frames: frames, gigabytesPerSecond: 0,
                        senderCPUSecondsPerGB: 0, receiverCPUSecondsPerGB: cpu)
                }
            } catch {
                failure.withLock { $0 = error }
            }
        }
        let payload = [UInt8](unsafeUninitializedCapacity: payloadBytes) { buffer, count in
            var random = SeededRandom(seed: 7)
            for index in 0..<payloadBytes { buffer[index] = UInt8(truncatingIfNeeded: random.next()) }
            count = payloadBytes
        }
        var seconds = 0.0
        var cpu = 0.0
        do {
            try payload.withUnsafeBytes { bytes in
                for _ in 0..<warmUp { try sender.send(.epoch, bytes) }
                let cpuBefore = MonotonicClock.threadCPUSeconds()
                let start = MonotonicClock.nanoseconds()
                for _ in 0..<frames { try sender.send(.epoch, bytes) }
                seconds = Double(MonotonicClock.nanoseconds() - start) / 1e9
                cpu = MonotonicClock.threadCPUSeconds() - cpuBefore
            }
        } catch {
            receiver.close()
            thread.join()
            throw error
        }
        thread.join()
        if let error = failure.withLock({ $0 }) { throw error }
        let gigabytes = Double(frames * payloadBytes) / 1e9
        var result = receiverCPU.withLock { $0 }!
        result.gigabytesPerSecond = gigabytes / seconds
        result.senderCPUSecondsPerGB = gigabytes > 0 ? cpu / gigabytes : 0
        result.receiverCPUSecondsPerGB = gigabytes > 0 ? result.receiverCPUSecondsPerGB / gigabytes : 0
        return result
    }
}
