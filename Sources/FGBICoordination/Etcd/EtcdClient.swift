import FGBI
import Foundation
import Logging
import Synchronization

/// A client of an etcd v3 cluster, over the JSON gateway etcd 3.4 and newer serve on their client URLs
/// (`POST /v3/kv/range` and so on): no gRPC, no generated code.
///
/// The API is synchronous: each call blocks the calling thread until etcd answers or the request times out,
/// as FGBI's replication threads expect. Calls from several threads at once are fine.
///
/// Requests go to the member that last answered. When it cannot be reached, does not answer within
/// `requestTimeout`, or says it is unavailable (no leader), the request is tried on the next member, each
/// with its own `requestTimeout`, so a call gives up after at most `endpoints.count × requestTimeout`; when no
/// member answers the error lists each one's failure. A request that timed out may still have been applied,
/// so a retried transaction can fail against its own earlier write: a caller claiming a key should compare
/// the value it reads back with its own.
///
///     let etcd = try EtcdClient(endpoints: ["http://10.0.0.5:2379", "http://10.0.0.6:2379", "http://10.0.0.7:2379"])
///     let lease = try etcd.grantLease(ttlSeconds: 5)
///     try etcd.put("/fgbi/primary", value: Array("10.0.0.9:7000".utf8), lease: lease.id)
///     while try etcd.keepAlive(lease.id) != nil { sleep(1) }
public final class EtcdClient: Sendable {
    /// The members' client URLs, as checked (`http://host:port`).
    public let endpoints: [String]
    /// How long each attempt on one member may take.
    public let requestTimeout: Duration

    private let members: [EtcdEndpoint]
    private let transport: EtcdHTTPTransport
    private let credentials: EtcdCredentials?
    /// The auth token etcd gave for ``credentials``, per member URL (simple tokens are a member's own).
    private let tokens = LockedState<[String: String]>([:])
    /// Index in `members` of the member to ask first: the one that last answered.
    private let preferred = Atomic<Int>(0)
    private let logger: Logger

    /// A client of the cluster whose members serve at `endpoints` (`https://host:port` each, or `http://` on a
    /// network only the fgbi hosts reach). `tls` says which authority signs the members' certificates (nil:
    /// the system's) and gives a client certificate when etcd asks for one. It makes no request; call
    /// ``status()`` to check the cluster is there.
    ///
    /// With `credentials` (etcd's user/password authentication), the client authenticates on first use and
    /// sends the token etcd gave with every request, authenticating again when etcd says the token expired.
    public init(
        endpoints: [String], requestTimeout: Duration = .milliseconds(1000), tls: EtcdTLS? = nil,
        credentials: EtcdCredentials? = nil, logger: Logger = Logger(label: "fgbi.etcd")
    ) throws(EtcdError) {
        precondition(requestTimeout > .zero, "an etcd request timeout must be positive")
        guard !endpoints.isEmpty else {
            throw EtcdError(operation: "etcd client", endpoint: "", reason: .invalidEndpoint("no endpoints given"))
        }
        var members: [EtcdEndpoint] = []
        for text in endpoints { members.append(try EtcdEndpoint(text)) }
        let secure = members.filter(\.isSecure).count
        guard secure == 0 || secure == members.count else {
            throw EtcdError(
                operation: "etcd client", endpoint: endpoints.joined(separator: ","),
                reason: .invalidEndpoint("mixed http:// and https:// members: give every member with https://"))
        }
        if tls != nil && secure == 0 {
            throw EtcdError(
                operation: "etcd client", endpoint: endpoints.joined(separator: ","),
                reason: .invalidEndpoint("TLS options were given for http:// members: give them as https://"))
        }
        do throws(TLSFailure) {
            transport = EtcdHTTPTransport(tls: secure > 0 ? try TLSClientContext(tls ?? EtcdTLS()) : nil)
        } catch {
            throw EtcdError(
                operation: "etcd client", endpoint: endpoints.joined(separator: ","),
                reason: .invalidEndpoint(error.description))
        }
        self.members = members
        self.endpoints = members.map(\.url)
        self.requestTimeout = requestTimeout
        self.credentials = credentials
        self.logger = logger
    }

    // MARK: Cluster

    /// The status of the first member that answers: its version, the leader it knows and the revision.
    /// Used at start-up to check that etcd is reachable.
    public func status() throws(EtcdError) -> EtcdStatus {
        try call("etcd status", "v3/maintenance/status", [:]) { (response, endpoint) throws(EtcdJSON.Malformed) in
            let header = try response.requiredObject("header")
            let version = try response.string("version")
            guard !version.isEmpty else { throw EtcdJSON.Malformed(detail: "field 'version' is missing") }
            return EtcdStatus(
                endpoint: endpoint.url, version: version, memberID: try header.uint64("member_id"),
                leader: try response.uint64("leader"), revision: try header.requiredInt64("revision"),
                raftTerm: try response.uint64("raftTerm"))
        }
    }

    // MARK: Administration (labs)

    /// A raw call of etcd's JSON gateway whose answer only needs to be a success (`v3/auth/user/add`, say):
    /// for the test labs that set etcd up (FGBIBench), not for coordination.
    package func administer(_ path: String, _ body: [String: Any]) throws(EtcdError) {
        try call("etcd \(path)", path, body) { (_, _) throws(EtcdJSON.Malformed) in () }
    }

    // MARK: Keys

    /// The key-value at `key`, or nil when the key does not exist.
    public func get(_ key: String) throws(EtcdError) -> EtcdKeyValue? {
        try call("etcd get", "v3/kv/range", ["key": EtcdJSON.base64(key)]) { (response, _) throws(EtcdJSON.Malformed) in
            _ = try response.headerRevision()
            return try response.objects("kvs").first?.keyValue()
        }
    }

    /// Every key-value under `prefix` (which must end in `/`), in key order.
    public func getPrefix(_ prefix: String) throws(EtcdError) -> [EtcdKeyValue] {
        precondition(prefix.hasSuffix("/"), "a key prefix ends in /")
        // The range end is the prefix with its last byte incremented: '/' + 1 is '0'.
        let end = String(prefix.dropLast()) + "0"
        return try call(
            "etcd get prefix", "v3/kv/range", ["key": EtcdJSON.base64(prefix), "range_end": EtcdJSON.base64(end)]
        ) {
            (response, _) throws(EtcdJSON.Malformed) in
            _ = try response.headerRevision()
            var keyValues: [EtcdKeyValue] = []
            for object in try response.objects("kvs") { keyValues.append(try object.keyValue()) }
            return keyValues
        }
    }

    /// Writes `value` at `key`, attached to `lease` unless it is 0 (the key is then deleted when the lease
    /// expires). Returns the revision of the write.
    @discardableResult
    public func put(_ key: String, value: [UInt8], lease: Int64 = 0) throws(EtcdError) -> Int64 {
        var body: [String: Any] = ["key": EtcdJSON.base64(key), "value": EtcdJSON.base64(value)]
        if lease != 0 { body["lease"] = String(lease) }
        return try call("etcd put", "v3/kv/put", body) { (response, _) throws(EtcdJSON.Malformed) in
            try response.headerRevision()
        }
    }

    /// Deletes `key`; whether it existed.
    @discardableResult
    public func delete(_ key: String) throws(EtcdError) -> Bool {
        try call("etcd delete", "v3/kv/deleterange", ["key": EtcdJSON.base64(key)]) {
            (response, _) throws(EtcdJSON.Malformed) in
            _ = try response.headerRevision()
            return try response.int64("deleted") > 0
        }
    }

    // MARK: Transactions

    /// Runs `transaction` atomically: its success operations if every comparison holds, else its failure ones.
    public func transaction(_ transaction: EtcdTransaction) throws(EtcdError) -> EtcdTransactionResult {
        let body: [String: Any] = [
            "compare": transaction.compare.map(Self.json),
            "success": transaction.success.map(Self.json),
            "failure": transaction.failure.map(Self.json),
        ]
        return try call("etcd txn", "v3/kv/txn", body) { (response, _) throws(EtcdJSON.Malformed) in
            let succeeded = try response.bool("succeeded")
            let operations = succeeded ? transaction.success : transaction.failure
            let responses = try response.objects("responses")
            guard responses.count == operations.count else {
                throw EtcdJSON.Malformed(detail: "\(responses.count) responses to \(operations.count) operations")
            }
            var results: [EtcdTransactionResult.Response] = []
            for (operation, reply) in zip(operations, responses) {
                switch operation {
                case .put:
                    _ = try reply.requiredObject("response_put")
                    results.append(.put)
                case .range:
                    let range = try reply.requiredObject("response_range")
                    var keyValues: [EtcdKeyValue] = []
                    for keyValue in try range.objects("kvs") { keyValues.append(try keyValue.keyValue()) }
                    results.append(.range(keyValues))
                case .delete:
                    let delete = try reply.requiredObject("response_delete_range")
                    results.append(.delete(deleted: try delete.int64("deleted")))
                }
            }
            return EtcdTransactionResult(
                succeeded: succeeded, revision: try response.headerRevision(), responses: results)
        }
    }

    private static func json(_ compare: EtcdCompare) -> [String: Any] {
        var object: [String: Any] = ["key": EtcdJSON.base64(compare.key), "result": compare.result.rawValue]
        switch compare.target {
        case .createRevision(let revision):
            object["target"] = "CREATE"
            object["create_revision"] = String(revision)
        case .modRevision(let revision):
            object["target"] = "MOD"
            object["mod_revision"] = String(revision)
        case .version(let version):
            object["target"] = "VERSION"
            object["version"] = String(version)
        case .value(let value):
            object["target"] = "VALUE"
            object["value"] = EtcdJSON.base64(value)
        case .lease(let lease):
            object["target"] = "LEASE"
            object["lease"] = String(lease)
        }
        return object
    }

    private static func json(_ operation: EtcdOperation) -> [String: Any] {
        switch operation {
        case .put(let key, let value, let lease):
            var put: [String: Any] = ["key": EtcdJSON.base64(key), "value": EtcdJSON.base64(value)]
            if lease != 0 { put["lease"] = String(lease) }
            return ["request_put": put]
        case .range(let key):
            return ["request_range": ["key": EtcdJSON.base64(key)]]
        case .delete(let key):
            return ["request_delete_range": ["key": EtcdJSON.base64(key)]]
        }
    }

    // MARK: Requests

    /// Sends `body` to `path` on the preferred member, and on to the others while members fail
    /// (``EtcdError/isEndpointFailure``); `parse` reads the answer. `stream` marks a gRPC stream, whose
    /// answer is one JSON object per line: the first is read.
    func call<T>(
        _ operation: String, _ path: String, _ body: [String: Any], stream: Bool = false,
        parse: (EtcdJSON.Object, EtcdEndpoint) throws(EtcdJSON.Malformed) -> T
    ) throws(EtcdError) -> T {
        let data = EtcdJSON.encode(body)
        let first = preferred.load(ordering: .relaxed)
        var failures: [EtcdError] = []
        for step in 0..<members.count {
            let index = (first + step) % members.count
            let member = members[index]
            do throws(EtcdError) {
                let response = try exchange(operation, path, data, on: member, stream: stream)
                let value: T
                do throws(EtcdJSON.Malformed) {
                    value = try parse(response, member)
                } catch {
                    throw EtcdError(
                        operation: operation, endpoint: member.url, reason: .malformedResponse(error.detail))
                }
                if index != first {
                    preferred.store(index, ordering: .relaxed)
                    logger.notice("\(operation): \(member.url) answered; asking it first from now on")
                }
                return value
            } catch  where error.isEndpointFailure && members.count > 1 {
                logger.warning("\(error.description)")
                failures.append(error)
            }
        }
        throw EtcdError(
            operation: operation, endpoint: endpoints.joined(separator: ","), reason: .noEndpointAnswered(failures))
    }

    /// One request to one member: its answer as a JSON object, or why there is none.
    private func exchange(
        _ operation: String, _ path: String, _ data: Data, on member: EtcdEndpoint,
        stream: Bool
    ) throws(EtcdError) -> EtcdJSON.Object {
        guard let credentials, path != Self.authenticatePath else {
            return try exchangeOnce(operation, path, data, on: member, stream: stream, token: nil)
        }
        let known = tokens.withLock { $0[member.url] }
        let token: String
        if let known { token = known } else { token = try authenticate(credentials, on: member) }
        do throws(EtcdError) {
            return try exchangeOnce(operation, path, data, on: member, stream: stream, token: token)
        } catch  where known != nil && error.isExpiredToken {
            // The token expired (or the member restarted): once more with a new one.
            let fresh = try authenticate(credentials, on: member)
            return try exchangeOnce(operation, path, data, on: member, stream: stream, token: fresh)
        }
    }

    private static let authenticatePath = "v3/auth/authenticate"

    /// Asks `member` for a token for `credentials`, and keeps it.
    private func authenticate(_ credentials: EtcdCredentials, on member: EtcdEndpoint) throws(EtcdError) -> String {
        let body = EtcdJSON.encode(["name": credentials.user, "password": credentials.password])
        let answer = try exchangeOnce(
            "etcd authenticate as \(credentials.user)", Self.authenticatePath, body, on: member, stream: false,
            token: nil)
        let token: String
        do throws(EtcdJSON.Malformed) {
            token = try answer.string("token")
        } catch {
            throw EtcdError(
                operation: "etcd authenticate", endpoint: member.url, reason: .malformedResponse(error.detail))
        }
        guard !token.isEmpty, !token.contains("\r"), !token.contains("\n") else {
            throw EtcdError(
                operation: "etcd authenticate", endpoint: member.url,
                reason: .malformedResponse("no usable token (is authentication enabled in etcd?)"))
        }
        tokens.withLock { $0[member.url] = token }
        return token
    }

    /// One request to one member with `token`, if any.
    private func exchangeOnce(
        _ operation: String, _ path: String, _ data: Data, on member: EtcdEndpoint,
        stream: Bool, token: String?
    ) throws(EtcdError) -> EtcdJSON.Object {
        func failure(_ reason: EtcdError.Reason) -> EtcdError {
            EtcdError(operation: operation, endpoint: member.url, reason: reason)
        }
        let reply: EtcdHTTPTransport.Reply
        switch transport.post(member, path: path, body: data, authorization: token, timeout: requestTimeout) {
        case .success(let answer): reply = answer
        case .failure(.timedOut): throw failure(.timedOut(milliseconds: requestTimeout.wholeMilliseconds))
        case .failure(.unreachable(let detail)): throw failure(.unreachable(detail))
        case .failure(.notHTTP(let detail)): throw failure(.malformedResponse("not an HTTP answer (\(detail))"))
        }
        var body = reply.body
        if stream, let end = body.firstIndex(of: UInt8(ascii: "\n")) { body = body[..<end] }
        let object: EtcdJSON.Object
        do throws(EtcdJSON.Malformed) {
            object = try EtcdJSON.parse(body)
        } catch {
            // A gateway error is JSON too; anything else with a bad status is not etcd speaking.
            if reply.status != 200 {
                throw failure(.httpStatus(reply.status, body: EtcdJSON.excerpt(reply.body)))
            }
            throw failure(.malformedResponse(error.detail))
        }
        if let error = Self.serverError(in: object) { throw failure(error) }
        guard reply.status == 200 else { throw failure(.httpStatus(reply.status, body: EtcdJSON.excerpt(reply.body))) }
        return object
    }

    /// The error in a gateway answer: `{"error": "...", "message": "...", "code": 5}` for a call, or
    /// `{"error": {"grpc_code": 14, "message": "..."}}` inside a stream.
    private static func serverError(in object: EtcdJSON.Object) -> EtcdError.Reason? {
        guard object.has("error") else { return nil }
        if let nested = try? object.object("error") {
            let code = (try? nested.int64("grpc_code")) ?? Int64(GRPCStatus.unknown)
            let message = (try? nested.string("message")) ?? ""
            return .server(code: Int(clamping: code), message: message.isEmpty ? "no message" : message)
        }
        let code = (try? object.int64("code")) ?? Int64(GRPCStatus.unknown)
        var message = (try? object.string("message")) ?? ""
        if message.isEmpty { message = (try? object.string("error")) ?? "" }
        return .server(code: Int(clamping: code), message: message.isEmpty ? "no message" : message)
    }
}
