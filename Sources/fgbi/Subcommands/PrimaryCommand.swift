import ArgumentParser
import FGBI
import FGBIBench
import FGBICoordination
import Foundation

extension FGBICommand {
    /// `fgbi primary`: replicates a built-in workload's memory to a backup.
    struct PrimaryCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "primary",
            abstract: "Replicate a region written by a built-in workload to an `fgbi backup`.",
            discussion: """
                userfaultfd sees only the writes of the process that registered the memory, so `fgbi primary`
                replicates memory it writes itself (a synthetic workload with writer threads, paused at each
                epoch boundary); programs replicate their own memory through the library (Primary). Both ends
                must be given the same region size and block size (or the same --config file). A key is required unless both ends are on
                loopback. Each session first synchronises the backup while the workload runs (pre-copy rounds;
                a backup that holds an epoch sends page hashes and receives only what differs); when the backup
                is lost, the primary keeps trying to reach it for --reconnect-s seconds.
                Examples:
                  fgbi backup --listen 127.0.0.1:7070 --region-mib 256 &
                  fgbi primary --backup 127.0.0.1:7070 --region-mib 256 --workload sparse --duration 10
                  fgbi primary --backup 10.0.0.2:7070 --key-file /etc/fgbi/key --epoch-ms 50
                  fgbi primary --backup 10.0.0.2:7070 --key-file /etc/fgbi/key --etcd http://10.0.0.9:2379 --guest-name db1
                  fgbi primary --guest name=web,backup=127.0.0.1:7070 --guest name=db,backup=127.0.0.1:7071,region-mib=128
                  fgbi primary --backup 10.0.0.1:7070 --memory-file /dev/shm/db1 --continue-after-epoch 4411 (a taken-over replica)
                A named guest's backup must carry the same name (fgbi backup --guest-name web): the handshake
                names the guest and derives its keys from the name.
                With --etcd the primary holds a lease on /fgbi/CLUSTER/GUEST/primary with a fencing term
                (Docs/OPERATIONS.md; with --guest specs, one per guest, named by the spec); cut from etcd for a
                lease TTL, it confirms no more epochs, halts and exits with 12 (lost primaryship).
                """)

        @OptionGroup var memory: MemoryOptions

        @OptionGroup(title: "Coordination") var coordination: CoordinationOptions

        @Option(name: .customLong("acquire-wait-s"), help: "With --etcd: how long to keep trying while another node holds primaryship of the guest.")
        var acquireWaitSeconds = 0.0

        @Flag(name: .customLong("print-events"),
              help: "Print `event ... at NS` lines on standard output (each commit confirmed, primaryship lost; NS: monotonic clock), for drills.")
        var printEvents = false

        @Option(name: .customLong("continue-after-epoch"),
                help: "A backup taking over: the epoch its replica holds (FGBI_EPOCH); this primary numbers its epochs on from it. Use with --memory-file holding that replica.")
        var continueAfterEpoch: UInt64?

        @Option(help: "A backup's address, HOST:PORT. Repeat it for several backups of the guest: each epoch is encoded once and sent to each, and --commit says when it counts (several guests: --guest).")
        var backup: [String] = []

        @Option(help: "With several --backup: when an epoch is committed and its output released: all (every backup acknowledged it, the default) or quorum:K (K of them did; a lost or slow backup does not hold commits back and catches up when it returns).")
        var commit = "all"

        @OptionGroup var guests: GuestOptions

        @Option(help: "Workload: sparse, dense, duplicate, zero.")
        var workload = "sparse"

        @Option(name: .customLong("pages-per-second"), help: "Pages the workload writes per second.")
        var pagesPerSecond = 200_000

        @Option(help: "Writer threads.")
        var threads = 2

        @Option(help: "Replication mode: fgbi, page, page-lz4, xbzrle.")
        var mode = "fgbi"

        @Option(help: "Compressor: none, lz4, zstd, zstd:LEVEL (default: the mode's).")
        var compression: String?

        @Option(name: .customLong("compression-minimum-saving"),
                help: "Compress an epoch's body only when a sample of it shrinks by at least this fraction (0 to 1; 0: always; default: 0.10 for fgbi, 0 for the page modes).")
        var compressionMinimumSaving: Double?

        @Option(name: .customLong("encode-threads"),
                help: "Threads that encode each fgbi epoch together while the guest runs (default: half the CPUs, at most 4).")
        var encodeThreads: Int?

        @Option(name: .customLong("capture-buffers"),
                help: "Captured epochs that may wait for the sender, 1-8 (default 1: the lowest acknowledgement latency; 2 keeps the sender busy during the next pause, for longer waits).")
        var captureBuffers: Int?

        @Option(help: "Tracker: uffd-async, uffd-sync, scan.")
        var tracker = "uffd-async"

        @Option(name: .customLong("epoch-ms"), help: "Epoch interval in milliseconds.")
        var epochMilliseconds = 25

        @Option(help: "Seconds to replicate before stopping (a last epoch is committed first; SIGTERM or SIGINT stops the same way sooner).")
        var duration = 10.0

        @Option(name: .customLong("key-file"), help: "Pre-shared key file (or set FGBI_KEY_FILE).")
        var keyFile: String?

        @Flag(help: "Encrypt every frame (ChaCha20-Poly1305) on loopback too; needs a key. Off loopback frames are always encrypted unless --allow-plaintext.")
        var encrypt = false

        @Flag(name: .customLong("allow-plaintext"), help: "Send guest memory in clear to a backup off loopback (the backup must allow it too).")
        var allowPlaintext = false

        @OptionGroup var observability: ObservabilityOptions

        @Flag(name: .customLong("print-epoch-digests"),
              help: "Print `epoch N digest H` on standard output as each epoch is captured (H: XXH3 of the region, taken in the pause), for fault-injection checks.")
        var printEpochDigests = false

        @Flag(name: .customLong("no-precopy"), help: "Synchronise with one full epoch taken with the workload paused, not pre-copy rounds.")
        var noPrecopy = false

        @Flag(name: .customLong("no-block-hashes"), help: "Resynchronise by page hashes only: pages that differ from the backup's go whole (by default the backup sends block hashes for them and only differing blocks go).")
        var noBlockHashes = false

        @Option(name: .customLong("precopy-rounds"), help: "Pre-copy rounds at most (the first covers every page).")
        var precopyRounds = 6

        @Option(name: .customLong("reconnect-s"), help: "Seconds to keep trying to reach a lost backup (0: stop at once).")
        var reconnectSeconds = 30.0

        @Option(name: .customLong("send-path"),
                help: "How frames are written: automatic (= socket, measured fastest here), socket (sendmsg), uring (io_uring SENDMSG), uring-zc[:MIN] (SENDMSG_ZC from MIN bytes), by-size[:N] (sendmsg below N, io_uring above; sendmsg alone without io_uring).")
        var sendPath = "automatic"

        @Option(name: .customLong("capture-cpus"),
                help: "Comma-separated CPUs the guest leaves idle while paused (its vCPUs'): each epoch's capture runs there, one thread each, keeping the guest's pages in its own caches.")
        var captureCPUs: String?

        @Option(name: .customLong("capture-priority"),
                help: "SCHED_FIFO priority (1-99) for the pause's threads, so a busy replication CPU does not delay them (needs root or CAP_SYS_NICE).")
        var capturePriority: Int?

        @Option(name: .customLong("hot-pages"),
                help: "Pages written every epoch that uffd-async stops protecting and captures at every epoch: on, off, or PROMOTE:LEASE:MAXPAGES[:full] (on = 2:16:16384; full: leases never end early; fgbi and xbzrle modes only).")
        var hotPages = "on"

        func validate() throws {
            guard (1...100).contains(precopyRounds) else { throw ValidationError("--precopy-rounds must be between 1 and 100") }
            guard (0...86_400).contains(reconnectSeconds) else { throw ValidationError("--reconnect-s must be between 0 and 86400") }
            guard (1...10_000).contains(epochMilliseconds) else { throw ValidationError("--epoch-ms must be between 1 and 10000") }
            guard duration > 0 else { throw ValidationError("--duration must be positive") }
            guard (1...64).contains(threads) else { throw ValidationError("--threads must be between 1 and 64") }
            guard pagesPerSecond > 0 else { throw ValidationError("--pages-per-second must be positive") }
            guard (0...86_400).contains(acquireWaitSeconds) else { throw ValidationError("--acquire-wait-s must be between 0 and 86400") }
            try guests.validate(backup: backup.first, printEpochDigests: printEpochDigests)
            if backup.count > 1, !guests.guests.isEmpty { throw ValidationError("several --backup take one guest, not --guest specs") }

            if !guests.guests.isEmpty, memory.memoryFile != nil || continueAfterEpoch != nil {
                throw ValidationError("--memory-file and --continue-after-epoch take one guest (--backup), not --guest specs")
            }
            if !guests.guests.isEmpty, coordination.guestName != nil {
                throw ValidationError("--guest-name names the single guest of --backup; with --guest, each spec's name= is its name in etcd")
            }
            _ = try makeConfiguration()
            _ = try memory.geometry()
        }

        func makeConfiguration() throws -> PrimaryConfiguration {
            do {
                guard let policy = CommitPolicy(commit) else { throw ValidationError("--commit '\(commit)': choose all or quorum:K") }
                var configuration = PrimaryConfiguration(backups: try (backup.isEmpty ? [GuestOptions.perGuestBackup] : backup).map { try Endpoint(parsing: $0) },
                                                         commitPolicy: policy)
                try policy.check(backups: configuration.backups.count)
                configuration.engine = EngineConfiguration(mode: try ReplicationMode.parse(mode), blockSize: memory.blockSize,
                                                           compression: try compression.map { try Compression.parse($0) })
                if let compressionMinimumSaving, !(0...1).contains(compressionMinimumSaving) {
                    throw ValidationError("--compression-minimum-saving must be between 0 and 1")
                }
                configuration.engine.compressionMinimumSaving = compressionMinimumSaving
                if let encodeThreads {
                    guard (1...EngineConfiguration.maximumEncodeThreads).contains(encodeThreads) else {
                        throw ValidationError("--encode-threads must be between 1 and \(EngineConfiguration.maximumEncodeThreads)")
                    }
                    configuration.engine.encodeThreads = encodeThreads
                }
                if let captureBuffers {
                    guard (1...8).contains(captureBuffers) else { throw ValidationError("--capture-buffers must be between 1 and 8") }
                    configuration.captureBuffers = captureBuffers
                }
                if let captureCPUs {
                    let online = ThreadScheduling.onlineCPUCount
                    configuration.engine.captureCPUs = try CommaList.parse(captureCPUs, option: "--capture-cpus") {
                        guard let cpu = Int($0), (0..<min(online, 64)).contains(cpu) else {
                            throw ValidationError("--capture-cpus: '\($0)' is not an online CPU (0 to \(min(online, 64) - 1))")
                        }
                        return cpu
                    }
                }
                if let capturePriority {
                    guard ThreadScheduling.realtimePriorities.contains(capturePriority) else { throw ValidationError("--capture-priority must be between 1 and 99") }
                    configuration.engine.captureRealtimePriority = capturePriority
                }
                configuration.tracker = try TrackerKind.parse(tracker)
                configuration.hotPages = try HotPagePolicy.parse(hotPages)
                configuration.epochInterval = .milliseconds(epochMilliseconds)
                configuration.precopy.enabled = !noPrecopy
                configuration.precopy.maximumRounds = precopyRounds
                configuration.precopy.fetchesBlockHashes = !noBlockHashes
                configuration.reconnectWindow = .milliseconds(Int64(reconnectSeconds * 1000))
                guard let path = FrameSendPath(sendPath) else {
                    throw ValidationError("--send-path '\(sendPath)': choose automatic, socket, uring, uring-zc[:MIN] or by-size:N")
                }
                configuration.sendPath = path
                _ = try SyntheticWorkload.parse(workload)
                return configuration
            } catch let error as FGBIError {
                throw ValidationError("\(error)")
            }
        }

        func run() throws {
            let metricsEndpoint = try observability.bootstrap()
            defer { metricsEndpoint?.stop() }
            var configuration = try makeConfiguration()
            configuration.key = try keyFile.map { try PresharedKey(file: $0) } ?? PresharedKey.fromEnvironment()
            configuration.encrypt = encrypt
            configuration.allowPlaintext = allowPlaintext
            configuration.guestName = coordination.guestName
            configuration.clusterName = coordination.handshakeCluster
            if encrypt && configuration.key == nil && guests.guests.isEmpty { throw ValidationError("--encrypt needs --key-file or FGBI_KEY_FILE") }
            let stop = StopSignals { number in
                Progress.note("primary: \(StopSignals.name(number)): stopping after a last epoch (send it again to stop at once)")
            }
            if !guests.guests.isEmpty { return try runGuests(configuration, stop: stop) }
            let (region, heldContent) = try memory.makeRegion()
            // A memory file that holds content (a replica taken over, a restarted node's) is the guest's memory.
            if !heldContent { SyntheticWorkload.fillInitial(region, seed: 1) }
            configuration.continuesAfterEpoch = continueAfterEpoch
            let driver = WorkloadDriver(memory: region, workload: try SyntheticWorkload.parse(workload),
                                        threads: threads, pagesPerSecond: pagesPerSecond)
            let digests = printEpochDigests ? EpochDigests(regions: [region], onRecord: { epoch, digest in
                // One unbuffered write per epoch, before the epoch can be sent: a kill never hides a committed one.
                var line = "epoch \(epoch) digest \(String(digest, radix: 16))\n"
                line.withUTF8 { _ = write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            }) : nil
            let lease = try acquireLease()
            configuration.authority = lease
            defer { lease?.release() }
            if let number = stop.received {
                Progress.note("primary: \(StopSignals.name(number)) before replication started: nothing to stop")
                return
            }
            let primary = try Primary(regions: [region], configuration: configuration,
                                      hooks: digests.map { $0.hooks(wrapping: driver.hooks) } ?? driver.hooks)
            digests?.attach(primary)
            let term = lease?.term ?? 0
            let commitEvents = printEvents ? primary.commits() : nil
            let printed = DispatchSemaphore(value: 0)
            if let commitEvents {
                Task.detached {
                    for await epoch in commitEvents { EventLine.print("commit epoch \(epoch) term \(term)") }
                    printed.signal()
                }
            }
            Progress.note("primary: connecting to \(configuration.backups.map(\.description).joined(separator: ", "))")
            try primary.start()
            driver.start()
            let started = Date()
            var lastReport = started
            var everyBackupHolds: UInt64?
            while Date().timeIntervalSince(started) < duration, primary.isRunning, stop.received == nil {
                Thread.sleep(forTimeInterval: printEvents ? 0.01 : 0.1)
                if printEvents, configuration.backups.count > 1 {
                    everyBackupHolds = Self.printEveryBackupHolds(primary.statistics, after: everyBackupHolds)
                }
                if Date().timeIntervalSince(lastReport) >= 1 {
                    lastReport = Date()
                    Self.noteProgress(primary.statistics, backups: configuration.backups.count)
                }
            }
            if let lost = primary.failure as? LostPrimaryship, printEvents { EventLine.print("lost term \(lost.term)") }
            driver.stop()  // the last epoch then holds everything the workload wrote
            let last: UInt64?
            do {
                last = try primary.stop()
                if commitEvents != nil { _ = printed.wait(timeout: .now() + 1) }
            } catch let lost as LostPrimaryship {
                Progress.note("primary: \(lost)")
                throw ExitCode(12)
            }
            printSummary(primary.statistics, lastCommitted: last, stoppedBy: stop.received, pagesWritten: driver.written)
            if configuration.backups.count > 1 {
                let s = primary.statistics
                print("primary: \(configuration.backups.count) backups, commit \(configuration.commitPolicy); last epoch acknowledged by each: "
                      + s.backupAcknowledgements.map { $0.map(String.init) ?? "none" }.joined(separator: ", ")
                      + "; backups lost \(s.backupsLost), caught up \(s.catchUps)")
            }
        }

        /// With --etcd, primaryship of the guest: the lease this node holds (waiting up to --acquire-wait-s).
        private func acquireLease() throws -> EtcdPrimaryLease? {
            guard let (client, keys, node) = try coordination.connect(role: "primary") else { return nil }
            let held = try EtcdPrimaryLease.acquire(client: client, keys: keys, node: node, ttlSeconds: coordination.leaseTTLSeconds,
                                                    wait: .milliseconds(Int64(acquireWaitSeconds * 1000)))
            Progress.note("primary: node \(node) is primary of guest \(keys.guest) with term \(held.term) (lease TTL \(held.ttlSeconds) s)")
            return held
        }

        /// The closing lines: the synchronisation, why it stopped, and what was sent.
        private func printSummary(_ s: ReplicationStatistics, lastCommitted last: UInt64?, stoppedBy signal: Int32?, pagesWritten: Int) {
            if let sync = s.lastSynchronisation {
                print("primary: \(sync.resynchronised ? "resynchronised" : "synchronised") in \(sync.rounds) pre-copy round(s) "
                      + "(pages per round \(sync.pagesPerRound.map(String.init).joined(separator: ", "))) in "
                      + "\(formatted(sync.milliseconds, 0)) ms, \(formatted(Double(s.precopyBytes) / 1e6, 1)) MB of pre-copy"
                      + (sync.resynchronised ? ", of it \(formatted(Double(sync.firstPassBytes) / 1e6, 2)) MB in the first pass "
                         + "(\(sync.pagesAlreadyHeld) pages already held"
                         + (sync.blockHashPages > 0 ? "; block hashes of \(sync.blockHashPages) differing pages, "
                            + "\(formatted(Double(sync.blockHashBytes) / 1e6, 2)) MB from the backup" : "") + ")" : ""))
            }
            if let number = signal { print("primary: stopped by \(StopSignals.name(number)) after a last epoch") }
            print("primary: frames sent with \(s.sendPath); \(s.epochsSent) epochs sent, last committed epoch \(last.map(String.init) ?? "none"), "
                  + "\(formatted(Double(s.bytesSent) / 1e6, 1)) MB sent, pause p50 \(formatted(s.pausePercentile(0.5))) ms "
                  + "p99 \(formatted(s.pausePercentile(0.99))) ms, \(pagesWritten) pages written")
        }

        /// Writes the once-a-second progress line to standard error.
        static func noteProgress(_ s: ReplicationStatistics, backups: Int) {
            Progress.note("epoch \(s.lastCapturedEpoch.map(String.init) ?? "-"), committed \(s.lastCommittedEpoch.map(String.init) ?? "-"), "
                          + "lag \(s.lag), sent \(formatted(Double(s.bytesSent + s.precopyBytes) / 1e6, 1)) MB, "
                          + "pause p99 \(formatted(s.pausePercentile(0.99))) ms, backpressure waits \(s.backpressureWaits)"
                          + (s.reconnects > 0 ? ", reconnects \(s.reconnects)" : "")
                          + (backups > 1 ? ", backups connected \(s.backupsConnected) of \(backups)" : ""))
        }

        /// With several backups, prints `event every-backup-holds epoch N` when the oldest epoch acknowledged by every
        /// backup passes `previous` (for drills that wait until each backup holds a committed epoch); returns it.
        static func printEveryBackupHolds(_ statistics: ReplicationStatistics, after previous: UInt64?) -> UInt64? {
            let acknowledged = statistics.backupAcknowledgements
            guard acknowledged.allSatisfy({ $0 != nil }), let oldest = acknowledged.compactMap({ $0 }).min() else { return previous }
            if oldest != previous { EventLine.print("every-backup-holds epoch \(oldest)") }
            return oldest
        }
    }
}
