import ArgumentParser
import FGBI
import FGBICoordination
import Foundation
import Logging

extension FGBICommand {
    /// `fgbi backup`: receives epochs into a replica and fails over when the primary goes silent.
    struct BackupCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "backup",
            abstract: "Receive a primary's epochs into a replica; fail over when it goes silent.",
            discussion: """
                Applies each epoch atomically and acknowledges it. When nothing arrives from the primary for
                --timeout-ms, freezes the replica at the last applied epoch, writes it to --image (with a JSON
                journal beside it), runs --on-failover with FGBI_EPOCH, FGBI_IMAGE and FGBI_TERM set, and exits
                with 10. With --etcd it first waits until the primary's lease in etcd has expired (accepting the
                primary back if it returns meanwhile), then promotes itself with a new fencing term in one etcd
                transaction; if another node became primary it exits with 11 instead. Losing etcd never promotes.
                A primary that ends on purpose makes it exit with 0. With --state-dir every epoch is journaled
                (and synced) before it is acknowledged; a backup restarted on the same directory resumes at its
                last committed epoch and the primary resynchronises it with the pages that differ.
                Examples:
                  fgbi backup --listen 0.0.0.0:7070 --region-mib 256 --key-file /etc/fgbi/key --image \
                /var/lib/fgbi/replica.img
                  fgbi backup --listen 127.0.0.1:7070 --region-mib 64 --on-failover 'echo failed over at $FGBI_EPOCH'
                  fgbi backup --listen 127.0.0.1:7070 --region-mib 64 --state-dir /var/lib/fgbi/state
                  fgbi backup --listen 0.0.0.0:7070 --key-file /etc/fgbi/key --etcd http://10.0.0.9:2379 --guest db1 \
                --image /var/lib/fgbi/db1.img
                The whole cycle (Docs/OPERATIONS.md): with --memory-file the replica lives in a file on tmpfs;
                --then-primary -- ARGS makes this process, once it has taken over, become `fgbi primary ARGS` on
                that file, numbering its epochs on from the replica's (it replaces itself: same process id); a former
                primary restarted as `fgbi backup --memory-file ITS-FILE --rejoin` receives only what differs.
                  fgbi backup --listen 0.0.0.0:7070 --key-file /etc/fgbi/key --memory-file /dev/shm/db1 \
                --then-primary -- --backup 10.0.0.1:7070 --key-file /etc/fgbi/key --duration 86400
                  fgbi backup --listen 0.0.0.0:7070 --key-file /etc/fgbi/key --memory-file /dev/shm/db1 --rejoin
                """)

        @OptionGroup var memory: MemoryOptions

        @Option(help: "Address to listen on, HOST:PORT.")
        var listen = "127.0.0.1:7070"

        @Option(name: .customLong("timeout-ms"), help: "Declare the primary dead after this long without a frame.")
        var timeoutMilliseconds = 100

        @Option(help: "Write the replica here on failover.")
        var image: String?

        @Option(name: .customLong("on-failover"), help: "Shell command to run after failing over.")
        var onFailover: String?

        @Option(name: .customLong("key-file"), help: "Pre-shared key file (or set FGBI_KEY_FILE).")
        var keyFile: String?

        @Flag(
            name: .customLong("require-encryption"),
            help:
                """
                Refuse primaries that do not encrypt their frames, on loopback too (off loopback they are refused \
                unless --allow-plaintext).
                """
        )
        var requireEncryption = false

        @Flag(name: .customLong("allow-plaintext"), help: "Accept a primary off loopback that sends in clear.")
        var allowPlaintext = false

        @Option(
            name: .customLong("state-dir"),
            help: "Make every committed epoch durable here (checkpoint image + journal); resume from it on restart.")
        var stateDirectory: String?

        @Flag(
            name: .customLong("no-fsync"),
            help:
                """
                With --state-dir: do not fdatasync the journal before each ack (survives a process crash, not a \
                machine crash).
                """
        )
        var noFsync = false

        @Flag(
            help:
                """
                The --memory-file holds a former primary's memory (this node was the guest's primary): \
                resynchronised with what differs, never taken over before an epoch of the new primary commits.
                """
        )
        var rejoin = false

        @Flag(
            name: .customLong("then-primary"),
            help:
                """
                After taking over, become `fgbi primary` with the arguments after `--` on the --memory-file, with \
                the same --region-mib and --block-size and --continue-after-epoch set; runs after --on-failover.
                """
        )
        var thenPrimary = false

        @Argument(
            parsing: .postTerminator,
            help: "With --then-primary: the arguments of `fgbi primary` (at least --backup HOST:PORT), after `--`.")
        var primaryArguments: [String] = []

        @OptionGroup(title: "Coordination") var coordination: CoordinationOptions

        @Flag(
            name: .customLong("print-events"),
            help:
                """
                Print `event ... at NS` lines on standard output (promoted, failed over, stood down; NS: \
                monotonic clock), for drills.
                """
        )
        var printEvents = false

        @OptionGroup var observability: ObservabilityOptions

        func validate() throws {
            do { _ = try Endpoint(parsing: listen) } catch { throw ValidationError("--listen: \(error)") }
            guard (10...600_000).contains(timeoutMilliseconds) else {
                throw ValidationError("--timeout-ms must be between 10 and 600000")
            }
            _ = try memory.geometry()
            if rejoin || thenPrimary, memory.memoryFile == nil {
                throw ValidationError(
                    """
                    \(rejoin ? "--rejoin" : "--then-primary") needs --memory-file (the memory must outlive this \
                    process)
                    """
                )
            }
            if rejoin, stateDirectory != nil {
                throw ValidationError(
                    "--rejoin holds a former primary's memory; --state-dir holds a replica: choose one")
            }
            if thenPrimary, primaryArguments.isEmpty {
                throw ValidationError(
                    "--then-primary needs the primary's arguments after `--` (at least --backup HOST:PORT)")
            }
            if !thenPrimary, !primaryArguments.isEmpty {
                throw ValidationError("arguments after `--` are for --then-primary")
            }
            // The primary's options may also come from a configuration file (--config, FGBI_CONFIG).
            let primaryUsesEtcd =
                primaryArguments.contains { $0 == "--etcd" || $0.hasPrefix("--etcd=") || $0.hasPrefix("--config") }
                || !(ProcessInfo.processInfo.environment["FGBI_CONFIG"] ?? "").isEmpty
            if thenPrimary, coordination.etcd != nil, !primaryUsesEtcd {
                throw ValidationError(
                    """
                    --then-primary with --etcd: give the primary --etcd too (after `--`): it adopts the lease this \
                    backup is promoted with, and without one the other backups would elect another primary
                    """
                )
            }
        }

        func run() throws {
            let metricsEndpoint = try observability.bootstrap()
            defer { metricsEndpoint?.stop() }
            var configuration = try makeConfiguration()
            var arbiter: EtcdFailoverArbiter?
            if let (client, keys, node) = try coordination.connect(role: "backup") {
                arbiter = try EtcdFailoverArbiter(
                    client: client, keys: keys, node: node, ttlSeconds: coordination.leaseTTLSeconds)
                configuration.arbiter = arbiter
            }
            // After a promotion this node holds primaryship (renewing) while --on-failover runs, and gives it
            // up on exit: what the hook starts acquires it anew (fgbi primary --etcd ... --acquire-wait-s N).
            defer { arbiter?.promotedLease?.release() }
            let (region, heldContent) = try memory.makeRegion()
            if heldContent && !rejoin {
                throw ValidationError(
                    """
                    --memory-file \(memory.memoryFile ?? "") holds content: pass --rejoin if it is a former \
                    primary's memory (resynchronised with what differs), or remove it
                    """
                )
            }
            let backup = try Backup(
                regions: [region], geometry: try memory.geometry(), configuration: configuration,
                logger: Logger(label: "fgbi.backup"), holding: heldContent ? .formerPrimary(lastEpoch: nil) : nil)
            let stop = StopSignals { number in
                Progress.note(
                    """
                    backup: \(StopSignals.name(number)): stopping at the last committed epoch, no failover (send \
                    it again to stop at once)
                    """
                )
                backup.stop()
            }
            Progress.note("backup: listening on \(configuration.listen.host):\(backup.port)")
            let outcome = try backup.serve()
            if let number = stop.received {
                print(
                    """
                    backup: stopped by \(StopSignals.name(number)); replica at epoch \
                    \(outcome.lastEpoch.map(String.init) ?? "none")
                    """
                )
                return
            }
            let term: UInt64?
            switch outcome {
            case .primaryFinished(let epoch):
                print("backup: primary finished; replica at epoch \(epoch.map(String.init) ?? "none")")
                return
            case .stoodDown(let epoch, let reason):
                if printEvents { EventLine.print("stood-down epoch \(epoch.map(String.init) ?? "none")") }
                print("backup: stood down at epoch \(epoch.map(String.init) ?? "none"): \(reason)")
                throw ExitCode(11)
            case .failedOver(let epoch, let reason):
                if printEvents { EventLine.print("failed-over epoch \(epoch.map(String.init) ?? "none")") }
                print("backup: failed over at epoch \(epoch.map(String.init) ?? "none") (\(reason))")
                term = nil
            case .promoted(let epoch, let newTerm, let reason):
                if printEvents { EventLine.print("promoted term \(newTerm) epoch \(epoch.map(String.init) ?? "none")") }
                print(
                    """
                    backup: promoted to primary with term \(newTerm) at epoch \(epoch.map(String.init) ?? "none") \
                    (\(reason))
                    """
                )
                term = newTerm
            }
            if let command = onFailover { try runHook(command, epoch: outcome.lastEpoch, term: term) }
            if thenPrimary, let epoch = outcome.lastEpoch {
                try becomePrimary(continuingAfter: epoch, lease: arbiter?.promotedLease)
            }
            throw ExitCode(10)
        }

        /// ``becomePrimary(continuingAfter:handover:)`` with primaryship going with the process image: the lease
        /// is handed over, never given up, so the guest's primary key stays while this process turns into `fgbi
        /// primary`, which adopts it.
        private func becomePrimary(continuingAfter epoch: UInt64, lease: EtcdPrimaryLease?) throws -> Never {
            let handover = try lease?.handOver()
            do {
                try becomePrimary(continuingAfter: epoch, handover: handover)
            } catch {
                // Nobody will adopt the lease: give it up, so the other backups need not wait it out.
                lease?.revokeUnadopted()
                throw error
            }
        }

        /// The backup's configuration from the options (the coordinator's arbiter excepted).
        private func makeConfiguration() throws -> BackupConfiguration {
            var configuration = BackupConfiguration(listen: try Endpoint(parsing: listen))
            configuration.key = try keyFile.map { try PresharedKey(file: $0) } ?? PresharedKey.fromEnvironment()
            configuration.primaryTimeout = .milliseconds(timeoutMilliseconds)
            configuration.requireEncryption = requireEncryption
            configuration.guestName = coordination.guestName
            configuration.clusterName = coordination.handshakeCluster
            configuration.allowPlaintext = allowPlaintext
            if requireEncryption && configuration.key == nil {
                throw ValidationError("--require-encryption needs --key-file or FGBI_KEY_FILE")
            }
            configuration.imagePath = image
            configuration.stateDirectory = stateDirectory
            configuration.syncEachEpoch = !noFsync
            return configuration
        }

        /// Runs the --on-failover command with FGBI_EPOCH, FGBI_IMAGE and FGBI_TERM set, and waits for it.
        private func runHook(_ command: String, epoch: UInt64?, term: UInt64?) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", command]
            var environment = ProcessInfo.processInfo.environment
            environment["FGBI_EPOCH"] = epoch.map(String.init) ?? ""
            environment["FGBI_IMAGE"] = image ?? ""
            environment["FGBI_TERM"] = term.map(String.init) ?? ""
            process.environment = environment
            try process.run()
            process.waitUntilExit()
            Progress.note("backup: --on-failover exited with \(process.terminationStatus)")
        }

        /// Replaces this process with `fgbi primary` and the arguments after `--` on the memory file, continuing
        /// after `epoch`, adopting the etcd lease handed over when there is one.
        private func becomePrimary(
            continuingAfter epoch: UInt64, handover: EtcdPrimaryLease.Handover?
        ) throws -> Never {
            guard let file = memory.memoryFile else { throw ValidationError("--then-primary needs --memory-file") }
            let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
            let argv =
                [
                    executable, "primary", "--memory-file", file, "--region-mib", String(memory.regionMiB),
                    "--block-size", String(memory.blockSize), "--continue-after-epoch", String(epoch),
                ]
                + (handover.map { ["--etcd-handover", $0.description] } ?? [])
                + primaryArguments
            Progress.note("backup: taking over as `fgbi \(argv.dropFirst().joined(separator: " "))`")
            fflush(nil)
            var pointers = argv.map { strdup($0) } + [nil]
            execv(executable, &pointers)
            throw SystemError(operation: "execv(\(executable))", errno: errno)
        }
    }
}
