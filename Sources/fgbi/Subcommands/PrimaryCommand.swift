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
                must be given the same region size and block size (or the same --config file). A key is required \
                unless both ends are on
                loopback. Each session first synchronises the backup while the workload runs (pre-copy rounds;
                a backup that holds an epoch sends page hashes and receives only what differs); when the backup
                is lost, the primary keeps trying to reach it for --reconnect-s seconds.
                Examples:
                  fgbi backup --listen 127.0.0.1:7070 --region-mib 256 &
                  fgbi primary --backup 127.0.0.1:7070 --region-mib 256 --workload sparse --duration 10
                  fgbi primary --backup 10.0.0.2:7070 --key-file /etc/fgbi/key --epoch-ms 50
                  fgbi primary --backup 10.0.0.2:7070 --key-file /etc/fgbi/key --etcd http://10.0.0.9:2379 \
                --guest-name db1
                  fgbi primary --guest name=web,backup=127.0.0.1:7070 --guest \
                name=db,backup=127.0.0.1:7071,region-mib=128
                  fgbi primary --backup 10.0.0.1:7070 --memory-file /dev/shm/db1 --continue-after-epoch 4411 (a \
                taken-over replica)
                A named guest's backup must carry the same name (fgbi backup --guest-name web): the handshake
                names the guest and derives its keys from the name.
                With --etcd the primary holds a lease on /fgbi/CLUSTER/GUEST/primary with a fencing term
                (Docs/OPERATIONS.md; with --guest specs, one per guest, named by the spec); cut from etcd for a
                lease TTL, it confirms no more epochs, halts and exits with 12 (lost primaryship).
                """)

        @OptionGroup var memory: MemoryOptions

        @OptionGroup(title: "Coordination") var coordination: CoordinationOptions

        @Option(
            name: .customLong("acquire-wait-s"),
            help: "With --etcd: how long to keep trying while another node holds primaryship of the guest.")
        var acquireWaitSeconds = 0.0

        @Flag(
            name: .customLong("print-events"),
            help:
                """
                Print `event ... at NS` lines on standard output (each commit confirmed, primaryship lost; NS: \
                monotonic clock), for drills.
                """
        )
        var printEvents = false

        @Option(
            name: .customLong("continue-after-epoch"),
            help:
                """
                A backup taking over: the epoch its replica holds (FGBI_EPOCH); this primary numbers its epochs \
                on from it. Use with --memory-file holding that replica.
                """
        )
        var continueAfterEpoch: UInt64?

        @Flag(
            name: .customLong("replica-is-latest"),
            help:
                """
                With --etcd and --continue-after-epoch: you vouch that this memory holds the guest's last committed \
                epoch (the last primary stopped cleanly with this node as its backup), so primaryship is acquired \
                without checking that etcd's last promotion named this node at that epoch.
                """
        )
        var replicaIsLatest = false

        @Option(
            name: .customLong("etcd-handover"),
            help: ArgumentHelp(
                "LEASE:TERM: the etcd lease a promoted `fgbi backup --then-primary` hands over (set by it).",
                visibility: .hidden))
        var etcdHandover: String?

        @Option(
            help:
                """
                A backup's address, HOST:PORT. Repeat it for several backups of the guest: each epoch is encoded \
                once and sent to each, and --commit says when it counts (several guests: --guest).
                """
        )
        var backup: [String] = []

        @Option(
            help:
                """
                With several --backup: when an epoch is committed and its output released: all (every backup \
                acknowledged it, the default) or quorum:K (K of them did; a lost or slow backup does not hold \
                commits back and catches up when it returns).
                """
        )
        var commit = "all"

        @Option(
            name: .customLong("catch-up-mib"),
            help:
                """
                With several --backup: encoded frames kept for a backup that is behind or lost, MiB (default 256). \
                One that returns within them catches up from them; further behind, every backup resynchronises. \
                Size it above the longest outage to ride out times the encoded rate.
                """
        )
        var catchUpMiB: Int?

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

        @Option(
            name: .customLong("compression-minimum-saving"),
            help:
                """
                Compress an epoch's body only when a sample of it shrinks by at least this fraction (0 to 1; 0: \
                always; default: 0.10 for fgbi, 0 for the page modes).
                """
        )
        var compressionMinimumSaving: Double?

        @OptionGroup var cache: CacheBudgetOption

        @Option(
            name: .customLong("encode-threads"),
            help:
                "Threads that encode each fgbi epoch together while the guest runs (default: half the CPUs, at most 4)."
        )
        var encodeThreads: Int?

        @OptionGroup var encoderFeatures: EncoderFeatureOptions

        @Option(
            name: .customLong("capture-buffers"),
            help:
                """
                Captured epochs that may wait for the sender, 1-8 (default 1: the lowest acknowledgement latency; \
                2 keeps the sender busy during the next pause, for longer waits).
                """
        )
        var captureBuffers: Int?

        @Option(help: "Tracker: uffd-async, uffd-sync, scan.")
        var tracker = "uffd-async"

        @Option(name: .customLong("epoch-ms"), help: "Epoch interval in milliseconds.")
        var epochMilliseconds = 25

        @Option(
            help:
                """
                Seconds to replicate before stopping (a last epoch is committed first; SIGTERM or SIGINT stops \
                the same way sooner).
                """
        )
        var duration = 10.0

        @Option(name: .customLong("key-file"), help: "Pre-shared key file (or set FGBI_KEY_FILE).")
        var keyFile: String?

        @Flag(
            help:
                """
                Encrypt every frame (ChaCha20-Poly1305) on loopback too; needs a key. Off loopback frames are \
                always encrypted unless --allow-plaintext.
                """
        )
        var encrypt = false

        @Flag(
            name: .customLong("allow-plaintext"),
            help: "Send guest memory in clear to a backup off loopback (the backup must allow it too).")
        var allowPlaintext = false

        @OptionGroup var observability: ObservabilityOptions

        @Flag(
            name: .customLong("print-epoch-digests"),
            help:
                """
                Print `epoch N digest H` on standard output as each epoch is captured (H: XXH3 of the region, \
                taken in the pause), for fault-injection checks.
                """
        )
        var printEpochDigests = false

        @Flag(
            name: .customLong("no-precopy"),
            help: "Synchronise with one full epoch taken with the workload paused, not pre-copy rounds.")
        var noPrecopy = false

        @Flag(
            name: .customLong("learn-whole-first-pass"),
            help:
                """
                Teach the encoder's store every page of the synchronisation's first pass, not only the pages it \
                keeps past the pass: fewer bytes (copies found within the pass), more CPU (Docs/OPERATIONS.md).
                """
        )
        var learnWholeFirstPass = false

        @Flag(
            name: .customLong("no-block-hashes"),
            help:
                """
                Resynchronise by page hashes only: pages that differ from the backup's go whole (by default the \
                backup sends block hashes for them and only differing blocks go).
                """
        )
        var noBlockHashes = false

        @Option(name: .customLong("precopy-rounds"), help: "Pre-copy rounds at most (the first covers every page).")
        var precopyRounds = 6

        @Option(
            name: .customLong("reconnect-s"), help: "Seconds to keep trying to reach a lost backup (0: stop at once).")
        var reconnectSeconds = 30.0

        @Option(
            name: .customLong("send-path"),
            help:
                """
                How frames are written: automatic (= socket, measured fastest here), socket (sendmsg), uring \
                (io_uring SENDMSG), uring-zc[:MIN] (SENDMSG_ZC from MIN bytes), by-size[:N] (sendmsg below N, \
                io_uring above; sendmsg alone without io_uring).
                """
        )
        var sendPath = "automatic"

        @Option(
            name: .customLong("capture-cpus"),
            help:
                """
                Comma-separated CPUs the guest leaves idle while paused (its vCPUs'): each epoch's capture runs \
                there, one thread each, keeping the guest's pages in its own caches.
                """
        )
        var captureCPUs: String?

        @Option(
            name: .customLong("capture-priority"),
            help:
                """
                SCHED_FIFO priority (1-99) for the pause's threads, so a busy replication CPU does not delay them \
                (needs root or CAP_SYS_NICE).
                """
        )
        var capturePriority: Int?

        @Option(
            name: .customLong("hot-pages"),
            help:
                """
                Pages written every epoch that uffd-async stops protecting and captures at every epoch: on, off, \
                or PROMOTE:LEASE:MAXPAGES[:full] (on = 2:16:16384; full: leases never end early; fgbi and xbzrle \
                modes only).
                """
        )
        var hotPages = "on"

        func run() throws {
            let metricsEndpoint = try observability.bootstrap()
            defer { metricsEndpoint?.stop() }
            var configuration = try makeConfiguration()
            configuration.key = try keyFile.map { try PresharedKey(file: $0) } ?? PresharedKey.fromEnvironment()
            configuration.encrypt = encrypt
            configuration.allowPlaintext = allowPlaintext
            configuration.guestName = coordination.guestName
            configuration.clusterName = coordination.handshakeCluster
            if encrypt && configuration.key == nil && guests.guests.isEmpty {
                throw ValidationError("--encrypt needs --key-file or FGBI_KEY_FILE")
            }
            let stop = StopSignals { number in
                Progress.note(
                    "primary: \(StopSignals.name(number)): stopping after a last epoch (send it again to stop at once)")
            }
            if !guests.guests.isEmpty { return try runGuests(configuration, stop: stop) }
            let (region, heldContent) = try memory.makeRegion()
            // A memory file that holds content (a replica taken over, a restarted node's) is the guest's memory.
            if !heldContent { SyntheticWorkload.fillInitial(region, seed: 1) }
            configuration.continuesAfterEpoch = continueAfterEpoch
            let driver = WorkloadDriver(
                memory: region, workload: try SyntheticWorkload.parse(workload),
                threads: threads, pagesPerSecond: pagesPerSecond)
            let digests = printEpochDigests ? Self.printingDigests(of: region) : nil
            let lease = try acquireLease()
            configuration.authority = lease
            defer { lease?.release() }
            if let number = stop.received {
                Progress.note("primary: \(StopSignals.name(number)) before replication started: nothing to stop")
                return
            }
            let primary = try Primary(
                regions: [region], configuration: configuration,
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
            waitWhileReplicating(primary, backups: configuration.backups.count, stop: stop)
            if let lost = primary.failure as? LostPrimaryship, printEvents { EventLine.print("lost term \(lost.term)") }
            driver.stop() // the last epoch then holds everything the workload wrote
            let last: UInt64?
            do {
                last = try primary.stop()
                if commitEvents != nil { _ = printed.wait(timeout: .now() + 1) }
            } catch let lost as LostPrimaryship {
                Progress.note("primary: \(lost)")
                throw ExitCode(12)
            }
            printSummary(
                primary.statistics, lastCommitted: last, stoppedBy: stop.received, pagesWritten: driver.written)
            if configuration.backups.count > 1 {
                Self.printBackups(primary.statistics, policy: configuration.commitPolicy)
            }
        }

        /// With --etcd, primaryship of the guest: the lease this node holds (waiting up to --acquire-wait-s).
        private func acquireLease() throws -> EtcdPrimaryLease? {
            guard let (client, keys, node) = try coordination.connect(role: "primary") else { return nil }
            let wait = Duration.milliseconds(Int64(acquireWaitSeconds * 1000))
            let held: EtcdPrimaryLease
            if let etcdHandover {
                held = try EtcdPrimaryLease.adopt(
                    client: client, keys: keys, node: node,
                    handover: try EtcdPrimaryLease.Handover(parsing: etcdHandover))
            } else if let continueAfterEpoch, !replicaIsLatest {
                // A replica this node was promoted with: served again only if no other promotion came since.
                held = try EtcdPrimaryLease.acquire(
                    client: client, keys: keys, node: node, ttlSeconds: coordination.leaseTTLSeconds,
                    continuingAfter: continueAfterEpoch, wait: wait)
            } else {
                held = try EtcdPrimaryLease.acquire(
                    client: client, keys: keys, node: node, ttlSeconds: coordination.leaseTTLSeconds, wait: wait)
            }
            Progress.note(
                """
                primary: node \(node) is primary of guest \(keys.guest) with term \(held.term) (lease TTL \
                \(held.ttlSeconds) s)
                """
            )
            return held
        }
    }
}
