import ArgumentParser
import FGBI
import FGBIBench
import FGBIExamples
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

extension FGBICommand {
    /// `fgbi example lmdb`: an LMDB database replicated in-process, killed, and opened on the backup.
    struct ExampleLMDB: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "lmdb",
            abstract:
                "Replicate an LMDB database under a write-heavy load, kill -9 its process, open the backup's copy.",
            discussion: """
                The database is one file on tmpfs opened with MDB_WRITEMAP, so every change LMDB makes is a store
                into its shared map; FGBI adopts that map as the replicated region. A writer commits transactions
                (puts, updates and deletes of random keys) and acknowledges each only once the epoch holding it is
                committed on the backup (output commit).
                Roles:
                  drill (default): starts a backup here and a primary process, kills the primary with SIGKILL
                    after --kill-after-ms, then opens the backup's failover image with LMDB and checks it holds
                    exactly the first R transactions of the history, with R at least the last acknowledged one.
                  primary: the replicating writer (prints `acknowledged N` per release); runs until killed or
                    for --seconds. Use with `fgbi backup --region-mib <map-mib> --image FILE`.
                  verify: checks an image (--image) against the history (same --seed, --keys,
                    --writes-per-transaction) and --acknowledged.
                  alternate: the high-availability cycle: two node processes, A primary and B backup; kills the
                    primary with SIGKILL --failovers times, each time checking that the backup took over with
                    every acknowledged transaction and went on committing, and restarting the killed node on the
                    memory it still holds as the new primary's backup (only what differs is sent); then stops
                    cleanly and opens the last backup's database with LMDB.
                  node: one node of that cycle (--start primary|backup, --database, --listen-port, --peer):
                    a backup until its primary is lost, then the primary of the database it holds.
                  writer: the writer alone, unreplicated, at full speed (--database, --seconds): a real LMDB
                    program to capture with `fgbi trace capture --shared` (Scripts/capture-trace lmdb).
                Examples:
                  fgbi example lmdb
                  fgbi example lmdb --kill-after-ms 5000 --keys 200000 --map-mib 256
                  fgbi backup --listen 127.0.0.1:7071 --region-mib 64 --image /tmp/replica.mdb &
                  fgbi example lmdb --role primary --backup 127.0.0.1:7071 --seconds 3
                  fgbi example lmdb --role verify --image /tmp/replica.mdb --acknowledged 1200
                  fgbi example lmdb --role alternate --failovers 50
                """)

        enum Role: String, ExpressibleByArgument, CaseIterable {
            case drill, primary, verify, alternate, node, writer
        }

        @Option(help: "drill, primary, verify, alternate, node or writer.")
        var role = Role.drill

        @Option(help: "History seed (the primary and the verifier must agree).")
        var seed: UInt64 = 1

        @Option(help: "Key space of the workload.")
        var keys = 50_000

        @Option(name: .customLong("writes-per-transaction"), help: "Puts and deletes per transaction.")
        var writesPerTransaction = 8

        @Option(
            name: .customLong("map-mib"),
            help: "LMDB map size in MiB: the replicated region (and the backup's --region-mib).")
        var mapMiB = 64

        @Option(name: .customLong("epoch-ms"), help: "Epoch interval in milliseconds.")
        var epochMilliseconds = 25

        @Option(name: .customLong("kill-after-ms"), help: "drill: kill the primary this long after starting it.")
        var killAfterMilliseconds = 3_000

        @Option(help: "primary: the backup's address, HOST:PORT.")
        var backup: String?

        @Option(help: "primary: the database file (on tmpfs); it is recreated.")
        var database: String?

        @Option(help: "primary: stop after this many seconds (a final epoch is committed); default: run until killed.")
        var seconds: Double?

        @Option(help: "Replication mode: fgbi, page, page-lz4, xbzrle.")
        var mode = "fgbi"

        @Option(help: "verify: the image to check.")
        var image: String?

        @Option(help: "verify: the last transaction acknowledged.")
        var acknowledged: UInt64 = 0

        @Option(
            help:
                """
                drill: drills to run, each with its own history (seed, seed+1, ...) and a kill moment drawn \
                between 0 and --kill-after-ms (a soak; 1: kill exactly at --kill-after-ms).
                """
        )
        var rounds = 1

        @Option(help: "alternate: failovers to run (each kills the primary of the moment).")
        var failovers = 20

        @Option(
            help:
                "node: start as the primary of a new database, or as a backup (of what --database holds, if anything).")
        var start = "backup"

        @Option(name: .customLong("listen-port"), help: "node: the port to listen on as a backup (loopback).")
        var listenPort: UInt16 = 0

        @Option(help: "node: where the peer listens as a backup, HOST:PORT (loopback).")
        var peer: String?

        @Option(
            name: .customLong("primary-timeout-ms"),
            help: "node, alternate: how long a backup waits for a silent primary before taking over.")
        var primaryTimeoutMilliseconds = 300

        @Flag(
            inversion: .prefixedNo,
            help:
                """
                node, alternate: after a takeover, commit while the peer is away and being synchronised \
                (acknowledged once it holds them), rather than wait until it holds a first epoch.
                """
        )
        var writesWhileUnprotected = true

        @Flag(
            inversion: .prefixedNo,
            help:
                """
                node, alternate: resynchronise a rejoining peer by block hashes (only the blocks that differ), \
                not by page hashes alone.
                """
        )
        var blockHashes = true

        @Option(
            name: .customLong("transactions-per-second"),
            help: "primary, node, alternate: commit at this rate as a primary (default: as fast as the writer can).")
        var transactionsPerSecond: Int?

        @Option(
            name: .customLong("load-transactions"),
            help: "With --transactions-per-second: the first transactions, at full speed (default: 100000).")
        var loadTransactions: UInt64?

        @Flag(help: "drill, alternate: print the outcome as JSON.")
        var json = false

        func validate() throws {
            do { _ = try history() } catch { throw ValidationError("\(error)") }
            guard (1...65_536).contains(mapMiB) else { throw ValidationError("--map-mib must be between 1 and 65536") }
            guard (1...10_000).contains(epochMilliseconds) else {
                throw ValidationError("--epoch-ms must be between 1 and 10000")
            }
            guard killAfterMilliseconds >= 0 else { throw ValidationError("--kill-after-ms must not be negative") }
            guard (1...100_000).contains(rounds) else { throw ValidationError("--rounds must be between 1 and 100000") }
            if let seconds, !(seconds > 0) { throw ValidationError("--seconds must be positive") }
            if let transactionsPerSecond, !(1...10_000_000).contains(transactionsPerSecond) {
                throw ValidationError("--transactions-per-second must be between 1 and 10000000")
            }
            if transactionsPerSecond != nil, ![.primary, .node, .alternate].contains(role) {
                throw ValidationError("--transactions-per-second is for --role primary, node or alternate")
            }
            if loadTransactions != nil, transactionsPerSecond == nil {
                throw ValidationError("--load-transactions needs --transactions-per-second")
            }
            do { _ = try ReplicationMode.parse(mode) } catch { throw ValidationError("--mode: \(error)") }
            switch role {
            case .primary:
                guard let backup else { throw ValidationError("--role primary needs --backup HOST:PORT") }
                do { _ = try Endpoint(parsing: backup) } catch { throw ValidationError("--backup: \(error)") }
                guard database != nil else { throw ValidationError("--role primary needs --database FILE") }
            case .verify:
                guard image != nil else { throw ValidationError("--role verify needs --image FILE") }
            case .writer:
                guard database != nil else { throw ValidationError("--role writer needs --database FILE") }
            case .node:
                guard ["primary", "backup"].contains(start) else {
                    throw ValidationError("--start must be primary or backup, not \(start)")
                }
                guard database != nil else { throw ValidationError("--role node needs --database FILE") }
                guard let peer else { throw ValidationError("--role node needs --peer HOST:PORT") }
                do { _ = try Endpoint(parsing: peer) } catch { throw ValidationError("--peer: \(error)") }
                guard start == "primary" || listenPort != 0 else {
                    throw ValidationError("--role node --start backup needs --listen-port")
                }
            case .alternate:
                guard (1...10_000).contains(failovers) else {
                    throw ValidationError("--failovers must be between 1 and 10000")
                }
            case .drill:
                break
            }
            guard (10...60_000).contains(primaryTimeoutMilliseconds) else {
                throw ValidationError("--primary-timeout-ms must be between 10 and 60000")
            }
        }

        func pace() throws -> TransactionPace? {
            try transactionsPerSecond.map {
                try TransactionPace(perSecond: $0, loadTransactions: loadTransactions ?? 100_000)
            }
        }

        func history() throws -> KeyValueHistory {
            try KeyValueHistory(seed: seed, keyCount: keys, writesPerTransaction: writesPerTransaction)
        }

        func run() throws {
            switch role {
            case .drill: try runDrill()
            case .primary: try runPrimary()
            case .verify: try runVerify()
            case .alternate: try runAlternate()
            case .node: try runNode()
            case .writer: try runWriter()
            }
        }

        private func runDrill() throws {
            let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            var moments = SeededRandom(seed: seed)
            var outcomes: [DrillJSON] = []
            Progress.note(
                """
                drill: backup here, primary process replicating a \(mapMiB) MiB LMDB map every \
                \(epochMilliseconds) ms,\u{20}
                """
                    + (rounds == 1
                        ? "kill -9 after \(killAfterMilliseconds) ms"
                        : "\(rounds) rounds, kill -9 within \(killAfterMilliseconds) ms"))
            for round in 0..<rounds {
                var settings = LMDBFailoverDrill.Settings(
                    history: try KeyValueHistory(
                        seed: seed &+ UInt64(round), keyCount: keys, writesPerTransaction: writesPerTransaction))
                settings.mapBytes = mapMiB << 20
                settings.epochMilliseconds = epochMilliseconds
                let killAfter =
                    rounds == 1 ? killAfterMilliseconds : Int(moments.next() % UInt64(killAfterMilliseconds + 1))
                settings.killAfter = .milliseconds(killAfter)
                let drill = LMDBFailoverDrill(settings: settings, executable: executable)
                let outcome: LMDBFailoverDrill.Outcome
                do {
                    outcome = try drill.run { Progress.note($0) }
                } catch let mismatch as LMDBReplicaVerifier.Mismatch {
                    throw ExampleFailure(
                        """
                        round \(round + 1) (seed \(settings.history.seed), kill after \(killAfter) ms): the \
                        replica is wrong: \(mismatch)
                        """
                    )
                }
                outcomes.append(DrillJSON(outcome, seed: settings.history.seed, killAfterMilliseconds: killAfter))
                if !json { printOutcome(outcome, round: rounds == 1 ? nil : round + 1, killAfter: killAfter) }
            }
            if json {
                print(try JSONOutput.encode(rounds == 1 ? AnyEncodable(outcomes[0]) : AnyEncodable(outcomes)))
            } else if rounds > 1 {
                let verified = outcomes.filter { $0.replicaTransactions != nil }.count
                print(
                    """
                    \(rounds) drills: every replica opened and held exactly a committed prefix with every \
                    acknowledged transaction\u{20}
                    """
                        + """
                        (\(verified) failed over holding an epoch, \(rounds - verified) killed before the first \
                        epoch)
                        """
                )
            }
        }

        private func runPrimary() throws {
            guard let backup, let database else { return }
            var configuration = PrimaryConfiguration(backup: try Endpoint(parsing: backup))
            configuration.engine = EngineConfiguration(mode: try ReplicationMode.parse(mode))
            configuration.epochInterval = .milliseconds(epochMilliseconds)
            configuration.reconnectWindow = .zero
            let store = try ReplicatedKeyValueStore(
                path: database, mapBytes: mapMiB << 20, history: try history(),
                configuration: configuration)
            let deadline = seconds
            let statistics = try store.run(
                until: { progress in deadline.map { progress.seconds >= $0 } ?? false },
                pace: try pace(),
                acknowledged: { transaction in
                    // One write per release, unbuffered: the drill reads the lines from a pipe and kills at any moment.
                    var line = "acknowledged \(transaction)\n"
                    line.withUTF8 { _ = write(STDOUT_FILENO, $0.baseAddress, $0.count) }
                })
            Progress.note(
                """
                primary: \(statistics.transactions) transactions in \(String(format: "%.1f", statistics.seconds)) \
                s, all acknowledged
                """
            )
        }

        private func runAlternate() throws {
            var settings = LMDBAlternatingDrill.Settings(history: try history())
            settings.failovers = failovers
            settings.mapBytes = mapMiB << 20
            settings.epochMilliseconds = epochMilliseconds
            settings.primaryTimeout = .milliseconds(primaryTimeoutMilliseconds)
            settings.seed = seed
            settings.writesWhileUnprotected = writesWhileUnprotected
            settings.fetchesBlockHashes = blockHashes
            settings.pace = try pace()
            let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            Progress.note(
                """
                alternate: nodes A (primary) and B (backup) replicating a \(mapMiB) MiB LMDB map every \
                \(epochMilliseconds) ms;\u{20}
                """
                    + "\(failovers) failovers, each killing the primary with SIGKILL")
            let outcome: LMDBAlternatingDrill.Outcome
            do {
                outcome = try LMDBAlternatingDrill(settings: settings, executable: executable).run { Progress.note($0) }
            } catch let mismatch as LMDBReplicaVerifier.Mismatch {
                throw ExampleFailure("a replica is wrong: \(mismatch)")
            }
            if json {
                print(try JSONOutput.encode(AlternateJSON(outcome)))
                return
            }
            printAlternateOutcome(outcome)
        }

        private func runNode() throws {
            guard let database, let peer else { return }
            var settings = LMDBNode.Settings(
                history: try history(), database: database, listenPort: listenPort, peer: try Endpoint(parsing: peer))
            settings.mapBytes = mapMiB << 20
            settings.epochMilliseconds = epochMilliseconds
            settings.primaryTimeout = .milliseconds(primaryTimeoutMilliseconds)
            settings.mode = try ReplicationMode.parse(mode)
            settings.writesWhileUnprotected = writesWhileUnprotected
            settings.fetchesBlockHashes = blockHashes
            settings.pace = try pace()
            let stop = StopSignals()
            let node = LMDBNode(settings: settings) { line in
                // One write per line, unbuffered: the drill reads the lines from a pipe and kills at any moment.
                var text = line + "\n"
                text.withUTF8 { _ = write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            }
            let ending = try node.run(startAsPrimary: start == "primary", shouldStop: { stop.received != nil })
            if case .stoodDown(let reason) = ending { throw ExampleFailure("node stood down: \(reason)") }
        }

        private func runVerify() throws {
            guard let image else { return }
            do {
                let report = try LMDBReplicaVerifier.verify(
                    path: image, mapBytes: mapMiB << 20, history: try history(), acknowledged: acknowledged)
                print(
                    """
                    replica: LMDB opened it; it holds exactly the first \(report.transactions) transactions \
                    (\(report.keys) keys)
                    """
                )
            } catch let mismatch as LMDBReplicaVerifier.Mismatch {
                throw ExampleFailure("the replica is wrong: \(mismatch)")
            }
        }
    }

    /// An example whose check failed: printed as the reason, exit status 1.
    struct ExampleFailure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}
