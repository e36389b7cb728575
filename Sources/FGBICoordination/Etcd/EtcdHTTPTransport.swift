import FGBI
import Foundation

/// Synchronous HTTP/1.1 POSTs with a deadline, on POSIX sockets (``HTTPConnection``), over TLS for `https://`, with
/// idle connections
/// kept per endpoint for the next request.
///
/// Why not Foundation's URLSession, which ships with the toolchain: it was tried first and works for
/// etcd's successful answers, and its timeouts hold. But every error etcd's gateway returns ("requested
/// lease not found", "key is not provided") is a chunked body followed by an HTTP trailer
/// (`Grpc-Trailer-Content-Type`), and swift-corelibs-foundation's URLSession (Swift 6.3.1 here) takes the
/// trailer line for the start of a new response and then stops the process with
/// `Fatal error: Transfer completed, but there's no response` (NativeProtocol.swift:240; the same fatalError
/// as swift-corelibs-foundation issue 5285). A coordination client that crashes its process on
/// "lease not found" is not usable, and the assertion cannot be caught, so this small client reads the
/// few forms of HTTP/1.1 framing etcd (and a proxy) can send instead.
final class EtcdHTTPTransport: Sendable {
    /// A reply: any HTTP status, and the body.
    struct Reply: Sendable {
        var status: Int
        var body: Data
    }

    /// Why no reply came.
    enum Failure: Error, Sendable {
        /// No connection could be made, or it broke; what happened, in words.
        case unreachable(String)
        /// Nothing complete within the timeout.
        case timedOut
        /// The peer answered, but not in HTTP.
        case notHTTP(String)
    }

    /// Idle connections per endpoint URL, most recently used last.
    private let idle = IdleConnections()
    /// For `https://` endpoints.
    private let tls: TLSClientContext?

    init(tls: TLSClientContext?) {
        self.tls = tls
    }

    /// Most idle connections kept per endpoint: enough for a few threads sharing a client.
    private static let idleLimit = 4

    /// POSTs `body` (JSON) to `path` on `endpoint` and waits for the whole reply, at most `timeout`.
    ///
    /// A connection kept from an earlier request may have been closed by etcd meanwhile (a restart, an idle
    /// timeout); when such a connection closes before a single byte of the answer, the request is sent once
    /// more on a new connection, within the same deadline.
    /// `authorization`: etcd's auth token, sent as the `Authorization` header.
    func post(
        _ endpoint: EtcdEndpoint, path: String, body: Data, authorization: String? = nil,
        timeout: Duration
    ) -> Result<Reply, Failure> {
        let deadline = MonotonicClock.nanoseconds() + timeout.wholeNanoseconds
        let token = authorization.map { "Authorization: \($0)\r\n" } ?? ""
        var request = Array(
            """
            POST /\(path) HTTP/1.1\r\nHost: \(endpoint.host):\(endpoint.port)\r\n\(token)Content-Type: \
            application/json\r\nContent-Length: \(body.count)\r\n\r\n
            """
            .utf8)
        request += body
        while true {
            let reused = idle.take(endpoint.url)
            let connection: HTTPConnection
            if let reused {
                connection = reused
            } else {
                do throws(HTTPConnection.Failure) {
                    connection = try HTTPConnection.open(
                        host: endpoint.host, port: endpoint.port,
                        tls: endpoint.isSecure ? tls : nil, deadline: deadline)
                } catch {
                    return .failure(Self.failure(error))
                }
            }
            do throws(HTTPConnection.Failure) {
                try connection.send(request, deadline: deadline)
                let response = try HTTPResponse.read(from: connection, deadline: deadline)
                if response.keepAlive { idle.give(connection, to: endpoint.url, limit: Self.idleLimit) }
                return .success(Reply(status: response.status, body: Data(response.body)))
            } catch .closedBeforeAnswer where reused != nil {
                continue
            } catch {
                return .failure(Self.failure(error))
            }
        }
    }

    private static func failure(_ failure: HTTPConnection.Failure) -> Failure {
        switch failure {
        case .unreachable(let detail): return .unreachable(detail)
        case .timedOut: return .timedOut
        case .closedBeforeAnswer: return .unreachable("the connection closed without an answer")
        case .notHTTP(let detail): return .notHTTP(detail)
        }
    }

    /// The pool: connections between requests, checked for a close by the peer when taken.
    private final class IdleConnections: @unchecked Sendable {
        private let lock = NSLock()
        private var connections: [String: [HTTPConnection]] = [:]

        /// An idle connection to `url` the peer has not closed, if there is one.
        func take(_ url: String) -> HTTPConnection? {
            while true {
                let connection: HTTPConnection? = lock.withLock { connections[url]?.popLast() }
                guard let connection else { return nil }
                if !connection.isStale { return connection }
            }
        }

        func give(_ connection: HTTPConnection, to url: String, limit: Int) {
            lock.withLock {
                if connections[url, default: []].count < limit { connections[url, default: []].append(connection) }
            }
        }
    }
}
