#if canImport(Glibc)
    import Glibc
#endif

/// A connected or listening TCP socket with the few operations the replicator needs: all-or-error sends
/// that resume short writes, exact receives with a timeout, and no SIGPIPE. Frames go out through a
/// ``FrameWriter`` on its descriptor instead. Closed on deinit.
package final class Socket: @unchecked Sendable {
    package let descriptor: Int32

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    private static func resolve(_ endpoint: Endpoint, passive: Bool) throws(SystemError) -> [(
        family: Int32, address: [UInt8]
    )] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        if passive { hints.ai_flags = AI_PASSIVE }
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(endpoint.host, String(endpoint.port), &hints, &list)
        guard rc == 0, let list else {
            throw SystemError(
                operation: "getaddrinfo(\(endpoint.host))", errno: EINVAL,
                hint: String(cString: gai_strerror(rc)))
        }
        defer { freeaddrinfo(list) }
        var results: [(Int32, [UInt8])] = []
        var entry: UnsafeMutablePointer<addrinfo>? = list
        while let current = entry {
            let bytes = UnsafeRawBufferPointer(start: current.pointee.ai_addr, count: Int(current.pointee.ai_addrlen))
            results.append((current.pointee.ai_family, Array(bytes)))
            entry = current.pointee.ai_next
        }
        return results
    }

    private static func make(family: Int32) throws(SystemError) -> Socket {
        let fd = try Syscall.libc("socket") {
            Glibc.socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        let socket = Socket(descriptor: fd)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return socket
    }

    /// Connects to `endpoint`, trying each address it resolves to, each attempt bounded by
    /// `timeoutMilliseconds` (a host that drops the handshake would otherwise hold the caller for minutes).
    package static func connect(to endpoint: Endpoint, timeoutMilliseconds: Int = 10_000) throws(SystemError) -> Socket
    {
        var lastError = SystemError(operation: "connect(\(endpoint))", errno: EHOSTUNREACH)
        for (family, address) in try resolve(endpoint, passive: false) {
            let socket = try make(family: family)
            // On Linux a blocking connect gives up after SO_SNDTIMEO (EINPROGRESS); cleared again after.
            socket.setSendTimeout(milliseconds: timeoutMilliseconds)
            let rc = address.withUnsafeBytes { raw in
                Glibc.connect(
                    socket.descriptor, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
            }
            let code = errno
            socket.setSendTimeout(milliseconds: 0)
            if rc == 0 { return socket }
            let hint: String
            switch code {
            case ECONNREFUSED: hint = "is the backup running and listening there? (fgbi backup --listen \(endpoint))"
            case EINPROGRESS, ETIMEDOUT, EAGAIN:
                hint = "no answer within \(timeoutMilliseconds) ms: a firewall, or the host is down"
            default: hint = ""
            }
            lastError = SystemError(operation: "connect(\(endpoint))", errno: code, hint: hint)
        }
        throw lastError
    }

    /// Listens on `endpoint` (port 0 picks a free port; see ``localPort``).
    package static func listen(on endpoint: Endpoint) throws(SystemError) -> Socket {
        guard let (family, address) = try resolve(endpoint, passive: true).first else {
            throw SystemError(operation: "getaddrinfo(\(endpoint.host))", errno: EADDRNOTAVAIL)
        }
        let socket = try make(family: family)
        var one: Int32 = 1
        setsockopt(socket.descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        try Syscall.libc(
            "bind(\(endpoint))",
            hint: { code in
                code == EADDRINUSE
                    ? "another process listens on this port"
                    : code == EADDRNOTAVAIL ? "this machine has no such address" : ""
            }
        ) {
            address.withUnsafeBytes { raw in
                bind(socket.descriptor, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
            }
        }
        try Syscall.libc("listen(\(endpoint))") { Glibc.listen(socket.descriptor, 128) }
        return socket
    }

    /// The local port (useful after listening on port 0).
    package var localPort: UInt16 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return withUnsafeBytes(of: &storage) { raw in
            // sin_port and sin6_port sit at the same offset, in network order.
            UInt16(raw[2]) << 8 | UInt16(raw[3])
        }
    }

    /// Accepts a connection; returns it with the peer's address and whether that is loopback.
    package func accept() throws(SystemError) -> (socket: Socket, peer: String, peerIsLoopback: Bool) {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = try Syscall.libc("accept") {
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.accept(descriptor, $0, &length) }
            }
        }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        let socket = Socket(descriptor: fd)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let (peer, loopback) = Self.describe(&storage)
        return (socket, peer, loopback)
    }

    /// The address this socket is connected to, and whether it is loopback (127.0.0.0/8, ::1, or
    /// ::ffff:127.0.0.0/104): decided from the address itself, never from a host name.
    func peerAddress() throws(SystemError) -> (address: String, isLoopback: Bool) {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        try Syscall.libc("getpeername") {
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(descriptor, $0, &length) }
            }
        }
        return Self.describe(&storage)
    }

    /// An IPv4 or IPv6 socket address as text, and whether it is loopback.
    private static func describe(_ storage: inout sockaddr_storage) -> (String, Bool) {
        withUnsafeBytes(of: &storage) { raw -> (String, Bool) in
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            let family = Int32(raw.load(as: sa_family_t.self))
            if family == AF_INET {
                let address = raw.baseAddress! + 4
                inet_ntop(AF_INET, address, &text, socklen_t(text.count))
                return (Self.string(text), raw[4] == 127)
            }
            let address = raw.baseAddress! + 8
            inet_ntop(AF_INET6, address, &text, socklen_t(text.count))
            let bytes = Array(raw[8..<24])
            let isLoopback =
                bytes == [UInt8](repeating: 0, count: 15) + [1]
                || (bytes[0..<12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] && bytes[12] == 127)
            return (Self.string(text), isLoopback)
        }
    }

    /// A NUL-terminated C string buffer as a String.
    private static func string(_ characters: [CChar]) -> String {
        String(decoding: characters.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Sets how long a receive may wait (0: forever).
    package func setReceiveTimeout(milliseconds: Int) {
        var time = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sets how long a send may block (0: forever); a send that times out fails with EAGAIN.
    package func setSendTimeout(milliseconds: Int) {
        var time = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sets the kernel send buffer size (tests use a small one to force short sends).
    package func setSendBuffer(bytes: Int) {
        var size = Int32(clamping: bytes)
        setsockopt(descriptor, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Receives exactly `count` bytes into `buffer`; each wait is bounded by the receive timeout, and the
    /// whole by `deadline` (CLOCK_MONOTONIC nanoseconds) when given.
    package func receiveExactly(
        _ count: Int, into buffer: UnsafeMutableRawPointer, timeoutMilliseconds: Int, deadline: UInt64? = nil
    ) throws(WireError) {
        var received = 0
        while received < count {
            if let deadline {
                // Wait no longer than the deadline allows, however the peer paces its bytes.
                let now = MonotonicClock.nanoseconds()
                guard now < deadline else { throw .timedOut(milliseconds: timeoutMilliseconds) }
                var ready = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                let waited = poll(&ready, 1, Int32(clamping: (deadline - now + 999_999) / 1_000_000))
                if waited == 0 { throw .timedOut(milliseconds: timeoutMilliseconds) }
                if waited < 0 && errno == EINTR { continue }
            }
            let n = recv(descriptor, buffer + received, count - received, 0)
            if n > 0 {
                received += n
            } else if n == 0 {
                throw .closed
            } else if errno == EINTR {
                continue
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                throw .timedOut(milliseconds: timeoutMilliseconds)
            } else {
                throw .refused("receive failed: \(SystemError(operation: "recv", errno: errno))")
            }
        }
    }

    /// Stops both directions, waking a thread blocked in a receive.
    package func shutdownBoth() {
        Glibc.shutdown(descriptor, Int32(SHUT_RDWR))
    }

    /// Sends FIN after what was written (the peer reads to the end and sees EOF); receiving goes on.
    package func shutdownWrite() {
        Glibc.shutdown(descriptor, Int32(SHUT_WR))
    }

    /// Drops the connection at once: connect(2) to AF_UNSPEC makes the kernel discard data still queued
    /// (resetting the peer) and frees its buffers, which a zero-copy send's notification waits for. The
    /// descriptor stays open and unconnected.
    func disconnect() {
        var address = sockaddr()
        address.sa_family = sa_family_t(AF_UNSPEC)
        _ = Glibc.connect(descriptor, &address, socklen_t(MemoryLayout<sockaddr>.size))
    }
}
