import FGBI
import Logging
import Synchronization

/// A minimal HTTP/1.1 endpoint that serves one text document on GET, for Prometheus to scrape metrics
/// (`fgbi primary|backup --metrics-port`). One request per connection, answered from an accept thread; the
/// request head is limited to 8 KiB and 2 s, so a slow or hostile client cannot hold it up for long.
/// Anything but `GET <path>` gets 404 or 405.
public final class TextEndpoint: @unchecked Sendable {
    private let listener: Socket
    private let path: String
    private let contentType: String
    private let body: @Sendable () -> String
    private let stopping = Atomic<Bool>(false)
    private var thread: JoinableThread?
    private let logger: Logger

    /// Binds `listen` at once (so ``port`` is known); serving starts with ``start()``.
    ///
    /// - Throws: ``SystemError`` when the address cannot be bound.
    public init(
        listen: Endpoint, path: String = "/metrics", contentType: String = "text/plain; version=0.0.4; charset=utf-8",
        logger: Logger = Logger(label: "fgbi.metrics"), body: @escaping @Sendable () -> String
    ) throws {
        listener = try Socket.listen(on: listen)
        self.path = path
        self.contentType = contentType
        self.body = body
        self.logger = logger
    }

    /// The port it listens on.
    public var port: UInt16 { listener.localPort }

    public func start() throws {
        thread = try JoinableThread(name: "fgbi-metrics") { [self] in serve() }
    }

    public func stop() {
        stopping.store(true, ordering: .releasing)
        listener.shutdownBoth()
        thread?.join()
    }

    private func serve() {
        while !stopping.load(ordering: .acquiring) {
            guard let (socket, peer, _) = try? listener.accept() else {
                // EMFILE and the like: back off rather than spin.
                if !stopping.load(ordering: .acquiring) { MonotonicClock.sleep(nanoseconds: 50_000_000) }
                continue
            }
            socket.setReceiveTimeout(milliseconds: 2000)
            socket.setSendTimeout(milliseconds: 2000) // a client that never reads cannot hold the thread
            do {
                let (method, target) = try readRequestLine(socket)
                let status: String
                var text = ""
                if method != "GET" && method != "HEAD" {
                    status = "405 Method Not Allowed"
                } else if target.split(separator: "?").first.map(String.init) != path {
                    status = "404 Not Found"
                } else {
                    status = "200 OK"
                    if method == "GET" { text = body() }
                }
                let payload = Array(text.utf8)
                let head = Array(
                    """
                    HTTP/1.1 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \
                    \(payload.count)\r\nConnection: close\r\n\r\n
                    """
                    .utf8)
                // The frame writer's sendmsg loop (short sends resumed, no SIGPIPE) serves for head and body.
                let writer = SocketFrameWriter(socket: socket, counters: FrameSendCounters())
                try head.withUnsafeBytes { h in
                    try payload.withUnsafeBytes {
                        try writer.write(header: h, payload: $0, mac: UnsafeRawBufferPointer(start: nil, count: 0))
                    }
                }
            } catch {
                logger.debug("metrics request from \(peer) dropped: \(error)")
            }
            socket.shutdownBoth()
        }
    }

    /// Reads the request head (up to the blank line) and returns the method and target of its first line.
    private func readRequestLine(_ socket: Socket) throws -> (String, String) {
        var head: [UInt8] = []
        var byte: UInt8 = 0
        let deadline = MonotonicClock.nanoseconds() + 2_000_000_000
        while !(head.count >= 4 && head.suffix(4) == [13, 10, 13, 10]) {
            guard head.count < 8192 else { throw WireError.malformed("HTTP request head over 8 KiB") }
            try withUnsafeMutableBytes(of: &byte) {
                try socket.receiveExactly(1, into: $0.baseAddress!, timeoutMilliseconds: 2000, deadline: deadline)
            }
            head.append(byte)
        }
        let line = String(decoding: head.prefix { $0 != 13 }, as: UTF8.self).split(separator: " ")
        guard line.count >= 2 else { throw WireError.malformed("HTTP request line") }
        return (String(line[0]), String(line[1]))
    }
}
