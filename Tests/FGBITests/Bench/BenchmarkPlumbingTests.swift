import Foundation
import Testing

@testable import FGBI
@testable import FGBIBench

#if canImport(Glibc)
    import Glibc
#endif

/// The parts of the benchmarks that shape their figures without being measured themselves: the slow link of
/// `fgbi bench backups` and what `fgbi bench engine` divides its throughput by.
@Suite("Benchmark plumbing")
struct BenchmarkPlumbingTests {
    /// Sends every byte of `bytes` on `descriptor`; false if a send fails first.
    private static func sendAll(_ bytes: [UInt8], on descriptor: Int32) -> Bool {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let wrote = Glibc.send(descriptor, buffer.baseAddress! + offset, buffer.count - offset, 0)
                guard wrote > 0 else { return false }
                offset += wrote
            }
            return true
        }
    }

    /// The relay's limited direction delivers every byte in order, never faster than its rate allows (a
    /// lower bound: a slow machine only makes it later), and the other direction is not limited.
    @Test func theSlowLinkPassesEveryByteInOrderAtItsRate() throws {
        let target = try Socket.listen(on: Endpoint(host: "127.0.0.1", port: 0))
        let rate = 2 << 20
        let relay = try ThrottledRelay(to: Endpoint(host: "127.0.0.1", port: target.localPort), bytesPerSecond: rate)
        defer { relay.stop() }
        let count = 512 << 10
        var random = SeededRandom(seed: 11)
        let sent = (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        // Timed from before the connection: the relay's allowance grows from when it accepts it.
        let started = MonotonicClock.nanoseconds()
        let client = try Socket.connect(to: Endpoint(host: "127.0.0.1", port: relay.port))
        let (server, _, _) = try target.accept()
        let writer = Thread { _ = Self.sendAll(sent, on: client.descriptor) }
        writer.start()
        var received = [UInt8](repeating: 0, count: count)
        try received.withUnsafeMutableBytes {
            try server.receiveExactly(count, into: $0.baseAddress!, timeoutMilliseconds: 10_000)
        }
        let seconds = Double(MonotonicClock.nanoseconds() - started) / 1e9
        #expect(received == sent)
        // Two chunks (2 ms of the rate) may pass at once; everything else waits for the rate.
        let fastest = Double(count - 2 * (rate / 1000)) / Double(rate)
        #expect(seconds >= fastest, "\(count) bytes in \(seconds) s through a link of \(rate) bytes/s")
        // The way back is not limited: an answer of the same size returns at loopback speed.
        #expect(Self.sendAll(sent, on: server.descriptor))
        var back = [UInt8](repeating: 0, count: count)
        try back.withUnsafeMutableBytes {
            try client.receiveExactly(count, into: $0.baseAddress!, timeoutMilliseconds: 10_000)
        }
        #expect(back == sent)
    }

    /// `encode_gbps` is per thread the epochs ran on: a run allowed two threads whose epochs all stayed on one
    /// is divided by one.
    @Test func encodeThroughputIsDividedByTheThreadsTheEpochsRanOn() {
        #expect(EngineBenchmark.ModeRun.threadsPerEpoch(epochs: 40, split: 0, threads: 2) == 1)
        #expect(EngineBenchmark.ModeRun.threadsPerEpoch(epochs: 40, split: 40, threads: 2) == 2)
        #expect(EngineBenchmark.ModeRun.threadsPerEpoch(epochs: 40, split: 10, threads: 4) == 1.75)
        #expect(EngineBenchmark.ModeRun.threadsPerEpoch(epochs: 0, split: 0, threads: 4) == 1)
    }
}
