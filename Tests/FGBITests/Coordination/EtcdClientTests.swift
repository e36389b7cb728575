import FGBI
import FGBIBench
import FGBICoordination
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The etcd client against a real single-member etcd (``EtcdServer``), and against peers that are not there,
/// never answer or answer garbage.
@Suite(
    "Etcd client", .serialized,
    .enabled(if: EtcdServer.isAvailable, "needs etcd (Debian package etcd-server; Scripts/bootstrap installs it)"))
struct EtcdClientTests {
    /// Runs `body` with a fresh etcd and a client of it; the server is stopped afterwards, whatever happens.
    func withServer(_ body: (EtcdServer, EtcdClient) throws -> Void) throws {
        let server = try EtcdServer()
        defer { server.stop() }
        try body(server, try EtcdClient(endpoints: [server.clientURL]))
    }

    /// The error `body` throws, which must be an ``EtcdError``.
    func etcdError(_ body: () throws -> Void) throws -> EtcdError {
        do {
            try body()
        } catch let error as EtcdError {
            return error
        }
        Issue.record("no error thrown")
        throw EtcdError(operation: "test", endpoint: "", reason: .malformedResponse("no error thrown"))
    }

    /// Seconds since `start` (a MonotonicClock reading).
    func seconds(since start: UInt64) -> Double { Double(MonotonicClock.nanoseconds() - start) / 1e9 }

    /// Problems seen on other threads.
    final class LockedFailures: @unchecked Sendable {
        private let lock = NSLock()
        private var failures: [String] = []
        func add(_ failure: String) { lock.withLock { failures.append(failure) } }
        var all: [String] { lock.withLock { failures } }
    }

    // MARK: Against etcd

    @Test func statusNamesTheVersionAndTheLeader() throws {
        try withServer { server, client in
            let status = try client.status()
            #expect(status.version.hasPrefix("3."))
            #expect(status.hasLeader)
            #expect(status.leader == status.memberID, "a single member leads itself")
            #expect(status.revision >= 1)
            #expect(status.endpoint == server.clientURL)
        }
    }

    @Test func putGetAndDeleteRoundTripBinaryValues() throws {
        try withServer { _, client in
            let value = (0...255).map { UInt8($0) } + [0, 0, 0xFF]
            let revision = try client.put("/fgbi/test/binary", value: value)
            let read = try #require(try client.get("/fgbi/test/binary"))
            #expect(read.key == "/fgbi/test/binary")
            #expect(read.value == value)
            #expect(read.createRevision == revision && read.modRevision == revision)
            #expect(read.version == 1 && read.lease == 0)

            let second = try client.put("/fgbi/test/binary", value: [])
            let empty = try #require(try client.get("/fgbi/test/binary"))
            #expect(empty.value.isEmpty, "an empty value is omitted from the JSON and read back as empty")
            #expect(empty.version == 2 && empty.modRevision == second && empty.createRevision == revision)

            #expect(try client.delete("/fgbi/test/binary"))
            #expect(try client.get("/fgbi/test/binary") == nil)
            #expect(try !client.delete("/fgbi/test/binary"), "deleting a missing key reports it was not there")
            #expect(try client.get("/fgbi/test/never-written") == nil)
        }
    }

    @Test func aLeaseKeptAliveHoldsItsKeyAndOneLeftAloneExpires() throws {
        try withServer { _, client in
            let lease = try client.grantLease(ttlSeconds: 1)
            #expect(lease.ttlSeconds >= 1 && lease.ttlSeconds <= 2)
            try client.put("/fgbi/test/leased", value: Array("primary".utf8), lease: lease.id)
            #expect(try client.get("/fgbi/test/leased")?.lease == lease.id)

            // Kept alive for twice its TTL, the key stays.
            for _ in 0..<5 {
                #expect(try client.keepAlive(lease.id) == lease.ttlSeconds)
                MonotonicClock.sleep(nanoseconds: 400_000_000)
            }
            #expect(try client.get("/fgbi/test/leased") != nil)
            #expect(try client.timeToLive(lease.id).map { $0 <= lease.ttlSeconds } == true)

            // Left alone, it expires within its TTL plus etcd's expiry check (every 500 ms).
            let start = MonotonicClock.nanoseconds()
            while try client.get("/fgbi/test/leased") != nil, seconds(since: start) < 5 {
                MonotonicClock.sleep(nanoseconds: 100_000_000)
            }
            let elapsed = seconds(since: start)
            #expect(try client.get("/fgbi/test/leased") == nil, "the key outlived its lease")
            #expect(elapsed < Double(lease.ttlSeconds) + 2, "the key went after \(elapsed) s")
            #expect(try client.keepAlive(lease.id) == nil, "an expired lease cannot be kept alive")
            #expect(try client.timeToLive(lease.id) == nil)
        }
    }

    @Test func revokingALeaseDeletesItsKeysAtOnce() throws {
        try withServer { _, client in
            let lease = try client.grantLease(ttlSeconds: 30)
            #expect(lease.ttlSeconds == 30)
            try client.put("/fgbi/test/a", value: [1], lease: lease.id)
            try client.put("/fgbi/test/b", value: [2], lease: lease.id)
            #expect(try client.timeToLive(lease.id).map { $0 > 25 } == true)
            #expect(try client.revoke(lease.id))
            #expect(try client.get("/fgbi/test/a") == nil && client.get("/fgbi/test/b") == nil)
            #expect(try !client.revoke(lease.id), "revoking again reports the lease was gone")
            #expect(try client.keepAlive(lease.id) == nil)
            #expect(try client.timeToLive(lease.id) == nil)

            // A put on a lease that does not exist is refused, with etcd's code and message.
            let error = try etcdError { try client.put("/fgbi/test/c", value: [3], lease: lease.id) }
            #expect(error.serverCode == GRPCStatus.notFound)
            #expect(error.description.contains("etcd put at http://127.0.0.1:"))
            #expect(error.description.contains("requested lease not found"))
        }
    }

    @Test func aCreateRevisionZeroClaimSucceedsOnceAndThenReturnsTheHolder() throws {
        try withServer { _, client in
            let lease = try client.grantLease(ttlSeconds: 30)
            func claim(_ name: String) throws -> EtcdTransactionResult {
                try client.transaction(
                    EtcdTransaction(
                        compare: [.absent("/fgbi/test/leader")],
                        success: [.put(key: "/fgbi/test/leader", value: Array(name.utf8), lease: lease.id)],
                        failure: [.range(key: "/fgbi/test/leader")]))
            }
            let first = try claim("node-a")
            #expect(first.succeeded)
            #expect(first.responses == [.put])
            #expect(first.keyValues.isEmpty)

            let second = try claim("node-b")
            #expect(!second.succeeded)
            let holder = try #require(second.keyValues.first)
            #expect(holder.string == "node-a")
            #expect(holder.createRevision == first.revision)
            #expect(holder.lease == lease.id)
            #expect(second.revision == first.revision, "a failed claim writes nothing")
            #expect(try client.get("/fgbi/test/leader")?.string == "node-a")
        }
    }

    @Test func comparisonsOnModRevisionVersionAndValue() throws {
        try withServer { _, client in
            let key = "/fgbi/test/epoch"
            let written = try client.put(key, value: Array("7".utf8))
            func update(_ compare: EtcdCompare, to value: String) throws -> Bool {
                try client.transaction(
                    EtcdTransaction(compare: [compare], success: [.put(key: key, value: Array(value.utf8))])
                ).succeeded
            }
            // A write conditioned on the revision it read: succeeds once; a second writer holding the same
            // revision then fails.
            #expect(try update(EtcdCompare(key: key, .modRevision(written)), to: "8"))
            #expect(try !update(EtcdCompare(key: key, .modRevision(written)), to: "9"))
            let current = try #require(try client.get(key))
            #expect(current.string == "8" && current.modRevision > written)

            #expect(try update(EtcdCompare(key: key, .modRevision(written), .greater), to: "10"))
            #expect(try !update(EtcdCompare(key: key, .modRevision(written), .less), to: "x"))
            #expect(try update(EtcdCompare(key: key, .version(3)), to: "11"))
            #expect(try update(EtcdCompare(key: key, .version(4), .notEqual), to: "x") == false)
            #expect(try update(EtcdCompare(key: key, .value(Array("11".utf8))), to: "12"))
            #expect(try !update(EtcdCompare(key: key, .value(Array("11".utf8))), to: "x"))
            #expect(try client.get(key)?.string == "12")

            // Several operations in one transaction, each with its response.
            try client.put("/fgbi/test/other", value: [1])
            let result = try client.transaction(
                EtcdTransaction(
                    compare: [
                        EtcdCompare(key: key, .value(Array("12".utf8))),
                        EtcdCompare(key: "/fgbi/test/other", .version(0), .greater),
                    ],
                    success: [.delete(key: "/fgbi/test/other"), .range(key: key), .put(key: key, value: [])]))
            #expect(result.succeeded)
            #expect(result.responses.count == 3)
            #expect(result.responses.first == .delete(deleted: 1))
            #expect(result.keyValues.map(\.string) == ["12"])
        }
    }

    @Test func dataSurvivesARestartAndAKill() throws {
        try withServer { server, client in
            try client.put("/fgbi/test/durable", value: [42])
            try server.restart()
            #expect(try client.get("/fgbi/test/durable")?.value == [42], "the same client reconnects after a restart")
            try client.put("/fgbi/test/durable", value: [43])
            server.kill9()
            #expect(!server.isRunning)
            #expect(throws: EtcdError.self) { try client.get("/fgbi/test/durable") }
            try server.restart()
            #expect(try client.get("/fgbi/test/durable")?.value == [43], "an acknowledged put survives SIGKILL")
        }
    }

    @Test func threadsShareOneClient() throws {
        try withServer { _, client in
            let failures = LockedFailures()
            DispatchQueue.concurrentPerform(iterations: 4) { thread in
                for round in 0..<15 {
                    do {
                        try client.put("/fgbi/test/thread/\(thread)", value: [UInt8(thread), UInt8(round)])
                        guard try client.get("/fgbi/test/thread/\(thread)")?.value == [UInt8(thread), UInt8(round)]
                        else {
                            failures.add("thread \(thread) read another value in round \(round)")
                            return
                        }
                    } catch {
                        failures.add("\(error)")
                        return
                    }
                }
            }
            #expect(failures.all.isEmpty, "\(failures.all)")
        }
    }

    // MARK: Endpoints that do not answer

    @Test(.enabled(if: VethLink.isAvailable && VethLink.canImpair, "needs root, network namespaces, nft and tc"))
    func aPartitionedMemberTimesOutAndAnswersAgainOnceHealed() throws {
        let link = try VethLink()
        let server = try EtcdServer(host: link.peerAddress, namespace: link.namespace)
        defer { server.stop() }
        #expect(server.clientURL.hasPrefix("http://\(link.peerAddress):"))
        let client = try EtcdClient(endpoints: [server.clientURL], requestTimeout: .milliseconds(500))
        try client.put("/fgbi/test/partition", value: [1])

        // Every packet dropped, on the connection the client keeps as well as on new ones.
        try link.impair(.partition)
        let start = MonotonicClock.nanoseconds()
        let error = try etcdError { _ = try client.get("/fgbi/test/partition") }
        let elapsed = seconds(since: start)
        #expect(error.reason == .timedOut(milliseconds: 500))
        #expect(elapsed >= 0.4 && elapsed < 3, "gave up after \(elapsed) s")

        link.heal()
        #expect(try client.get("/fgbi/test/partition")?.value == [1])
    }

    @Test(
        "an endpoint that does not answer gives up at the request timeout",
        arguments: ["black hole", "silent", "refused", "TEST-NET"])
    func unansweredEndpointGivesUpInTime(kind: String) throws {
        var peer: MisbehavingPeer?
        let url: String
        switch kind {
        case "black hole":
            peer = try MisbehavingPeer(.blackHole)
            url = peer!.url
        case "silent":
            peer = try MisbehavingPeer(.silent)
            url = peer!.url
        case "refused":
            let closed = try MisbehavingPeer(.silent)
            url = closed.url
            closed.stop()
        default: url = "http://192.0.2.1:2379"
        }
        defer { peer?.stop() }
        let client = try EtcdClient(endpoints: [url], requestTimeout: .milliseconds(500))
        let start = MonotonicClock.nanoseconds()
        let error = try etcdError { _ = try client.grantLease(ttlSeconds: 5) }
        let elapsed = seconds(since: start)
        #expect(elapsed < 3, "gave up after \(elapsed) s")
        #expect(error.isEndpointFailure)
        #expect(error.description.hasPrefix("etcd lease grant at \(url): "))
        #expect(
            error.description.hasSuffix("is etcd running and reachable from this host? (--etcd lists every member)"))
        if kind == "black hole" || kind == "silent" {
            #expect(error.reason == .timedOut(milliseconds: 500))
            #expect(elapsed >= 0.4, "gave up after \(elapsed) s, before the timeout")
        }
        if kind == "refused" {
            guard case .unreachable = error.reason else {
                Issue.record("\(error)")
                return
            }
        }
    }

    @Test func aDeadFirstEndpointIsSkippedAndThenAvoided() throws {
        let server = try EtcdServer()
        defer { server.stop() }
        let dead = try MisbehavingPeer(.blackHole)
        defer { dead.stop() }
        let client = try EtcdClient(endpoints: [dead.url, server.clientURL], requestTimeout: .milliseconds(500))
        var start = MonotonicClock.nanoseconds()
        try client.put("/fgbi/test/failover", value: [1])
        #expect(seconds(since: start) >= 0.4, "the first endpoint was tried first")
        start = MonotonicClock.nanoseconds()
        #expect(try client.get("/fgbi/test/failover")?.value == [1])
        #expect(seconds(since: start) < 0.4, "the endpoint that answered is asked first from then on")
    }

    @Test func whenNoEndpointAnswersEachFailureIsReported() throws {
        let dead = try MisbehavingPeer(.blackHole)
        defer { dead.stop() }
        let closed = try MisbehavingPeer(.silent)
        closed.stop()
        let client = try EtcdClient(endpoints: [closed.url, dead.url], requestTimeout: .milliseconds(300))
        let error = try etcdError { _ = try client.keepAlive(1) }
        guard case .noEndpointAnswered(let each) = error.reason else {
            Issue.record("\(error)")
            return
        }
        #expect(each.map(\.endpoint) == [closed.url, dead.url])
        #expect(each.last?.reason == .timedOut(milliseconds: 300))
        #expect(error.description.hasPrefix("etcd lease keepalive: no endpoint answered (\(closed.url): unreachable ("))
        #expect(error.description.contains("\(dead.url): timed out after 300 ms)"))
    }

    // MARK: Endpoints that are wrong

    @Test(
        "a malformed endpoint is rejected with the reason",
        arguments: [
            ("https://127.0.0.1:2379/v3", "a client URL has no path: give https://host:port"),
            ("127.0.0.1:2379", "the scheme is missing: give https://127.0.0.1:2379"),
            ("grpc://127.0.0.1:2379", "only http:// and https:// URLs are supported"),
            ("http://127.0.0.1", "the port is missing"),
            ("http://127.0.0.1:99999", "'99999' is not a port"),
            ("http://127.0.0.1:port", "'port' is not a port"),
            ("http://127.0.0.1:2379/v3", "a client URL has no path"),
            ("http://:2379", "the host is missing"),
            ("http://etcd one:2379", "is not a host name or address"),
            ("http://::1:2379", "put an IPv6 address in brackets"),
            ("", "the scheme is missing"),
        ])
    func malformedEndpointIsRejected(endpoint: String, message: String) throws {
        let error = try etcdError { _ = try EtcdClient(endpoints: ["http://127.0.0.1:2379", endpoint]) }
        guard case .invalidEndpoint(let problem) = error.reason else {
            Issue.record("\(error)")
            return
        }
        #expect(problem.contains(message), "\(problem)")
        #expect(error.endpoint == endpoint)
        #expect(error.description.hasPrefix(endpoint.isEmpty ? "etcd client: " : "etcd client at \(endpoint): "))
    }

    @Test func membersAreAllTLSOrNone() throws {
        let error = try etcdError {
            _ = try EtcdClient(endpoints: ["http://127.0.0.1:2379", "https://127.0.0.1:2380"])
        }
        guard case .invalidEndpoint(let problem) = error.reason else {
            Issue.record("\(error)")
            return
        }
        #expect(problem.contains("mixed http:// and https:// members"), "\(problem)")
        let secure = try EtcdClient(endpoints: ["https://10.0.0.5:2379/", "HTTPS://[::1]:2379"])
        #expect(secure.endpoints == ["https://10.0.0.5:2379", "https://[::1]:2379"])
    }

    @Test func wellFormedEndpointsAreAccepted() throws {
        let client = try EtcdClient(endpoints: [
            "http://10.0.0.5:2379/", "HTTP://etcd-2.example:2379", "http://[::1]:2379",
        ])
        #expect(client.endpoints == ["http://10.0.0.5:2379", "http://etcd-2.example:2379", "http://[::1]:2379"])
        #expect(throws: EtcdError.self) { try EtcdClient(endpoints: []) }
    }

    // MARK: Answers that are wrong

    /// An HTTP/1.1 answer with `body` and its Content-Length.
    static func http(_ body: String, status: String = "200 OK") -> String {
        "HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    static let garbage: [(name: String, reply: String, expected: String)] = [
        ("not HTTP", "\u{0}\u{1}garbage garbage\r\n\r\n", "malformed response: not an HTTP answer"),
        ("not JSON", http("{not json"), "malformed response: not JSON: '{not json'"),
        (
            "chunked, not JSON", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n0\r\n\r\n",
            "malformed response: not JSON"
        ),
        ("not an object", http("[1,2]"), "malformed response: not a JSON object"),
        ("no header", http(#"{"ID":"5","TTL":"5"}"#), "field 'header' is missing"),
        ("no ID", http(#"{"header":{"revision":"1"},"TTL":"5"}"#), "field 'ID' is missing"),
        (
            "ID not a number", http(#"{"header":{"revision":"1"},"ID":"abc","TTL":"5"}"#),
            "field 'ID' is not an integer: abc"
        ),
        (
            "revision of the wrong type", http(#"{"header":{"revision":[]},"ID":"1","TTL":"5"}"#),
            "field 'header.revision' is not an integer"
        ),
        ("empty body", http(""), "malformed response: not JSON: empty body"),
        ("proxy error", http("Bad Gateway", status: "502 Bad Gateway"), "HTTP status 502 ('Bad Gateway')"),
        (
            "etcd error",
            http(#"{"error":"etcdserver: boom","message":"etcdserver: boom","code":3}"#, status: "400 Bad Request"),
            "etcd refused the request: etcdserver: boom (gRPC InvalidArgument, code 3)"
        ),
    ]

    @Test("an answer that is not etcd's is an error, not a crash", arguments: Self.garbage.indices)
    func garbageAnswerIsAnError(index: Int) throws {
        let (name, reply, expected) = Self.garbage[index]
        let peer = try MisbehavingPeer(.reply(Array(reply.utf8)))
        defer { peer.stop() }
        let client = try EtcdClient(endpoints: [peer.url], requestTimeout: .milliseconds(2000))
        let error = try etcdError { _ = try client.grantLease(ttlSeconds: 5) }
        #expect(error.description.contains(expected), "\(name): \(error)")
        #expect(!error.isEndpointFailure, "\(name): another member would not answer better")
    }
}
