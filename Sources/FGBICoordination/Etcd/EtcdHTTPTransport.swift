import FGBI
import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Synchronous HTTP POSTs with a deadline, for a thread-based caller: Foundation's URLSession (libcurl
/// underneath on Linux) run one request at a time per calling thread, the caller blocked on a semaphore.
///
/// URLSession was checked on this toolchain before it was chosen: it keeps connections alive between
/// requests, gives up on a connect that is never answered and on a peer that accepts and never replies at
/// the request's timeout, and turns a non-HTTP answer into an error rather than a crash. The semaphore waits
/// a little longer than that timeout and then cancels the task, so a transport that failed to time out would
/// still not hang the caller.
final class EtcdHTTPTransport: Sendable {
    /// A reply: any HTTP status, and the body.
    struct Reply: Sendable {
        var status: Int
        var body: Data
    }

    /// Why no reply came.
    enum Failure: Error, Sendable {
        /// No connection could be made, or it broke; the transport's own words.
        case unreachable(String)
        /// Nothing complete within the timeout.
        case timedOut
        /// The peer answered, but not in HTTP.
        case notHTTP(String)
    }

    private let session: URLSession

    /// How much longer than the request's own timeout the caller waits before cancelling the request.
    private static let grace: Duration = .milliseconds(250)

    init() {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        session = URLSession(configuration: configuration)
    }

    deinit {
        session.invalidateAndCancel()
    }

    /// POSTs `body` (JSON) to `url` and waits for the whole reply, at most `timeout` (plus a short grace).
    func post(_ url: URL, body: Data, timeout: Duration) -> Result<Reply, Failure> {
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData,
                                 timeoutInterval: Double(max(timeout.wholeMilliseconds, 1)) / 1000)
        request.httpMethod = "POST"
        request.httpBody = body
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("keep-alive", forHTTPHeaderField: "Connection")

        let outcome = Outcome()
        let finished = DispatchSemaphore(value: 0)
        let task = session.dataTask(with: request) { data, response, error in
            outcome.set(Self.result(data: data, response: response, error: error))
            finished.signal()
        }
        task.resume()
        let deadline = DispatchTime.now() + .nanoseconds(Int((timeout + Self.grace).wholeNanoseconds))
        if finished.wait(timeout: deadline) == .timedOut {
            task.cancel()
            return .failure(.timedOut)
        }
        return outcome.get() ?? .failure(.timedOut)
    }

    private static func result(data: Data?, response: URLResponse?, error: Error?) -> Result<Reply, Failure> {
        if let error {
            let nsError = error as NSError
            // libcurl's message ("Failed to connect to 10.0.0.5 port 2379 after 0 ms: Couldn't connect to
            // server") says more than the URLError code does.
            let text = nsError.userInfo[NSLocalizedDescriptionKey] as? String ?? "URL error \(nsError.code)"
            switch URLError.Code(rawValue: nsError.code) {
            case .timedOut, .cancelled:
                return .failure(.timedOut)
            case .cannotConnectToHost, .cannotFindHost, .dnsLookupFailed, .networkConnectionLost, .notConnectedToInternet,
                 .secureConnectionFailed:
                return .failure(.unreachable(text))
            default:
                return .failure(.notHTTP(text))
            }
        }
        guard let http = response as? HTTPURLResponse else { return .failure(.notHTTP("no HTTP response")) }
        return .success(Reply(status: http.statusCode, body: data ?? Data()))
    }

    /// The completion handler's result, handed to the waiting thread.
    private final class Outcome: @unchecked Sendable {
        private let lock = NSLock()
        private var result: Result<Reply, Failure>?

        func set(_ value: Result<Reply, Failure>) {
            lock.lock()
            result = value
            lock.unlock()
        }

        func get() -> Result<Reply, Failure>? {
            lock.lock()
            defer { lock.unlock() }
            return result
        }
    }
}
