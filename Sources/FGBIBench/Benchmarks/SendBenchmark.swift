import FGBI
import FGBILab
import Foundation

/// `fgbi bench send`: throughput and sender CPU of each send path for epoch payloads of several sizes, side
/// by side in one run, over loopback TCP and over a veth link into a network namespace; for SEND_ZC, the share of
/// notifications in which the kernel
/// reports it copied the data after all.
public struct SendBenchmark: Sendable {
    public struct Configuration: Sendable {
        public var messageSizes = [4 << 10, 64 << 10, 1 << 20, 16 << 20]
        public var methods = SendMethod.allCases
        /// Bytes sent per case (at least 16 messages).
        public var bytesPerCase = 512 << 20
        /// Where the bytes travel: `loopback`, and `veth` (to a network namespace of its own, made for the run).
        public var paths = ["loopback", "veth"]
        public init() {}
    }

    public struct Case: Codable, Sendable {
        public var path: String
        public var method: String
        public var messageBytes: Int
        public var bytes: Int
        public var gbps: Double
        /// Sender thread CPU seconds per GB sent (receiver excluded; io-wq work the kernel does elsewhere is
        /// not counted).
        public var senderCpuSecondsPerGb: Double
        public var operations: Int
        public var zcNotifications: Int
        public var zcCopiedShare: Double?
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    public func run(progress: (String) -> Void) throws -> [Case] {
        let largest = configuration.messageSizes.max() ?? 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(largest * 4, 64 << 20), alignment: 4096)
        defer { buffer.deallocate() }
        var random = SeededRandom(seed: 3)
        for offset in stride(from: 0, to: buffer.count, by: 8) {
            buffer.storeBytes(of: random.next(), toByteOffset: offset, as: UInt64.self)
        }
        var cases: [Case] = []
        for path in configuration.paths {
            let link: VethLink?
            switch path {
            case "loopback":
                link = nil
            case "veth":
                guard VethLink.isAvailable else {
                    progress("send: veth skipped: making network namespaces needs root and iproute2")
                    continue
                }
                link = try VethLink()
            default:
                throw BenchmarkError("unknown path '\(path)'; choose loopback or veth")
            }
            for size in configuration.messageSizes {
                for method in configuration.methods {
                    progress("send: \(path), \(method.rawValue), \(size) byte messages")
                    let pair =
                        try link.map { try TCPConnectionPair(host: $0.peerAddress, receiverIn: $0.namespace) }
                        ?? TCPConnectionPair()
                    cases.append(
                        try measure(
                            path: path, pair: pair, method: method, messageSize: size,
                            buffer: UnsafeRawBufferPointer(buffer)))
                }
            }
        }
        return cases
    }

    private func measure(
        path: String, pair: TCPConnectionPair, method: SendMethod, messageSize: Int,
        buffer: UnsafeRawBufferPointer
    ) throws -> Case {
        let sender = try StreamSender(descriptor: pair.senderDescriptor, method: method)
        let total = max(configuration.bytesPerCase, messageSize * 16)
        // Send whole messages from a buffer region that holds a multiple of the message size.
        let window = max(buffer.count / messageSize, 1) * messageSize
        let receiver = pair.receiverDescriptor
        let drained = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let sink = UnsafeMutableRawPointer.allocate(byteCount: 4 << 20, alignment: 64)
            var received = 0
            while received < total {
                let n = recv(receiver, sink, 4 << 20, 0)
                if n <= 0 { break }
                received += n
            }
            sink.deallocate()
            drained.signal()
        }
        var report = StreamSender.Report()
        let cpuStart = MonotonicClock.threadCPUSeconds()
        let start = MonotonicClock.nanoseconds()
        var sent = 0
        while sent < total {
            let length = min(window, total - sent)
            let part = try sender.send(UnsafeRawBufferPointer(rebasing: buffer[0..<length]), messageSize: messageSize)
            report.operations += part.operations
            report.notifications += part.notifications
            report.copiedNotifications += part.copiedNotifications
            sent += length
        }
        drained.wait()
        let seconds = Double(MonotonicClock.nanoseconds() - start) / 1e9
        let cpu = MonotonicClock.threadCPUSeconds() - cpuStart
        return Case(
            path: path, method: method.rawValue,
            messageBytes: messageSize, bytes: total, gbps: Double(total) / seconds / 1e9,
            senderCpuSecondsPerGb: cpu / (Double(total) / 1e9), operations: report.operations,
            zcNotifications: report.notifications,
            zcCopiedShare: report.notifications > 0
                ? Double(report.copiedNotifications) / Double(report.notifications) : nil)
    }
}
