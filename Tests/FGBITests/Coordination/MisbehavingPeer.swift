import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP listener on loopback that plays a broken or unreachable etcd for the client's tests: one that answers
/// every request with fixed bytes, one that accepts and never answers, or one whose accept queue is full, so
/// the kernel drops the SYNs of new connections as a black-holed host would.
final class MisbehavingPeer: @unchecked Sendable {
    enum Behaviour {
        /// Reads each request (headers and Content-Length body), writes these bytes and closes.
        case reply([UInt8])
        /// Accepts connections and holds them, saying nothing.
        case silent
        /// Never accepts; the queue (backlog 0) is filled at once, so later SYNs go unanswered.
        case blackHole
    }

    let port: UInt16
    var url: String { "http://127.0.0.1:\(port)" }

    private let listener: Int32
    private var fillers: [Int32] = []
    private let finished = DispatchSemaphore(value: 0)
    private let serving: Bool

    init(_ behaviour: Behaviour) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.listener = listener
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard listener >= 0, bound == 0, listen(listener, behaviour.isBlackHole ? 0 : 16) == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
        switch behaviour {
        case .blackHole:
            serving = false
            // Backlog 0 holds one finished handshake; a few connects make sure the queue is full.
            for _ in 0..<3 {
                let fd = socket(
                    AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                    0)
                var target = Self.loopback(port: port)
                _ = withUnsafePointer(to: &target) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                fillers.append(fd)
            }
            usleep(50_000)
        case .silent, .reply:
            serving = true
            let finished = self.finished
            Thread.detachNewThread {
                defer { finished.signal() }
                var held: [Int32] = []
                defer { for fd in held { close(fd) } }
                while true {
                    let connection = accept(listener, nil, nil)
                    guard connection >= 0 else {
                        if errno == EINTR { continue }
                        return
                    }
                    guard case .reply(let bytes) = behaviour else {
                        held.append(connection)
                        continue
                    }
                    Self.readRequest(connection)
                    bytes.withUnsafeBytes { _ = send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    shutdown(connection, Int32(SHUT_WR))
                    close(connection)
                }
            }
        }
    }

    private var stopped = false

    /// Stops listening, closes every connection, and waits for the serving thread.
    func stop() {
        guard !stopped else { return }
        stopped = true
        shutdown(listener, Int32(SHUT_RDWR))
        if serving { finished.wait() }
        close(listener)
        for fd in fillers { close(fd) }
        fillers = []
    }

    /// Reads one HTTP request: headers up to the blank line, then as many bytes as Content-Length says.
    private static func readRequest(_ connection: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return }
            received += buffer[..<count]
            let blankLine: [UInt8] = Array("\r\n\r\n".utf8)
            guard let end = (0...max(received.count - 4, 0)).first(where: { received[$0...].starts(with: blankLine) })
            else { continue }
            let headers = String(decoding: received[..<end], as: UTF8.self).lowercased()
            let length =
                headers.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
            if received.count - (end + 4) >= length { return }
        }
    }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return address
    }

    deinit { stop() }
}

extension MisbehavingPeer.Behaviour {
    var isBlackHole: Bool {
        if case .blackHole = self { return true }
        return false
    }
}
