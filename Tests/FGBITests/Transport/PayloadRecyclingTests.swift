import Foundation
import Testing

@testable import FGBI

/// A long payload handed back to its connection (``FrameConnection/recycle(_:)``) receives the next long
/// frame in its memory, and whatever still holds the old payload keeps its bytes.
@Suite("Payload recycling")
struct PayloadRecyclingTests {
    static func payload(_ seed: Int, count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ seed &* 17) }
    }

    /// Sends `payloads` from a thread of its own (each longer than the socket buffers hold).
    static func sendConcurrently(_ pair: FrameConnectionPair, _ payloads: [[UInt8]]) -> DispatchSemaphore {
        let done = DispatchSemaphore(value: 0)
        let sender = pair.sender
        Thread.detachNewThread {
            for payload in payloads { try? sender.send(.epoch, payload) }
            done.signal()
        }
        return done
    }

    @Test(arguments: [(false, false), (true, false), (true, true)])
    func aRecycledPayloadReceivesTheNextLongFrame(authenticated: Bool, encrypted: Bool) throws {
        let pair = try FrameConnectionPair(
            sendPath: .socket, authenticated: authenticated, encrypted: encrypted, maximumPayload: 16 << 20)
        let length = FrameConnection.initialPayloadBytes * 3 + 12_345
        let payloads = (0..<3).map { Self.payload($0, count: length) }
        let sent = Self.sendConcurrently(pair, payloads)
        for expected in payloads {
            let frame = try pair.receiver.receive()
            #expect(frame.payload == expected)
            pair.receiver.recycle(frame.payload)
        }
        sent.wait()
        #expect(
            pair.receiver.payloadsReused.load(ordering: .relaxed) == 2, "the second and third frames reuse the first's")
    }

    @Test func aRecycledPayloadStillHeldElsewhereKeepsItsBytes() throws {
        let pair = try FrameConnectionPair(sendPath: .socket, authenticated: true, maximumPayload: 16 << 20)
        let length = FrameConnection.initialPayloadBytes * 2 + 7
        let payloads = [Self.payload(1, count: length), Self.payload(2, count: length)]
        let sent = Self.sendConcurrently(pair, payloads)
        let first = try pair.receiver.receive()
        let kept = first.payload
        pair.receiver.recycle(first.payload)
        let second = try pair.receiver.receive()
        sent.wait()
        #expect(kept == payloads[0], "the held payload is not overwritten")
        #expect(second.payload == payloads[1])
        #expect(pair.receiver.payloadsReused.load(ordering: .relaxed) == 1)
    }
}
