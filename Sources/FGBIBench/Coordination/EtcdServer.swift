import FGBI
import FGBICoordination
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real single-member etcd for tests and benchmarks: the `etcd` binary (Debian's etcd-server) on a host
/// address and a free port, with a data directory of its own, optionally inside a network namespace (through
/// `ip netns exec`). It can be stopped, killed and restarted on the same data and port, as an operator or a
/// crash would. The process is stopped, and the directory removed, when the server is deinitialised.
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

    /// The client URL, for ``EtcdClient``.
    public var clientURL: String { "http://\(urlHost):\(clientPort)" }

    private let workDirectory: String
    private let startTimeout: Duration
    private let electionTimeout: Duration
    private let lock = NSLock()
    private var process: Process?

    private static let counter = LockedCounter()

    /// Starts etcd on `host` (an address of this machine, or of `namespace`) at `port` (a free one when nil)
    /// and waits until it answers ``EtcdClient/status()`` with a leader, at most `startTimeout`.
    ///
    /// A single member has no peers to hear from, so its raft timing only sets how soon it elects itself and
    /// etcd's shortest lease (1.5 election timeouts, rounded up to whole seconds): the default, a 250 ms
    /// election timeout with a 25 ms heartbeat, is ready in a fraction of a second and grants 1 s leases,
    /// where etcd's own defaults (1 s, 100 ms) take a second to start and grant no lease under 2 s.
    public init(host: String = "127.0.0.1", port: Int? = nil, namespace: NetworkNamespace? = nil,
                electionTimeout: Duration = .milliseconds(250), startTimeout: Duration = .seconds(20)) throws {
        guard let _ = Self.executable else {
            throw BenchmarkError("etcd is not installed: run Scripts/bootstrap (Debian package etcd-server)")
        }
        self.host = host
        self.namespace = namespace
        self.startTimeout = startTimeout
        self.electionTimeout = electionTimeout
        let ports = try Self.freePorts(host: host, count: port == nil ? 2 : 1)
        clientPort = port ?? ports[0]
        peerPort = port == nil ? ports[1] : ports[0]
        workDirectory = NSTemporaryDirectory() + "fgbi-etcd-\(getpid())-\(Self.counter.next())"
        dataDirectory = workDirectory + "/data"
        logFile = workDirectory + "/etcd.log"
        try FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
        do {
            try start()
        } catch {
            try? FileManager.default.removeItem(atPath: workDirectory)
            throw error
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: workDirectory)
    }

    /// Whether the etcd process is running.
    public var isRunning: Bool {
        lock.withLock { process?.isRunning ?? false }
    }

    /// The etcd process's ID, nil when it is not running.
    public var pid: Int32? {
        lock.withLock { process.flatMap { $0.isRunning ? $0.processIdentifier : nil } }
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

    /// Stops etcd if it runs and starts it again on the same data directory and ports; waits until it answers.
    public func restart() throws {
        stop()
        try start()
    }

    /// The last `lines` lines of etcd's log, for error messages.
    public func logTail(lines: Int = 15) -> String {
        guard let text = try? String(contentsOfFile: logFile, encoding: .utf8) else { return "(no log)" }
        return text.split(separator: "\n", omittingEmptySubsequences: true).suffix(lines).joined(separator: "\n")
    }

    private var urlHost: String { host.contains(":") ? "[\(host)]" : host }

    private func start() throws {
        let peerURL = "http://\(urlHost):\(peerPort)"
        var arguments = [
            Self.executable!, "--name", "fgbi", "--data-dir", dataDirectory,
            "--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
            "--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
            "--initial-cluster", "fgbi=\(peerURL)", "--initial-cluster-state", "new",
            "--initial-cluster-token", "fgbi-\(getpid())-\(clientPort)",
            "--election-timeout", String(max(electionTimeout.wholeMilliseconds, 10)),
            "--heartbeat-interval", String(max(electionTimeout.wholeMilliseconds / 10, 1)),
        ]
        let process = Process()
        if let namespace {
            process.executableURL = URL(fileURLWithPath: FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip")
            arguments = ["netns", "exec", namespace.name] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: arguments.removeFirst())
        }
        process.arguments = arguments
        if !FileManager.default.fileExists(atPath: logFile) {
            _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try lock.withLock {
            try process.run()
            self.process = process
        }
        try? log.close()
        try waitUntilReady(process)
    }

    /// Polls `status()` until the member answers with a leader; throws, with the log's tail, when etcd exits or
    /// `startTimeout` passes first (and then stops it, so a failed start leaves no process behind).
    private func waitUntilReady(_ process: Process) throws {
        let client = try EtcdClient(endpoints: [clientURL], requestTimeout: .milliseconds(500))
        let deadline = MonotonicClock.nanoseconds() + startTimeout.wholeNanoseconds
        var lastError = "no answer yet"
        while MonotonicClock.nanoseconds() < deadline {
            guard process.isRunning else {
                throw BenchmarkError("etcd at \(clientURL) exited with status \(process.terminationStatus) while starting; its log (\(logFile)) ends:\n\(logTail())")
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
        throw BenchmarkError("etcd at \(clientURL) did not answer within \(startTimeout.wholeMilliseconds) ms (\(lastError)); its log (\(logFile)) ends:\n\(logTail())")
    }

    private func end(with signal: Int32) {
        let running: Process? = lock.withLock {
            defer { process = nil }
            return process
        }
        guard let running, running.isRunning else { return }
        kill(running.processIdentifier, signal)
        let deadline = MonotonicClock.nanoseconds() + 5_000_000_000
        while running.isRunning, MonotonicClock.nanoseconds() < deadline { usleep(2_000) }
        if running.isRunning {
            kill(running.processIdentifier, SIGKILL)
        }
        running.waitUntilExit()
    }

    /// `count` distinct ports free on `host` now (bound together, then released): the usual race with other
    /// programs taking them in between is accepted for tests. An address this namespace lacks (it is in
    /// another) falls back to ports free on every address here.
    private static func freePorts(host: String, count: Int) throws -> [Int] {
        var sockets: [Int32] = []
        defer { for fd in sockets { close(fd) } }
        var ports: [Int] = []
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw SystemError(operation: "socket", errno: errno) }
            sockets.append(fd)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = 0
            if inet_pton(AF_INET, host, &address.sin_addr) != 1 { address.sin_addr.s_addr = INADDR_ANY }
            var bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if bound != 0 {
                address.sin_addr.s_addr = INADDR_ANY
                bound = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
            }
            guard bound == 0 else { throw SystemError(operation: "bind(\(host):0)", errno: errno) }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        return ports
    }
}
