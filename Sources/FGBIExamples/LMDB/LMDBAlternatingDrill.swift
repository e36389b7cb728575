import FGBI
import FGBIBench
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The LMDB example's drill of alternating failovers: two ``LMDBNode`` processes (`fgbi example lmdb --role
/// node`), A the primary of a database and B its backup. Each round kills the primary with SIGKILL while it
/// commits transactions; the backup takes over the database at its last committed epoch, checks it against
/// the history, and goes on committing; the killed node is restarted on the memory it still holds (its
/// database file on tmpfs) as the backup of its successor, which resynchronises it with only what differs.
/// Then the roles swap and the next round kills the new primary.
///
/// After each kill the taken-over database must hold every transaction any primary acknowledged so far.
/// At the end the primary is stopped cleanly (SIGTERM: a last epoch) and its backup's database is opened
/// with LMDB, compared with the history, and written to.
public struct LMDBAlternatingDrill: Sendable {
    public struct Settings: Sendable {
        public var history: KeyValueHistory
        public var failovers = 20
        public var mapBytes = 32 << 20
        public var epochMilliseconds = 25
        public var primaryTimeout = Duration.milliseconds(300)
        /// How long a primary runs protected, after its backup is synchronised, before it is killed: drawn
        /// between these bounds for each round.
        public var protectedRun = (minimum: Duration.milliseconds(100), maximum: Duration.milliseconds(600))
        /// The seed of the kill moments.
        public var seed: UInt64 = 1
        /// Whether a node that took over commits while its peer is away (``LMDBNode/Settings/writesWhileUnprotected``).
        public var writesWhileUnprotected = true
        /// Whether a rejoining node is resynchronised by block hashes (``LMDBNode/Settings/fetchesBlockHashes``).
        public var fetchesBlockHashes = true
        /// The rate each primary commits at (``LMDBNode/Settings/pace``; nil: as fast as it can).
        public var pace: TransactionPace?
        /// Where the nodes' database files go (tmpfs); removed afterwards.
        public var databaseDirectory = "/dev/shm"
        /// Where the nodes' logs go; removed afterwards unless the drill fails.
        public var logDirectory = NSTemporaryDirectory()

        public init(history: KeyValueHistory) { self.history = history }
    }

    /// One failover of the drill.
    public struct Failover: Sendable, Encodable {
        /// The node killed ("A" or "B").
        public var killed: String
        /// The highest transaction acknowledged by any primary before the kill.
        public var acknowledged: UInt64
        /// The epoch and the transactions the surviving node took over with.
        public var epoch: UInt64
        public var transactions: UInt64
        /// The bytes of the map the database taken over had used (its pages up to the highest in use).
        public var databaseBytes: Int
        /// Kill to the takeover's report (silence noticed, replica checked), in seconds.
        public var takeoverSeconds: Double
        /// What the new primary's first pass sent its rejoined backup: the pages that differed between the
        /// killed node's memory and the database taken over (compressed).
        public var rejoinFirstPassBytes: Int
        /// Bytes of block hashes the rejoining node sent its new primary (``PrecopyPolicy/fetchesBlockHashes``).
        public var rejoinBlockHashBytes: Int
        /// Everything sent up to the first committed epoch: the first pass, and the later pre-copy rounds and
        /// closing epoch, which carry what the new primary wrote meanwhile.
        public var rejoinBytes: Int
        public var regionBytes: Int
        /// Pages of the region that differed when the rejoined node's session began (the first pass sent
        /// them, the others the node already held).
        public var rejoinPagesDiffering: Int
        /// The synchronisation's pre-copy rounds and wall time (session start to its last round).
        public var rejoinRounds: Int
        public var rejoinMilliseconds: Int
        /// Kill to the rejoined backup's first committed epoch, in seconds: the time the database ran
        /// unprotected.
        public var unprotectedSeconds: Double
        /// Transactions the new primary committed from the takeover to that first committed epoch (the first
        /// acknowledgement after it, less those it took over with).
        public var unprotectedTransactions: UInt64
    }

    /// What the drill found.
    public struct Outcome: Sendable {
        public var failovers: [Failover]
        /// The first synchronisation, from nothing: its bytes.
        public var initialSynchronisationBytes: Int
        /// The last acknowledged transaction, and the final replica's check.
        public var acknowledged: UInt64
        public var finalReplica: LMDBReplicaVerifier.Report
    }

    /// The history written, the failovers, the map and where databases and logs go.
    public let settings: Settings
    /// The `fgbi` executable to run the nodes with.
    public let executable: URL

    public init(settings: Settings, executable: URL) {
        self.settings = settings
        self.executable = executable
    }

    /// Runs the drill; `progress` gets a line per failover.
    ///
    /// - Throws: ``LMDBReplicaVerifier/Mismatch`` when a replica taken over lacks an acknowledged transaction
    ///   or differs from the history; ``DrillError`` when a node misbehaves (exits, stands down, never
    ///   reports), with the tail of its log.
    public func run(progress: (String) -> Void = { _ in }) throws -> Outcome {
        let directories = try DrillDirectories.make(
            "fgbi-lmdb-ha", under: [settings.databaseDirectory, settings.logDirectory])
        let (databases, logs) = (directories[0], directories[1])
        var succeeded = false
        defer {
            try? FileManager.default.removeItem(at: databases)
            if succeeded { try? FileManager.default.removeItem(at: logs) }
        }
        let ports = try FreePorts.take(host: "127.0.0.1", count: 2).map { UInt16($0) }
        let nodes = ["A", "B"].enumerated().map { index, name in
            Node(
                name: name, database: databases.appendingPathComponent("\(name).mdb").path, port: ports[index],
                peerPort: ports[1 - index], log: logs.appendingPathComponent("\(name).log").path)
        }
        var cluster = Cluster(drill: self, nodes: nodes)
        defer { cluster.killAll() }
        let outcome = try cluster.run(progress: progress)
        succeeded = true
        return outcome
    }

    /// A node's fixed identity across its restarts.
    fileprivate struct Node {
        var name: String
        var database: String
        var port: UInt16
        var peerPort: UInt16
        var log: String
    }

    /// The drill's running processes.
    fileprivate struct Cluster {
        let drill: LMDBAlternatingDrill
        let nodes: [Node]
        /// Every process started, dead ones included (their acknowledgements count).
        var processes: [LabProcess] = []
        /// The live process of each node.
        var live: [LabProcess?] = [nil, nil]

        init(drill: LMDBAlternatingDrill, nodes: [Node]) {
            self.drill = drill
            self.nodes = nodes
        }

        var settings: Settings { drill.settings }

        mutating func run(progress: (String) -> Void) throws -> Outcome {
            var moments = SeededRandom(seed: settings.seed)
            try start(1, asPrimary: false)
            try start(0, asPrimary: true)
            var primary = 0
            let initial = try synchronised(primary)
            var failovers: [Failover] = []
            for round in 0..<settings.failovers {
                let backup = 1 - primary
                try runProtected(primary, moments: &moments)
                let acknowledged = highestAcknowledged()
                let killed = MonotonicClock.nanoseconds()
                live[primary]?.kill9()
                live[primary] = nil
                let takeover = try waitForReport(backup, "took-over", seconds: 60)
                let transactions = takeover.number("transactions") ?? 0
                guard transactions >= acknowledged else {
                    throw LMDBReplicaVerifier.Mismatch(
                        description:
                            """
                            round \(round + 1): node \(nodes[backup].name) took over with \(transactions) \
                            transactions, but \(acknowledged) were acknowledged
                            """
                    )
                }
                try start(primary, asPrimary: false)
                let rejoin = try synchronised(backup)
                let released = try firstAcknowledged(backup)
                let failover = Failover(
                    killed: nodes[primary].name, acknowledged: acknowledged, epoch: takeover.number("epoch") ?? 0,
                    transactions: transactions, databaseBytes: Int(takeover.number("database-bytes") ?? 0),
                    takeoverSeconds: seconds(from: killed, to: takeover.nanoseconds),
                    rejoinFirstPassBytes: Int(rejoin.number("first-pass") ?? 0),
                    rejoinBlockHashBytes: Int(rejoin.number("block-hash-bytes") ?? 0),
                    rejoinBytes: Int(rejoin.number("bytes") ?? 0), regionBytes: settings.mapBytes,
                    rejoinPagesDiffering: settings.mapBytes / GuestMemory.pageSize
                        - Int(rejoin.number("pages-held") ?? 0),
                    rejoinRounds: Int(rejoin.number("rounds") ?? 0),
                    rejoinMilliseconds: Int(rejoin.number("milliseconds") ?? 0),
                    unprotectedSeconds: seconds(from: killed, to: rejoin.nanoseconds),
                    unprotectedTransactions: released > transactions ? released - transactions : 0)
                failovers.append(failover)
                progress(
                    """
                    failover \(round + 1)/\(settings.failovers): killed \(failover.killed) with \(acknowledged) \
                    acknowledged;\u{20}
                    """
                        + """
                        \(nodes[backup].name) took over at epoch \(failover.epoch) with \(transactions) \
                        transactions in\u{20}
                        """
                        + String(format: "%.2f s", failover.takeoverSeconds) + "; \(failover.killed) rejoined: "
                        + String(
                            format: "%.1f%%",
                            100 * Double(failover.rejoinPagesDiffering * GuestMemory.pageSize)
                                / Double(failover.regionBytes))
                        + " of the pages differed, first pass "
                        + String(
                            format: "%.2f%%", 100 * Double(failover.rejoinFirstPassBytes) / Double(failover.regionBytes)
                        )
                        + " of the region, "
                        + String(format: "%.2f%%", 100 * Double(failover.rejoinBytes) / Double(failover.regionBytes))
                        + " with \(failover.rejoinRounds) rounds in \(failover.rejoinMilliseconds) ms; unprotected "
                        + String(format: "%.2f s", failover.unprotectedSeconds)
                        + " for \(failover.unprotectedTransactions) transactions")
                primary = backup
            }
            return try finish(primary: primary, initialBytes: Int(initial.number("bytes") ?? 0), failovers: failovers)
        }

        /// Stops the primary cleanly, waits for its backup to end, and checks the backup's database.
        private mutating func finish(primary: Int, initialBytes: Int, failovers: [Failover]) throws -> Outcome {
            let backup = 1 - primary
            live[primary]?.signal(SIGTERM)
            for node in [primary, backup] {
                guard let process = live[node] else { continue }
                guard let status = process.waitForExit(seconds: 60), status == 0 else {
                    throw failure(
                        "node \(nodes[node].name) did not end cleanly after the primary's SIGTERM", node: node)
                }
            }
            let acknowledged = highestAcknowledged()
            let report = try LMDBReplicaVerifier.verify(
                path: nodes[backup].database, mapBytes: settings.mapBytes,
                history: settings.history, acknowledged: acknowledged)
            return Outcome(
                failovers: failovers, initialSynchronisationBytes: initialBytes, acknowledged: acknowledged,
                finalReplica: report)
        }

        /// Starts node `index` (a primary of a new database, or a backup of whatever its file holds) and, for
        /// a backup, waits until it listens.
        private mutating func start(_ index: Int, asPrimary: Bool) throws {
            let node = nodes[index]
            let history = settings.history
            var arguments: [String] =
                [
                    "example", "lmdb", "--role", "node", "--start", asPrimary ? "primary" : "backup",
                    "--database", node.database, "--listen-port", String(node.port), "--peer",
                    "127.0.0.1:\(node.peerPort)",
                    "--seed", String(history.seed), "--keys", String(history.keyCount),
                    "--writes-per-transaction", String(history.writesPerTransaction),
                    "--map-mib", String(settings.mapBytes >> 20), "--epoch-ms", String(settings.epochMilliseconds),
                    "--primary-timeout-ms", String(settings.primaryTimeout.wholeMilliseconds),
                ]
                + (settings.writesWhileUnprotected ? [] : ["--no-writes-while-unprotected"])
                + (settings.fetchesBlockHashes ? [] : ["--no-block-hashes"])
            if let pace = settings.pace {
                arguments += [
                    "--transactions-per-second", String(pace.perSecond), "--load-transactions",
                    String(pace.loadTransactions),
                ]
            }
            let process = try LabProcess(
                executable: drill.executable, arguments: arguments, namespace: nil, logFile: node.log)
            processes.append(process)
            live[index] = process
            if !asPrimary { _ = try waitForReport(index, "listening", seconds: 60) }
        }

        /// Waits for node `index`'s first report of `kind`.
        private func waitForReport(_ index: Int, _ kind: String, seconds: Double) throws -> LabEvent {
            guard let process = live[index] else {
                throw failure("node \(nodes[index].name) is not running", node: index)
            }
            guard let line = process.waitForLine(seconds: seconds, { LabEvent($0)?.kind == kind }),
                let event = LabEvent(line)
            else {
                throw failure(
                    "node \(nodes[index].name) did not report \(kind) within \(Int(seconds)) s"
                        + (process.isRunning ? "" : " (it exited)"), node: index)
            }
            return event
        }

        /// Waits until node `index`, a primary, synchronised its backup: its first acknowledgement (the report
        /// is printed as that is released).
        private func synchronised(_ index: Int) throws -> LabEvent {
            try waitForReport(index, "synchronised", seconds: 120)
        }

        /// The first transaction node `index`'s process acknowledged.
        private func firstAcknowledged(_ index: Int) throws -> UInt64 {
            let prefix = "acknowledged "
            guard let line = live[index]?.waitForLine(seconds: 60, { $0.hasPrefix(prefix) }),
                let number = UInt64(line.dropFirst(prefix.count))
            else {
                throw failure("node \(nodes[index].name) acknowledged nothing within 60 s", node: index)
            }
            return number
        }

        /// Lets the primary run protected for a drawn while, checking it stays up.
        private func runProtected(_ index: Int, moments: inout SeededRandom) throws {
            let low = settings.protectedRun.minimum.wholeMilliseconds
            let high = settings.protectedRun.maximum.wholeMilliseconds
            let milliseconds = low + Int(moments.next() % UInt64(max(1, high - low + 1)))
            usleep(UInt32(milliseconds) * 1000)
            guard live[index]?.isRunning == true else {
                throw failure("node \(nodes[index].name) exited while primary", node: index)
            }
        }

        /// The highest transaction any node's process reported as acknowledged.
        private func highestAcknowledged() -> UInt64 {
            processes.flatMap(\.lines).reduce(0) { highest, line in
                guard line.hasPrefix("acknowledged "), let number = UInt64(line.dropFirst("acknowledged ".count)) else {
                    return highest
                }
                return max(highest, number)
            }
        }

        private func seconds(from start: UInt64, to end: UInt64) -> Double {
            end > start ? Double(end - start) / 1e9 : 0
        }

        /// The drill's failure, with the last lines of both nodes' logs: what one node did wrong often shows in
        /// the other's (a primary that ended on an error of its own leaves its backup nothing to take over).
        private func failure(_ what: String, node: Int) -> DrillError {
            let tails = [node, 1 - node].map { index in
                let log = (try? String(contentsOfFile: nodes[index].log, encoding: .utf8)) ?? ""
                return "the last lines of \(nodes[index].name)'s:\n"
                    + log.split(separator: "\n").suffix(10).joined(separator: "\n")
            }
            return DrillError(
                description:
                    "\(what); logs in \(URL(fileURLWithPath: nodes[node].log).deletingLastPathComponent().path); "
                    + tails.joined(separator: "\n"))
        }

        mutating func killAll() {
            for process in live.compactMap({ $0 }) where process.isRunning { process.kill9() }
            live = [nil, nil]
        }
    }
}
