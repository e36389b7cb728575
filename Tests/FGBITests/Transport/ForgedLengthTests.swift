import Foundation
import Testing

@testable import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// A frame's announced length is authenticated only by the MAC at its end, so the receiver must not
/// allocate what a forged header announces before the bytes arrive (Docs/SECURITY.md).
@Suite("Forged frame lengths")
struct ForgedLengthTests {
    @Test func aForgedLengthCostsOnlyWhatArrives() throws {
        let pair = try FrameConnectionPair(sendPath: .socket, authenticated: true, maximumPayload: 1 << 30)
        var header =
            WireFormat.magic + [
                UInt8(WireFormat.version & 0xFF), UInt8(WireFormat.version >> 8),
                WireFormat.FrameType.epoch.rawValue, WireFormat.flagAuthenticated,
            ]
        header += (0..<8).map { _ in 0 } // sequence 0: the first frame
        header += (0..<8).map { UInt8(truncatingIfNeeded: (768 << 20) >> (8 * $0)) } // 768 MiB announced
        header += (0..<8).map { _ in 0 } // term
        let sent = header + [UInt8](repeating: 0xEE, count: 4096)
        _ = sent.withUnsafeBytes { write(pair.sender.socket.descriptor, $0.baseAddress, $0.count) }
        pair.sender.socket.shutdownBoth()
        #expect(throws: (any Error).self) { try pair.receiver.receive() }
        let allocated = pair.receiver.payloadBytesAllocated.load(ordering: .relaxed)
        #expect(allocated <= FrameConnection.initialPayloadBytes, "allocated \(allocated) bytes for 4 KiB received")
    }

    @Test func framesLongerThanTheFirstAllocationStillArriveWhole() throws {
        let pair = try FrameConnectionPair(sendPath: .socket, authenticated: true, maximumPayload: 16 << 20)
        let payload = (0..<(5 << 20) + 12_345).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
        let receive = pair.receiveConcurrently(2)
        try pair.sender.send(.epoch, payload)
        try pair.sender.send(.heartbeat, [1, 2, 3])
        let frames = try receive.wait()
        #expect(frames.map(\.payload) == [payload, [1, 2, 3]])
        #expect(pair.receiver.payloadBytesAllocated.load(ordering: .relaxed) == 3)
    }
}
