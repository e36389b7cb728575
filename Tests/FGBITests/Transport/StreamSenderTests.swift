import FGBI
import FGBILab
import Foundation
import Testing

/// Every send path delivers every byte in order, including when a tiny socket buffer makes the kernel
/// accept only part of a message at a time (short sends), which the sender must resume.
@Suite("Send paths")
struct StreamSenderTests {
    static let uringWorks: Bool = (try? StreamSender(descriptor: -1, method: .uringSend)) != nil

    @Test(arguments: SendMethod.allCases)
    func shortSendsAreResumed(method: SendMethod) throws {
        if method != .send && !Self.uringWorks { return } // io_uring disabled here: nothing to check
        let pair = try TCPConnectionPair()
        pair.setSendBuffer(bytes: 4096)
        let sender = try StreamSender(descriptor: pair.senderDescriptor, method: method)
        let total = 2 << 20
        var random = SeededRandom(seed: 17)
        let payload = (0..<total).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        let receiver = pair.receiverDescriptor
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var received = [UInt8]()
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while received.count < total {
                let n = buffer.withUnsafeMutableBytes { recv(receiver, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                received += buffer[0..<n]
            }
            done.signal()
        }
        let report = try payload.withUnsafeBytes { try sender.send($0, messageSize: 256 << 10) }
        #expect(done.wait(timeout: .now() + 30) == .success)
        #expect(
            received == payload, "\(method): the receiver got \(received.count) bytes, not the \(total) sent in order")
        if method != .send {
            #expect(
                report.operations > 8,
                "\(method): expected short sends with a 4 KiB send buffer (\(report.operations) operations)")
        }
        if method == .uringZeroCopy {
            #expect(
                report.notifications == report.operations,
                "every zero-copy send is notified before the buffer is reused")
        }
    }
}
