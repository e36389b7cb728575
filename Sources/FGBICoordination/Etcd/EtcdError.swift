/// A failed etcd request: the operation, the endpoint, what went wrong and what the operator can do about it,
/// for example
///
///     etcd lease keepalive at http://10.0.0.5:2379: timed out after 1000 ms: is etcd running and reachable
///     from this host? (--etcd lists every member)
///
/// When a request was tried on every member of a cluster and none answered, the reason is
/// ``Reason/noEndpointAnswered(_:)`` with each member's own error.
public struct EtcdError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong.
    public enum Reason: Sendable, Equatable {
        /// An endpoint given to ``EtcdClient/init(endpoints:requestTimeout:logger:)`` is not `http://host:port`.
        case invalidEndpoint(String)
        /// No connection: refused, no route, the name did not resolve, or the connection broke; the text is
        /// the transport's own.
        case unreachable(String)
        /// No complete answer within the request timeout.
        case timedOut(milliseconds: Int)
        /// An HTTP status other than 200 without an etcd error in the body: not etcd's gateway, or a proxy.
        case httpStatus(Int, body: String)
        /// etcd refused the request: a gRPC status code (see ``GRPCStatus``) and etcd's message, such as
        /// code 5 "etcdserver: requested lease not found".
        case server(code: Int, message: String)
        /// The answer is not what etcd's JSON gateway sends: not JSON, or a field missing or of the wrong type.
        case malformedResponse(String)
        /// Every endpoint was tried and none gave an answer; each one's error, in the order tried.
        case noEndpointAnswered([EtcdError])
    }

    /// The request, as a user would search for it ("etcd lease grant", "etcd txn").
    public let operation: String
    /// The endpoint's URL, or the list tried (comma separated) for ``Reason/noEndpointAnswered(_:)``.
    public let endpoint: String
    public let reason: Reason

    /// An error of `operation` at `endpoint` (empty when no endpoint is concerned).
    public init(operation: String, endpoint: String, reason: Reason) {
        self.operation = operation
        self.endpoint = endpoint
        self.reason = reason
    }

    /// The gRPC status code of a ``Reason/server(code:message:)`` error, else nil.
    public var serverCode: Int? {
        if case .server(let code, _) = reason { return code }
        return nil
    }

    /// Whether another member of the cluster may answer where this one did not: no connection, no answer in
    /// Whether etcd refused the auth token (expired, or the member restarted and forgot it): authenticate
    /// again and retry.
    var isExpiredToken: Bool {
        guard case .server(let code, let message) = reason else { return false }
        return code == GRPCStatus.unauthenticated || message.contains("invalid auth token")
    }

    /// time, or etcd saying it is unavailable (no leader, leader changed, shutting down).
    public var isEndpointFailure: Bool {
        switch reason {
        case .unreachable, .timedOut: return true
        case .server(let code, _): return code == GRPCStatus.unavailable
        case .invalidEndpoint, .httpStatus, .malformedResponse, .noEndpointAnswered: return false
        }
    }

    /// What to do about it, or an empty string when there is nothing better than the message.
    public var hint: String {
        switch reason {
        case .invalidEndpoint:
            return "etcd client URLs look like http://10.0.0.5:2379"
        case .unreachable, .timedOut, .noEndpointAnswered:
            return "is etcd running and reachable from this host? (--etcd lists every member)"
        case .httpStatus:
            return "is this an etcd client URL? this client speaks the v3 JSON gateway of etcd 3.4 or newer"
        case .malformedResponse:
            return "is this an etcd client URL? this client speaks the v3 JSON gateway of etcd 3.4 or newer"
        case .server(let code, _):
            switch code {
            case GRPCStatus.unavailable, GRPCStatus.deadlineExceeded:
                return "the cluster may have lost its leader or quorum; check every member with etcdctl endpoint status"
            case GRPCStatus.unauthenticated, GRPCStatus.permissionDenied:
                return "this client does not support etcd authentication; give it a cluster without auth enabled"
            case GRPCStatus.resourceExhausted:
                return "etcd's database may be over its quota (etcdctl alarm list)"
            default:
                return ""
            }
        }
    }

    /// The reason alone, without operation, endpoint or hint.
    public var problem: String {
        switch reason {
        case .invalidEndpoint(let message):
            return message
        case .unreachable(let detail):
            return "unreachable (\(detail))"
        case .timedOut(let milliseconds):
            return "timed out after \(milliseconds) ms"
        case .httpStatus(let status, let body):
            return body.isEmpty ? "HTTP status \(status)" : "HTTP status \(status) (\(body))"
        case .server(let code, let message):
            return "etcd refused the request: \(message) (gRPC \(GRPCStatus.name(code)), code \(code))"
        case .malformedResponse(let detail):
            return "malformed response: \(detail)"
        case .noEndpointAnswered(let errors):
            let each = errors.map { "\($0.endpoint): \($0.problem)" }.joined(separator: "; ")
            return "no endpoint answered (\(each))"
        }
    }

    public var description: String {
        let place = reason.isAggregate || endpoint.isEmpty ? operation : "\(operation) at \(endpoint)"
        return hint.isEmpty ? "\(place): \(problem)" : "\(place): \(problem): \(hint)"
    }
}

extension EtcdError.Reason {
    fileprivate var isAggregate: Bool {
        if case .noEndpointAnswered = self { return true }
        return false
    }
}
