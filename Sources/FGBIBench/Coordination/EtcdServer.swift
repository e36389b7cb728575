import FGBI
import FGBICoordination
import FGBILab
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real etcd member for tests and benchmarks: the `etcd` binary (Debian's etcd-server) on a host address
/// and a free port, with a data directory of its own, optionally inside a network namespace (through
/// `ip netns exec`); alone (a single-member cluster), or one of an ``EtcdCluster``. It can be stopped, killed
/// and restarted on the same data and port, as an operator or a crash would. The process is stopped, and the
/// directory removed, when the server is deinitialised.
public final class EtcdServer: @unchecked Sendable {
    /// Whether the `etcd` binary is installed (Scripts/etcd and Scripts/bootstrap install it).
    public static let isAvailable: Bool = executable != nil

    private static let executable: String? = {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        let directories = path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"]
        return directories.map { "\($0)/etcd" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// The address etcd listens on, for clients and for its (unused) peer port.
    public let host: String
    public let clientPort: Int
    public let peerPort: Int
    /// The namespace etcd runs in, nil for this one.
    public let namespace: NetworkNamespace?
    /// The member's data; kept across ``restart()``.
    public let dataDirectory: String
    /// etcd's standard output and error, appended across restarts.
    public let logFile: String

    /// The client URL, for ``EtcdClient``: `https://` when the member serves TLS.
    public var clientURL: String { "\(tls == nil ? "http" : "https")://\(urlHost):\(clientPort)" }

    /// The certificates the member serves TLS with, nil for plain HTTP.
    public let tls: EtcdCertificates?
    /// Whether the member requires a client certificate signed by ``tls``'s authority.
    public let requiresClientCertificates: Bool

    /// The member's name, and the cluster it starts in (`name=peerURL,...`; itself alone by default).
    public let name: String
    private var initialCluster: String
    private let clusterToken: String
    private let workDirectory: String
    private let startTimeout: Duration
    private let electionTimeout: Duration
    private let lock = NSLock()
    private var running: Running?

    private static let counter = LockedCounter()

    /// Starts etcd on `host` (an address of this machine, or of `namespace`) at `port` (a free one when nil)
    /// and waits until it answers ``EtcdClient/status()`` with a leader, at most `startTimeout`.
    ///
    /// A single member has no peers to hear from, so its raft timing only sets how soon it elects itself and
    /// etcd's shortest lease (1.5 election timeouts, rounded up to whole seconds): the default, a 250 ms
    /// election timeout with a 25 ms heartbeat, is ready in a fraction of a second and grants 1 s leases,
    /// where etcd's own defaults (1 s, 100 ms) take a second to start and grant no lease under 2 s.
    ///
    /// With `tls`, the member serves its clients over TLS with those certificates and, with
    /// `requireClientCertificates`, requires a client certificate signed by the same authority
    /// (`--client-cert-auth`); its peer port stays plain. etcd's JSON gateway refuses user/password
    /// authentication when client certificates are required ("CommonName of client sending a request against
    /// gateway will be ignored"): a lab with ``enableAuthentication(rootPassword:user:prefix:)`` passes false.
    public init(
        host: String = "127.0.0.1", port: Int? = nil, namespace: NetworkNamespace? = nil,
        electionTimeout: Duration = .milliseconds(250), startTimeout: Duration = .seconds(20),
        tls: EtcdCertificates? = nil, requireClientCertificates: Bool = true
    ) throws {
        guard Self.executable != nil else {
            throw BenchmarkError("etcd is not installed: run Scripts/bootstrap (Debian package etcd-server)")
        }
        self.host = host
        self.namespace = namespace
        self.startTimeout = startTimeout
        self.electionTimeout = electionTimeout
        self.tls = tls
        requiresClientCertificates = tls != nil && requireClientCertificates
        let ports = try FreePorts.take(host: host, count: port == nil ? 2 : 1)
        clientPort = port ?? ports[0]
        peerPort = port == nil ? ports[1] : ports[0]
        name = "fgbi"
        clusterToken = "fgbi-\(getpid())-\(clientPort)"
        workDirectory = NSTemporaryDirectory() + "fgbi-etcd-\(getpid())-\(Self.counter.next())"
        dataDirectory = workDirectory + "/data"
        logFile = workDirectory + "/etcd.log"
        initialCluster = ""
        initialCluster = "\(name)=\(peerURL)"
        try FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
        do {
            try start()
        } catch {
            try? FileManager.default.removeItem(atPath: workDirectory)
            throw error
        }
    }

    /// A member of a cluster, not started: ``EtcdCluster`` sets the cluster, starts every member, then waits.
    init(member name: String, host: String, clusterToken: String, electionTimeout: Duration, startTimeout: Duration)
        throws
    {
        self.host = host
        namespace = nil
        tls = nil
        requiresClientCertificates = false
        self.startTimeout = startTimeout
        self.electionTimeout = electionTimeout
        let ports = try FreePorts.take(host: host, count: 2)
        clientPort = ports[0]
        peerPort = ports[1]
        self.name = name
        self.clusterToken = clusterToken
        initialCluster = ""
        workDirectory = NSTemporaryDirectory() + "fgbi-etcd-\(getpid())-\(Self.counter.next())"
        dataDirectory = workDirectory + "/data"
        logFile = workDirectory + "/etcd.log"
        try FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
    }

    /// The peer URL other members reach this one at.
    var peerURL: String { "http://\(urlHost):\(peerPort)" }

    /// Starts a cluster member without waiting for a leader (it needs the others for that).
    func startMember(cluster: String) throws {
        initialCluster = cluster
        try start(waitForLeader: false)
    }

    /// Waits until this member answers with a leader.
    func waitUntilReady() throws {
        guard let shell = lock.withLock({ running?.shell }) else {
            throw BenchmarkError("etcd member \(name) is not running")
        }
        try waitUntilReady(shell)
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: workDirectory)
    }

    /// Whether the etcd process is running.
    public var isRunning: Bool {
        lock.withLock { running?.shell.isRunning ?? false }
    }

    /// The etcd process's ID, nil when it is not running.
    public var pid: Int32? {
        lock.withLock { running.flatMap { $0.shell.isRunning ? $0.etcd : nil } }
    }

    /// Stops etcd as an operator would (SIGTERM; SIGKILL if it has not exited after 5 s) and waits for it.
    /// Does nothing when it is not running.
    public func stop() {
        end(with: SIGTERM)
    }

    /// Kills etcd as a crash would (SIGKILL) and waits for it.
    public func kill9() {
        end(with: SIGKILL)
    }

    /// Stops etcd if it runs and starts it again on the same data directory and ports; waits until it answers
    /// with a leader (a cluster member: until its cluster has one).
    public func restart() throws {
        stop()
        try start()
    }

    /// What a client of this member gives ``EtcdClient``: the lab's authority, and its client certificate
    /// when the member requires one.
    public var clientTLS: EtcdTLS? {
        guard let tls else { return nil }
        return requiresClientCertificates ? tls.clientTLS : EtcdTLS(caFile: tls.caFile)
    }

    /// Turns on etcd's user/password authentication with a `root` user of `rootPassword` (etcd requires one
    /// before it enables authentication) and, when `user` is given, that user with read and write rights on
    /// `prefix` only. Clients then need ``EtcdCredentials``.
    public func enableAuthentication(rootPassword: String, user: EtcdCredentials? = nil, prefix: String = "/fgbi/")
        throws
    {
        let client = try EtcdClient(endpoints: [clientURL], requestTimeout: .milliseconds(2000), tls: clientTLS)
        try client.administer("v3/auth/user/add", ["name": "root", "password": rootPassword])
        try client.administer("v3/auth/role/add", ["name": "root"])
        try client.administer("v3/auth/user/grant", ["user": "root", "role": "root"])
        if let user {
            let role = "fgbi-\(user.user)"
            try client.administer("v3/auth/user/add", ["name": user.user, "password": user.password])
            try client.administer("v3/auth/role/add", ["name": role])
            // The prefix as a range: [prefix, prefix with its last byte + 1).
            var end = Array(prefix.utf8)
            end[end.count - 1] += 1
            try client.administer(
                "v3/auth/role/grant",
                [
                    "name": role,
                    "perm": [
                        "permType": "READWRITE", "key": Data(prefix.utf8).base64EncodedString(),
                        "range_end": Data(end).base64EncodedString(),
                    ] as [String: Any],
                ])
            try client.administer("v3/auth/user/grant", ["user": user.user, "role": role])
        }
        try client.administer("v3/auth/enable", [:])
    }

    /// The last `lines` lines of etcd's log, for error messages.
    public func logTail(lines: Int = 15) -> String {
        guard let text = try? String(contentsOfFile: logFile, encoding: .utf8) else { return "(no log)" }
        return text.split(separator: "\n", omittingEmptySubsequences: true).suffix(lines).joined(separator: "\n")
    }

    private var urlHost: String { host.contains(":") ? "[\(host)]" : host }

    private func start(waitForLeader: Bool = true) throws {
        let arguments =
            [
                Self.executable!, "--name", name, "--data-dir", dataDirectory,
                "--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
                "--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
                "--initial-cluster", initialCluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", clusterToken,
                "--election-timeout", String(max(electionTimeout.wholeMilliseconds, 10)),
                "--heartbeat-interval", String(max(electionTimeout.wholeMilliseconds / 10, 1)),
            ] + (tls.map { ["--cert-file", $0.serverCertificate, "--key-file", $0.serverKey] } ?? [])
            // etcd verifies client certificates whenever it is given a trusted authority.
            + (requiresClientCertificates ? ["--trusted-ca-file", tls!.caFile, "--client-cert-auth"] : [])
        var command = ["/bin/sh", "-c", Self.lifelineScript] + arguments
        if let namespace {
            command = [VethLink.toolPath("ip"), "netns", "exec", namespace.name] + command
        }
        let pidFile = workDirectory + "/etcd.pid"
        unlink(pidFile)
        var environment = ProcessInfo.processInfo.environment
        environment["FGBI_ETCD_PID_FILE"] = pidFile
        environment["FGBI_ETCD_WORK"] = workDirectory
        // The lifeline: the shell reads one end; this process alone holds the other (close-on-exec keeps it
        // from other children).
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw SystemError(operation: "pipe", errno: errno) }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        defer { close(ends[0]) }
        let shell: SpawnedProcess
        do {
            shell = try SpawnedProcess(command, environment: environment, logFile: logFile, input: ends[0])
        } catch {
            close(ends[1])
            throw error
        }

        // The shell writes etcd's process ID as soon as it has started it.
        let deadline = MonotonicClock.nanoseconds() + 5_000_000_000
        var etcd: Int32?
        while etcd == nil, shell.isRunning, MonotonicClock.nanoseconds() < deadline {
            etcd = (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap {
                Int32($0.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            if etcd == nil { usleep(2_000) }
        }
        guard let etcd else {
            close(ends[1])
            shell.waitForExit(timeout: .seconds(5))
            throw BenchmarkError("etcd at \(clientURL) did not start; its log (\(logFile)) ends:\n\(logTail())")
        }
        lock.withLock { running = Running(shell: shell, etcd: etcd, lifeline: ends[1]) }
        if waitForLeader { try waitUntilReady(shell) }
    }

    /// A started etcd: the shell that started it and watches this process, etcd's own process ID, and the
    /// write end of the shell's standard input.
    private struct Running {
        var shell: SpawnedProcess
        var etcd: Int32
        var lifeline: Int32
    }

    /// Runs etcd (`$0`, with its arguments) and waits for it; meanwhile a watcher reads the shell's standard
    /// input, a pipe whose only write end this process holds. Whenever this process ends, by a crash too,
    /// the read sees end of file and the watcher kills etcd and removes its directory: a test or benchmark
    /// that dies leaves no etcd behind. (PR_SET_PDEATHSIG would follow the thread that started etcd, not the
    /// process, and a concurrency pool thread may end while etcd should run on.)
    private static let lifelineScript = """
        exec 3<&0 0</dev/null
        "$0" "$@" 3<&- & etcd=$!
        echo "$etcd" > "$FGBI_ETCD_PID_FILE"
        {
            read -r _ <&3
            trap '' TERM
            kill -KILL "$etcd" 2>/dev/null
            while kill -0 "$etcd" 2>/dev/null; do sleep 0.1; done
            rm -rf "$FGBI_ETCD_WORK"
        } &
        watcher=$!
        exec 3<&-
        wait "$etcd"; status=$?
        kill "$watcher" 2>/dev/null
        exit "$status"
        """

    /// Polls `status()` until the member answers with a leader; throws, with the log's tail, when etcd exits or
    /// `startTimeout` passes first (and then stops it, so a failed start leaves no process behind).
    private func waitUntilReady(_ shell: SpawnedProcess) throws {
        let client = try EtcdClient(endpoints: [clientURL], requestTimeout: .milliseconds(500), tls: clientTLS)
        let deadline = MonotonicClock.nanoseconds() + startTimeout.wholeNanoseconds
        var lastError = "no answer yet"
        while MonotonicClock.nanoseconds() < deadline {
            if let status = shell.exitStatus {
                throw BenchmarkError(
                    """
                    etcd at \(clientURL) exited with status \(status) while starting; its log (\(logFile)) \
                    ends:\n\(logTail())
                    """
                )
            }
            do {
                if try client.status().hasLeader { return }
                lastError = "no leader yet"
            } catch {
                lastError = error.problem
            }
            MonotonicClock.sleep(nanoseconds: 50_000_000)
        }
        stop()
        throw BenchmarkError(
            """
            etcd at \(clientURL) did not answer within \(startTimeout.wholeMilliseconds) ms (\(lastError)); its \
            log (\(logFile)) ends:\n\(logTail())
            """
        )
    }

    private func end(with signal: Int32) {
        let ending: Running? = lock.withLock {
            defer { running = nil }
            return running
        }
        guard let ending else { return }
        // Closed last: closing it first would have the watcher kill etcd.
        defer { close(ending.lifeline) }
        guard ending.shell.isRunning else { return }
        kill(ending.etcd, signal)
        if ending.shell.waitForExit(timeout: .seconds(5)) == nil {
            kill(ending.etcd, SIGKILL)
            ending.shell.waitForExit(timeout: .seconds(60))
        }
    }
}
