import FGBI
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP relay on loopback to one target, the client-to-target direction limited to a rate (a token bucket
/// read in whole chunks of about a millisecond's bytes): a backup behind a slow link, for benchmarks of several
/// backups. Each accepted connection gets its own connection to the target and two pumping threads; their CPU time is
/// counted apart (``cpuNanoseconds``) so a benchmark can leave it out of the primary's.
public final class ThrottledRelay: @unchecked Sendable {
    /// Where clients connect.
    public let port: UInt16
    private let listener: Socket
    private let target: Endpoint
    private let bytesPerSecond: Int
    private let stopping = Atomic<Bool>(false)
    /// While set (``cut()``), connections are dropped and new ones closed at once: a link down.
    private let cutOff = Atomic<Bool>(false)
    private let cpu = Atomic<UInt64>(0)
    private let threads = Mutex<[JoinableThread]>([])
    private let sockets = Mutex<[Socket]>([])

    /// Listens on an ephemeral loopback port and relays to `target` at most `bytesPerSecond` one way.
    public init(to target: Endpoint, bytesPerSecond: Int) throws {
        listener = try Socket.listen(on: Endpoint(host: "127.0.0.1", port: 0))
        port = listener.localPort
        self.target = target
        self.bytesPerSecond = bytesPerSecond
        let accepting = try JoinableThread(name: "fgbi-relay") { [self] in acceptLoop() }
        threads.withLock { $0.append(accepting) }
    }

    /// CPU time the relay's pumping threads have used.
    public var cpuNanoseconds: UInt64 { cpu.load(ordering: .relaxed) }

    /// Closes every connection and joins the threads.
    public func stop() {
        stopping.store(true, ordering: .releasing)
        listener.shutdownBoth()
        for socket in sockets.withLock({ $0 }) { socket.shutdownBoth() }
        while let thread = threads.withLock({ $0.popLast() }) { thread.join() }
    }

    deinit { stop() }

    /// Takes the link down: every connection is closed, and new ones are closed as they come, until ``heal()``.
    public func cut() {
        cutOff.store(true, ordering: .releasing)
        let open = sockets.withLock { sockets -> [Socket] in
            defer { sockets.removeAll() }
            return sockets
        }
        for socket in open { socket.shutdownBoth() }
    }

    /// Brings the link back up for new connections.
    public func heal() { cutOff.store(false, ordering: .releasing) }

    private func acceptLoop() {
        while !stopping.load(ordering: .acquiring) {
            guard let (client, _, _) = try? listener.accept() else { return }
            if cutOff.load(ordering: .acquiring) {
                client.shutdownBoth()
                continue
            }
            guard let server = try? Socket.connect(to: target, timeoutMilliseconds: 3000) else {
                client.shutdownBoth()
                continue
            }
            sockets.withLock { $0 += [client, server] }
            let up = try? JoinableThread(name: "fgbi-relay-up") { [self] in
                pump(from: client, to: server, limited: true)
            }
            let down = try? JoinableThread(name: "fgbi-relay-dn") { [self] in
                pump(from: server, to: client, limited: false)
            }
            threads.withLock { $0 += [up, down].compactMap { $0 } }
        }
    }

    private func pump(from source: Socket, to destination: Socket, limited: Bool) {
        var counted = MonotonicClock.threadCPUNanoseconds()
        /// Adds this thread's CPU since the last count (as it goes, so a benchmark reading it mid-run sees it).
        func count() {
            let now = MonotonicClock.threadCPUNanoseconds()
            cpu.add(now - counted, ordering: .relaxed)
            counted = now
        }
        var endOfStream = false
        defer {
            count()
            // The end of one direction is passed on as such (the other may still carry the peer's last
            // words); a failure ends both.
            if endOfStream {
                destination.shutdownWrite()
            } else {
                source.shutdownBoth()
                destination.shutdownBoth()
            }
        }
        let chunk = limited ? max(min(bytesPerSecond / 1000, 64 << 10), 1024) : 64 << 10
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var allowance = 0.0
        var last = MonotonicClock.nanoseconds()
        while !stopping.load(ordering: .acquiring) {
            count()
            if limited {
                let now = MonotonicClock.nanoseconds()
                allowance = min(allowance + Double(now - last) * Double(bytesPerSecond) / 1e9, 2 * Double(chunk))
                last = now
                // Whole chunks only: reading whatever the allowance had grown to since the last read made
                // reads of a few bytes, thousands a millisecond, and the relay took most of a core. The
                // allowance keeps up to two chunks, so a sleep's overshoot is made up.
                guard allowance >= Double(chunk) else {
                    let missing = (Double(chunk) - allowance) / Double(bytesPerSecond) * 1e9
                    MonotonicClock.sleep(nanoseconds: UInt64(max(missing, 50_000)))
                    continue
                }
            }
            let got = read(source.descriptor, buffer, chunk)
            if got < 0 && errno == EINTR { continue }
            endOfStream = got == 0
            guard got > 0 else { return }
            if limited { allowance -= Double(got) }
            var offset = 0
            while offset < got {
                let wrote = send(destination.descriptor, buffer + offset, got - offset, Int32(MSG_NOSIGNAL))
                if wrote < 0 && errno == EINTR { continue }
                guard wrote > 0 else { return }
                offset += wrote
            }
        }
    }
}
