import COpenSSL
import FGBI
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP connection for HTTP/1.1 whose every step ends by a deadline (a `MonotonicClock` reading in
/// nanoseconds): name resolution, connect, send and each receive. The socket is non-blocking and waits in
/// poll(2), so a peer that drops packets or accepts and never answers costs the caller the time left, no more.
/// Over TLS when given a ``TLSClientContext`` (an `https://` endpoint): the handshake and every read and write
/// then go through OpenSSL on the same non-blocking socket, under the same deadlines.
/// Used by one thread at a time: taken from ``EtcdHTTPTransport``'s pool for one request, given back after.
final class HTTPConnection: @unchecked Sendable {
    /// Why a step failed.
    enum Failure: Error {
        /// No connection, or it broke (the text says how: "connect: ECONNREFUSED (Connection refused)").
        case unreachable(String)
        /// The deadline passed.
        case timedOut
        /// The peer closed the connection before sending a single byte of an answer: on a connection kept
        /// from an earlier request, the peer may simply have closed it while it was idle.
        case closedBeforeAnswer
        /// The peer's answer is not HTTP/1.x.
        case notHTTP(String)
    }

    private let descriptor: Int32
    /// The TLS session (OpenSSL's `SSL`), nil on plain HTTP.
    private var tls: OpaquePointer?
    /// Bytes received and not yet consumed, from `start`.
    private var received: [UInt8] = []
    private var start = 0
    /// Whether any byte was ever received (an idle close is told from a broken answer by it).
    private(set) var answered = false

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit {
        if let tls { SSL_free(tls) }
        close(descriptor)
    }

    // MARK: Connecting

    /// Connects to `host` (a name, an IPv4 address or a bracketed IPv6 address) at `port`, trying each address
    /// the name resolves to until one answers or the deadline passes.
    static func open(host: String, port: Int, tls: TLSClientContext? = nil, deadline: UInt64) throws(Failure)
        -> HTTPConnection
    {
        let connection = try openTCP(host: host, port: port, deadline: deadline)
        if let tls { try connection.shakeHands(tls, host: host, deadline: deadline) }
        return connection
    }

    /// The TLS handshake on the connected socket; a refused certificate names the reason.
    private func shakeHands(_ context: TLSClientContext, host: String, deadline: UInt64) throws(Failure) {
        do throws(TLSFailure) {
            tls = try context.session(descriptor: descriptor, host: host)
        } catch {
            throw Failure.unreachable(error.description)
        }
        guard let tls else { return }
        while true {
            let rc = SSL_connect(tls)
            if rc == 1 { return }
            switch SSL_get_error(tls, rc) {
            case SSL_ERROR_WANT_READ: try wait(for: Int16(POLLIN), deadline: deadline)
            case SSL_ERROR_WANT_WRITE: try wait(for: Int16(POLLOUT), deadline: deadline)
            default: throw Failure.unreachable("TLS: \(TLSClientContext.handshakeFailure(tls))")
            }
        }
    }

    private static func openTCP(host: String, port: Int, deadline: UInt64) throws(Failure) -> HTTPConnection {
        let name = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var lastFailure = Failure.unreachable("\(name) resolved to no address")
        for address in try resolve(name, port: port, deadline: deadline) {
            let fd = socket(
                address.family,
                Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw Failure.unreachable("socket: \(errorText(errno))") }
            let connection = HTTPConnection(descriptor: fd)
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let rc = address.bytes.withUnsafeBytes { raw in
                connect(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
            }
            if rc == 0 { return connection }
            guard errno == EINPROGRESS else {
                lastFailure = .unreachable("connect: \(errorText(errno))")
                continue
            }
            try connection.wait(for: Int16(POLLOUT), deadline: deadline)
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error == 0 { return connection }
            lastFailure = .unreachable("connect: \(errorText(error))")
        }
        throw lastFailure
    }

    private struct Address {
        var family: Int32
        var bytes: [UInt8]
    }

    /// The addresses of `name`: at once for a numeric address; otherwise getaddrinfo, which has no timeout
    /// of its own (a resolver that does not answer holds it for many seconds), on a thread of its own that
    /// is left to finish alone when the deadline passes first.
    private static func resolve(_ name: String, port: Int, deadline: UInt64) throws(Failure) -> [Address] {
        if let numeric = lookUp(name, port: port, numericOnly: true) { return numeric.addresses }
        final class Lookup: @unchecked Sendable {
            var result: (addresses: [Address], error: String)?
        }
        let lookup = Lookup()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            lookup.result = lookUp(name, port: port, numericOnly: false)
            done.signal()
        }
        let now = MonotonicClock.nanoseconds()
        let wait = DispatchTime.now() + .nanoseconds(Int(deadline > now ? deadline - now : 0))
        guard done.wait(timeout: wait) == .success else { throw Failure.timedOut }
        // The semaphore orders the thread's write before this read.
        guard let result = lookup.result, !result.addresses.isEmpty else {
            throw Failure.unreachable("cannot resolve \(name): \(lookup.result?.error ?? "no address")")
        }
        return result.addresses
    }

    private static func lookUp(_ name: String, port: Int, numericOnly: Bool) -> (addresses: [Address], error: String)? {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = numericOnly ? AI_NUMERICHOST | AI_NUMERICSERV : AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(name, String(port), &hints, &list)
        guard rc == 0, let list else {
            return numericOnly ? nil : ([], String(cString: gai_strerror(rc)))
        }
        defer { freeaddrinfo(list) }
        var addresses: [Address] = []
        var entry: UnsafeMutablePointer<addrinfo>? = list
        while let current = entry {
            let bytes = UnsafeRawBufferPointer(start: current.pointee.ai_addr, count: Int(current.pointee.ai_addrlen))
            addresses.append(Address(family: current.pointee.ai_family, bytes: Array(bytes)))
            entry = current.pointee.ai_next
        }
        return (addresses, "")
    }

    // MARK: Sending and receiving

    /// Sends all of `bytes`.
    func send(_ bytes: [UInt8], deadline: UInt64) throws(Failure) {
        if let tls {
            try sendTLS(tls, bytes, deadline: deadline)
            return
        }
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { raw in
                Glibc.send(descriptor, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if sent > 0 {
                offset += sent
            } else if errno == EAGAIN || errno == EINTR {
                try wait(for: Int16(POLLOUT), deadline: deadline)
            } else {
                throw errno == EPIPE || errno == ECONNRESET
                    ? Failure.closedBeforeAnswer : Failure.unreachable("send: \(Self.errorText(errno))")
            }
        }
    }

    private func sendTLS(_ tls: OpaquePointer, _ bytes: [UInt8], deadline: UInt64) throws(Failure) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { raw in
                SSL_write(tls, raw.baseAddress! + offset, Int32(raw.count - offset))
            }
            if sent > 0 {
                offset += Int(sent)
                continue
            }
            switch SSL_get_error(tls, sent) {
            case SSL_ERROR_WANT_READ: try wait(for: Int16(POLLIN), deadline: deadline)
            case SSL_ERROR_WANT_WRITE: try wait(for: Int16(POLLOUT), deadline: deadline)
            case SSL_ERROR_ZERO_RETURN: throw Failure.closedBeforeAnswer
            case SSL_ERROR_SYSCALL where errno == EPIPE || errno == ECONNRESET: throw Failure.closedBeforeAnswer
            default: throw Failure.unreachable("TLS send: \(TLSClientContext.lastError("SSL_write"))")
            }
        }
    }

    /// Receives into `chunk` over TLS: the count, 0 at the end of the stream.
    private func receiveTLS(_ tls: OpaquePointer, into chunk: inout [UInt8], deadline: UInt64) throws(Failure) -> Int {
        while true {
            let count = chunk.withUnsafeMutableBytes { SSL_read(tls, $0.baseAddress, Int32($0.count)) }
            if count > 0 { return Int(count) }
            switch SSL_get_error(tls, count) {
            case SSL_ERROR_WANT_READ: try wait(for: Int16(POLLIN), deadline: deadline)
            case SSL_ERROR_WANT_WRITE: try wait(for: Int16(POLLOUT), deadline: deadline)
            case SSL_ERROR_ZERO_RETURN: return 0
            case SSL_ERROR_SYSCALL where errno == 0 || errno == ECONNRESET:
                // Closed without TLS's close_notify: an end of stream as far as HTTP framing goes.
                if errno == ECONNRESET && !answered { throw Failure.closedBeforeAnswer }
                return 0
            default: throw Failure.unreachable("TLS receive: \(TLSClientContext.lastError("SSL_read"))")
            }
        }
    }

    /// Whether the connection, idle in the pool, was closed by the peer (or has stray bytes waiting, which
    /// makes it unusable too).
    var isStale: Bool {
        if let tls, SSL_pending(tls) > 0 { return true }
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) != 0
    }

    /// Receives more bytes into the buffer; false at end of stream.
    private func fill(deadline: UInt64) throws(Failure) -> Bool {
        if start > 0 && start == received.count {
            received.removeAll(keepingCapacity: true)
            start = 0
        }
        var chunk = [UInt8](repeating: 0, count: 16_384)
        if let tls {
            ERR_clear_error()
            let count = try receiveTLS(tls, into: &chunk, deadline: deadline)
            guard count > 0 else { return false }
            received += chunk[..<count]
            answered = true
            return true
        }
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                received += chunk[..<count]
                answered = true
                return true
            }
            if count == 0 { return false }
            if errno == EAGAIN || errno == EINTR {
                try wait(for: Int16(POLLIN), deadline: deadline)
                continue
            }
            if errno == ECONNRESET && !answered { throw Failure.closedBeforeAnswer }
            throw Failure.unreachable("receive: \(Self.errorText(errno))")
        }
    }

    /// Waits until the socket is ready for `events`, or throws ``Failure/timedOut`` at the deadline.
    private func wait(for events: Int16, deadline: UInt64) throws(Failure) {
        while true {
            let now = MonotonicClock.nanoseconds()
            guard now < deadline else { throw Failure.timedOut }
            var entry = pollfd(fd: descriptor, events: events, revents: 0)
            let milliseconds = Int32(min((deadline - now + 999_999) / 1_000_000, 60_000))
            let rc = poll(&entry, 1, milliseconds)
            if rc > 0 { return }
            if rc < 0 && errno != EINTR { throw Failure.unreachable("poll: \(Self.errorText(errno))") }
        }
    }

    /// A line ending in CRLF (or LF), without it; at most `limit` bytes.
    func readLine(limit: Int, deadline: UInt64) throws(Failure) -> [UInt8] {
        var scanned = 0 // bytes after `start` known to hold no newline
        while true {
            if let newline = received[(start + scanned)...].firstIndex(of: UInt8(ascii: "\n")) {
                var line = Array(received[start..<newline])
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                start = newline + 1
                return line
            }
            scanned = received.count - start
            guard received.count - start <= limit else { throw Failure.notHTTP("a line over \(limit) bytes") }
            guard try fill(deadline: deadline) else { throw endOfStream() }
        }
    }

    /// Exactly `count` bytes.
    func read(_ count: Int, deadline: UInt64) throws(Failure) -> [UInt8] {
        while received.count - start < count {
            guard try fill(deadline: deadline) else { throw endOfStream() }
        }
        defer { start += count }
        return Array(received[start..<start + count])
    }

    /// Everything until the peer closes, at most `limit` bytes.
    func readToEnd(limit: Int, deadline: UInt64) throws(Failure) -> [UInt8] {
        while try fill(deadline: deadline) {
            guard received.count - start <= limit else { throw Failure.notHTTP("a body over \(limit) bytes") }
        }
        defer { start = received.count }
        return Array(received[start...])
    }

    /// The bytes received so far and not consumed, for a look at what the peer sent.
    var pending: ArraySlice<UInt8> { received[start...] }

    private func endOfStream() -> Failure {
        answered ? .unreachable("the connection closed in the middle of the answer") : .closedBeforeAnswer
    }

    /// "ECONNREFUSED (Connection refused)".
    static func errorText(_ code: Int32) -> String {
        SystemError(operation: "", errno: code).errnoText
    }
}
