import FGBI
import Foundation
import Testing

@Suite(
    "fgbi command line",
    .enabled(if: CommandRunner.executable != nil, "the fgbi executable was not built beside the tests"))
struct CommandLineTests {
    @Test func probeJSONDescribesEveryTracker() throws {
        let outcome = try CommandRunner.run(["probe", "--json"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any])
        #expect(object["kernel_release"] as? String == KernelCapabilities.current.kernelRelease)
        let trackers = try #require(object["trackers"] as? [[String: Any]])
        #expect(trackers.count == TrackerKind.allCases.count * 2)
        #expect(trackers.contains { $0["name"] as? String == "scan (anonymous)" && $0["available"] as? Bool == true })
    }

    @Test(.requiring(.uffdAsync, because: "the tracker benchmarked")) func trackerBenchmarkOfAsyncWriteProtect() throws
    {
        try trackerBenchmarkRunsAndReportsExactCases(.uffdAsync)
    }

    @Test(.requiring(.uffdSync, because: "the tracker benchmarked")) func trackerBenchmarkOfSyncWriteProtect() throws {
        try trackerBenchmarkRunsAndReportsExactCases(.uffdSync)
    }

    @Test(.requiring(.uffdAsync, because: "the floor's tracker figures use async write-protection"))
    func floorProbeMeasuresEveryStepAndFindsEveryWrittenPage() throws {
        let result = try CommandRunner.run(["bench", "floor", "--region-mib", "16", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let figures = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
        var values: [String: Double] = [:]
        for figure in figures { values[figure["metric"] as? String ?? ""] = figure["probe"] as? Double }
        for metric in [
            "xxh3_64B_blocks_GBps", "memcpy_GBps", "xxh3_64B_blocks_GBps_2_threads", "memcpy_GBps_2_threads",
            "copy_1024_scattered_pages_ms", "rehash_4096_written_pages_ms",
            "lz4_GBps_half_compressible", "first_write_after_wp_us_1024", "scan_reprotect_4096_of_4096_pages_ms",
        ] {
            #expect((values[metric] ?? 0) > 0, "\(metric) measured: \(result.stdout)")
        }
        // A small region: counts above it become the whole region, measured once.
        #expect(values["copy_10240_scattered_pages_ms"] == nil)
        #expect(values["scan_found_1024_of_4096_pages"] == 1024)
        #expect(values["scan_found_4096_of_4096_pages"] == 4096)
    }

    @Test func trackerBenchmarkOfScan() throws {
        try trackerBenchmarkRunsAndReportsExactCases(.scan)
    }

    private func trackerBenchmarkRunsAndReportsExactCases(_ tracker: TrackerKind) throws {
        let outcome = try CommandRunner.run([
            "bench", "tracker", "--region-mib", "16", "--pages", "64,all",
            "--repetitions", "2", "--trackers", tracker.rawValue, "--no-floor", "--json",
        ])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let cases = try #require(try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [[String: Any]])
        #expect(cases.count == 2)
        for item in cases {
            #expect(item["exact"] as? Bool == true, "\(item)")
            #expect((item["collect_ms_median"] as? Double ?? -1) >= 0)
            #expect(item["written_pages"] as? Int == 64 || item["written_pages"] as? Int == 4096)
        }
    }

    @Test(arguments: [
        (["bench", "tracker", "--trackers", "soft-dirty"], "unknown tracker 'soft-dirty'"),
        (["bench", "tracker", "--pages", "12,zero"], "'zero' is neither a positive count nor 'all'"),
        (["bench", "tracker", "--region-mib", "0"], "--region-mib must be between"),
        (["demo", "tracking", "--epochs", "0"], "--epochs must be at least 1"),
        (["demo", "--mode", "remus"], "unknown mode 'remus'"),
        (["demo", "--block-size", "100"], "--block-size"),
        (["demo", "--seconds", "0"], "--seconds must be between"),
        (["primary", "--backup", "127.0.0.1:1", "--send-path", "sendfile"], "--send-path 'sendfile'"),
        (["bench", "engine", "--block-size", "96"], "block size 96 is not one of"),
        (["bench", "engine", "--compression", "zstd:99"], "unknown compression 'zstd:99'"),
        (["primary", "--backup", "nohost"], "'nohost' is not HOST:PORT"),
        (["primary", "--backup", "127.0.0.1:1", "--mode", "remus"], "unknown mode 'remus'"),
        (["primary", "--backup", "127.0.0.1:1", "--encrypt"], "--encrypt needs --key-file"),
        (
            ["backup", "--listen", "127.0.0.1:0", "--key-file", "/nonexistent/fgbi.key"],
            "open(/nonexistent/fgbi.key): ENOENT"
        ),
        (["backup", "--block-size", "96"], "block size 96 is not one of"),
        (["bench", "pause", "--pages", "0"], "'0' is not a positive number"),
        (["bench", "send", "--paths", "wifi"], "--paths: choose from loopback and veth"),
        (["bench", "replicate", "--block-size", "64,96"], "block size 96 is not one of"),
        (["bench", "replicate", "--baselines", "gzip"], "unknown tool 'gzip'"),
        (["bench", "replicate", "--workload", "sparse,,zero"], "--workload: expected a comma-separated list"),
        (["bench", "replicate", "--workload", "random"], "unknown workload 'random'"),
        (["bench", "replicate", "--trace", "/nonexistent/trace"], "--trace: "),
        (["bench", "soak", "--faults", "kill-backup,meteor"], "--faults: unknown kind 'meteor'"),
        (["bench", "soak", "--minutes", "0"], "--minutes must be between"),
        (["bench", "lmdb", "--epoch-ms", "25,0"], "--epoch-ms: '0' is not a number of milliseconds"),
        (["bench", "lmdb", "--writer-cpu", "99"], "--writer-cpu: '99' is not an online CPU"),
        (["bench", "lmdb", "--keys", "3"], "the key count must be between 10"),
        (["example", "lmdb", "--role", "primary"], "--role primary needs --backup"),
        (["example", "lmdb", "--role", "verify"], "--role verify needs --image"),
        (["example", "lmdb", "--role", "writer"], "--role writer needs --database"),
        (
            ["example", "lmdb", "--role", "verify", "--image", "/nonexistent/replica.mdb"],
            "mdb_env_open(/nonexistent/replica.mdb): No such file"
        ),
        (["example", "lmdb", "--rounds", "0"], "--rounds must be between"),
        (
            ["primary", "--backup", "127.0.0.1:1", "--etcd", "https://10.0.0.9:2379", "--etcd-cert", "/tmp/c.pem"],
            "--etcd-cert and --etcd-key go together"
        ),
        (
            ["primary", "--backup", "127.0.0.1:1", "--etcd", "https://10.0.0.9:2379", "--etcd-user", "fgbi"],
            "--etcd-user and --etcd-password-file go together"
        ),
        (
            ["primary", "--backup", "127.0.0.1:1", "--etcd", "http://10.0.0.9:2379", "--etcd-ca", "/tmp/ca.pem"],
            "TLS options were given for http:// members"
        ),
        (
            [
                "primary", "--backup", "127.0.0.1:1", "--etcd", "https://10.0.0.9:2379", "--etcd-ca",
                "/nonexistent/ca.pem",
            ], "cannot load the etcd CA file /nonexistent/ca.pem"
        ),
        (["primary", "--backup", "127.0.0.1:1", "--etcd", "10.0.0.9:2379"], "http://"),
        (
            ["primary", "--backup", "127.0.0.1:1", "--etcd", "http://127.0.0.1:2379", "--guest-name", "a/b"],
            "invalid guest name 'a/b'"
        ),
        (
            ["primary", "--backup", "127.0.0.1:1", "--etcd", "http://127.0.0.1:2379", "--lease-ttl-s", "0"],
            "--lease-ttl-s must be between"
        ),
        (
            [
                "primary", "--backup", "127.0.0.1:1", "--region-mib", "1", "--etcd", "http://127.0.0.1:1",
                "--etcd-timeout-ms", "200",
            ],
            "etcd status at http://127.0.0.1:1: unreachable"
        ),
        (
            [
                "backup", "--listen", "127.0.0.1:0", "--region-mib", "1", "--etcd",
                "http://127.0.0.1:1,http://127.0.0.1:2", "--etcd-timeout-ms", "200",
            ],
            "http://127.0.0.1:2: unreachable"
        ),
        (["primary", "--backup", "127.0.0.1:1", "--node", "n1"], "--node names this node in etcd: give --etcd too"),
        (["backup", "--listen", "127.0.0.1:0", "--guest-name", "a/b"], "invalid guest name 'a/b'"),
        (
            [
                "primary", "--guest", "name=a,backup=127.0.0.1:1", "--etcd", "http://127.0.0.1:2379", "--guest-name",
                "db1",
            ], "each spec's name= is its name in etcd"
        ),
        (["bench", "failover", "--ttl", "0"], "--ttl: '0' is not a number of seconds"),
        (["bench", "failover", "--faults", "meteor"], "--faults: unknown fault 'meteor'"),
        (
            ["primary", "--backup", "127.0.0.1:1", "--capture-cpus", "0,99"],
            "--capture-cpus: '99' is not an online CPU"
        ),
        (
            ["primary", "--backup", "127.0.0.1:1", "--capture-priority", "0"],
            "--capture-priority must be between 1 and 99"
        ),
        (
            ["primary", "--backup", "127.0.0.1:1", "--capture-buffers", "0"],
            "--capture-buffers must be between 1 and 8"
        ),
        (["bench", "lmdb", "--capture-buffers", "9"], "--capture-buffers must be between 1 and 8"),
        (["bench", "lmdb", "--cache-mib", "0"], "--cache-mib must be between 1 and 65536"),
        (["bench", "engine", "--cache-mib=-3"], "--cache-mib must be between 1 and 65536"),
        (["bench", "replicate", "--cache-mib", "65537"], "--cache-mib must be between 1 and 65536"),
        (["demo", "--cached-capture-mib=-1"], "--cached-capture-mib must be between 0 and 1048576"),
        (["bench", "engine", "--cached-capture-mib", "2000000"], "--cached-capture-mib must be between 0 and 1048576"),
        (["primary", "--backup", "127.0.0.1:1", "--cache-mib", "70000"], "--cache-mib must be between 1 and 65536"),
        (
            ["bench", "lmdb", "--capture-cpu", "sideways"],
            "--capture-cpu: 'sideways' is not writer, replication or both"
        ),
        (
            ["bench", "lmdb", "--capture-priority", "normal,120"],
            "--capture-priority: '120' is neither 'normal' nor a priority"
        ),
        (
            ["bench", "lmdb", "--hot-pages", "on,sometimes"],
            "--hot-pages: invalid argument: hot pages 'sometimes': use off, on, or PROMOTE:LEASE:MAXPAGES"
        ),
        (
            ["primary", "--backup", "127.0.0.1:1", "--hot-pages", "1:16:100"],
            "hot pages: promoteAfter must be 2 to 255"
        ),
        (
            ["primary", "--backup", "127.0.0.1:1", "--compression-minimum-saving", "1.5"],
            "--compression-minimum-saving must be between 0 and 1"
        ),
        (
            ["bench", "engine", "--compression-minimum-saving", "2"],
            "--compression-minimum-saving must be between 0 and 1"
        ),
        (
            ["bench", "lmdb", "--compression-minimum-saving", "1.5"],
            "--compression-minimum-saving must be between 0 and 1"
        ),
        (["primary", "--backup", "127.0.0.1:1", "--encode-threads", "0"], "--encode-threads must be between 1 and 64"),
        (["bench", "engine", "--encode-threads", "1,x"], "--encode-threads: 'x' is not a thread count from 1 to 64"),
        (["backup", "--rejoin"], "--rejoin needs --memory-file"),
        (["backup", "--then-primary", "--", "--backup", "127.0.0.1:1"], "--then-primary needs --memory-file"),
        (
            ["backup", "--memory-file", "/dev/shm/fgbi-never-made", "--then-primary"],
            "--then-primary needs the primary's arguments after `--`"
        ),
        (["backup", "--", "--backup", "127.0.0.1:1"], "arguments after `--` are for --then-primary"),
        (
            ["backup", "--memory-file", "/dev/shm/fgbi-never-made", "--rejoin", "--state-dir", "/tmp/x"],
            "--rejoin holds a former primary's memory"
        ),
        (
            ["primary", "--guest", "name=a,backup=127.0.0.1:1", "--memory-file", "/dev/shm/x"],
            "--memory-file and --continue-after-epoch take one guest"
        ),
        (["example", "lmdb", "--role", "node", "--database", "/dev/shm/x"], "--role node needs --peer HOST:PORT"),
        (
            ["example", "lmdb", "--role", "node", "--database", "/dev/shm/x", "--peer", "127.0.0.1:1"],
            "--role node --start backup needs --listen-port"
        ),
        (["example", "lmdb", "--role", "alternate", "--failovers", "0"], "--failovers must be between 1 and 10000"),
        (
            ["example", "lmdb", "--role", "alternate", "--transactions-per-second", "0"],
            "--transactions-per-second must be between 1 and 10000000"
        ),
        (
            ["example", "lmdb", "--transactions-per-second", "1000"],
            "--transactions-per-second is for --role primary, node or alternate"
        ),
        (
            ["example", "lmdb", "--role", "alternate", "--load-transactions", "10"],
            "--load-transactions needs --transactions-per-second"
        ),
        (
            ["primary", "--backup", "127.0.0.1:1", "--backup", "127.0.0.1:2", "--commit", "most"],
            "--commit 'most': choose all or quorum:K"
        ),
        (
            ["primary", "--backup", "127.0.0.1:1", "--backup", "127.0.0.1:2", "--commit", "quorum:3"],
            "a commit quorum of 3 needs between 1 and the 2 backups given"
        ),
        (["bench", "backups", "--layouts", "3:quorum:4"], "--layouts: '3:quorum:4' is not N:all or N:quorum:K"),
        (["bench", "backups", "--layouts", "1:all:slow"], "--layouts: '1:all:slow' is not N:all or N:quorum:K"),
        (["bench", "backups", "--layouts", "1:all:outage"], "--layouts: '1:all:outage' is not N:all or N:quorum:K"),
        (["bench", "backups", "--catch-up-mib", "0"], "--catch-up-mib must be between 1 and 65536"),
        (
            ["primary", "--backup", "127.0.0.1:1", "--catch-up-mib", "0"],
            "--catch-up-mib must be between 1 and 1048576"
        ),
        (
            ["primary", "--backup", "127.0.0.1:1", "--replica-is-latest"],
            "--replica-is-latest goes with --etcd and --continue-after-epoch"
        ),
        (
            ["primary", "--backup", "127.0.0.1:1", "--etcd-handover", "1:2"],
            "--etcd-handover is set by fgbi backup --then-primary"
        ),
        (
            [
                "backup", "--memory-file", "/dev/shm/fgbi-cli-never", "--etcd", "http://127.0.0.1:1", "--then-primary",
                "--", "--backup", "127.0.0.1:1",
            ],
            "--then-primary with --etcd: give the primary --etcd too"
        ),
        (["frobnicate"], "Unexpected argument 'frobnicate'"),
    ])
    func badArgumentsFailWithAClearMessage(arguments: [String], message: String) throws {
        let outcome = try CommandRunner.run(arguments)
        #expect(outcome.status != 0)
        #expect(outcome.stderr.contains(message), "stderr was: \(outcome.stderr)")
    }

    /// `fgbi bench sync` on a small region: every variant commits and reports its bytes and encode time.
    @Test(.requiring(.uffdAsync, because: "the primary of `fgbi bench sync` tracks with uffd-async"))
    func syncBenchmarkReportsBytesAndEncodeTime() throws {
        let outcome = try CommandRunner.run([
            "bench", "sync", "--region-mib", "8", "--pages-per-second", "2000", "--learn-whole-first-pass", "--json",
        ])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let cases = try #require(try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [[String: Any]])
        #expect(cases.map { $0["variant"] as? String } == ["precopy", "paused-full", "resync"])
        for variant in cases {
            #expect((variant["bytes"] as? Int ?? 0) > 0, "\(variant)")
            #expect((variant["encode_ms"] as? Double ?? 0) > 0, "\(variant)")
        }
    }

    @Test(.requiring(.uffdAsync, because: "`fgbi bench engine` tracks with uffd-async (it has no --tracker)"))
    func engineBenchmarkVerifiesEveryMode() throws {
        let outcome = try CommandRunner.run([
            "bench", "engine", "--region-mib", "8", "--epochs", "2", "--pages-per-epoch", "64",
            "--workloads", "sparse,duplicate", "--no-floor", "--json",
        ])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any])
        let runs = try #require(report["runs"] as? [[String: Any]])
        #expect(runs.count == 2 * ReplicationMode.allCases.count)
        for run in runs {
            #expect(run["verified"] as? Bool == true, "\(run)")
            #expect(run["workload"] is String && run["mode"] is String && run["wire_bytes"] is Int)
        }
        let sparse = runs.filter { $0["workload"] as? String == "sparse" }
        let fgbi = try #require(sparse.first { $0["mode"] as? String == "fgbi" }?["wire_bytes"] as? Int)
        let page = try #require(sparse.first { $0["mode"] as? String == "page" }?["wire_bytes"] as? Int)
        #expect(fgbi * 10 < page, "fgbi sent \(fgbi) bytes for sparse writes, page \(page)")
    }

    @Test(
        """
        the LMDB overhead benchmark runs every placement, priority and hot-page policy, verifies, and splits the \
        writer's time
        """,
        .requiring(
            .uffdAsync, .memfd(name: ""), because: "`fgbi bench lmdb` tracks with uffd-async and measures its hot pages"
        ),
        .enabled(if: CaptureCrewTests.realtimeAllowed, "SCHED_FIFO needs root, CAP_SYS_NICE or RLIMIT_RTPRIO"))
    func lmdbBenchmarkComparesCapturePlacements() throws {
        let outcome = try CommandRunner.run([
            "bench", "lmdb", "--transactions", "3000", "--rounds", "1", "--map-mib", "32",
            "--keys", "2000", "--capture-cpu", "both", "--capture-priority", "normal,5",
            "--hot-pages", "on,off", "--json",
        ])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let variants = try #require(
            try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [[String: Any]])
        #expect(variants.count == 9, "none plus 2 placements x 2 priorities x 2 hot-page policies")
        #expect(variants.first?["name"] as? String == "none")
        for variant in variants.dropFirst() {
            #expect(variant["verified"] as? Bool == true, "\(variant)")
            #expect((variant["capture_placement"] as? String).map { ["writer", "replication"].contains($0) } == true)
            let writer = try #require(variant["writer"] as? [String: Any])
            let user = try #require(writer["user_seconds"] as? Double)
            let writing = try #require(variant["writing_seconds"] as? Double)
            #expect(user > 0 && user <= writing * 1.05, "user \(user) s of \(writing) s writing")
            #expect((variant["mean_epoch_ms"] as? Double ?? 0) > 0)
            // Replication's CPU, beside its bytes: both sides worked.
            #expect((variant["primary_cpu_ms_per_epoch"] as? Double ?? 0) > 0, "\(variant)")
            #expect((variant["backup_cpu_ms_per_epoch"] as? Double ?? 0) > 0, "\(variant)")
            let unscanned = try #require(variant["pages_unscanned_per_epoch"] as? Double)
            if variant["hot_pages"] as? String == "off" { #expect(unscanned == 0, "\(variant)") }
        }
        let names = variants.compactMap { $0["name"] as? String }
        #expect(names.contains("fgbi @ 25 ms, capture on writer CPU, FIFO 5, hot 2:16:16384"), "\(names)")
        #expect(names.contains("fgbi @ 25 ms, capture on replication CPU, normal, hot off"), "\(names)")
    }

    @Test(.requiring(.uffdAsync, because: "`fgbi bench replicate` tracks with uffd-async (it has no --tracker)"))
    func replicationBenchmarkVerifiesEveryModeAndRunsTheDeltaTools() throws {
        let zstdInstalled = FileManager.default.isExecutableFile(atPath: "/usr/bin/zstd")
        let outcome = try CommandRunner.run([
            "bench", "replicate", "--workload", "sparse,zipf", "--modes", "fgbi,page,xbzrle",
            "--block-size", "64,256", "--region-mib", "8", "--epochs", "3", "--pages-per-epoch", "128",
            "--epoch-ms", "5", "--baselines", "zstd", "--baseline-epochs", "2", "--json",
        ])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any])
        let runs = try #require(report["runs"] as? [[String: Any]])
        #expect(runs.count == 2 * 4, "two workloads x (fgbi at two block sizes, page, xbzrle)")
        for run in runs {
            #expect(run["verified"] as? Bool == true, "\(run)")
            #expect(run["mode"] is String && run["wire_bytes"] is Int && run["pause_ms_p99"] is Double)
            #expect((run["per_epoch"] as? [Any])?.count == 3, "every written epoch is reported: \(run)")
        }
        let sparse = runs.filter { $0["workload"] as? String == "sparse" }
        let fgbi = try #require(
            sparse.first { $0["mode"] as? String == "fgbi" && $0["block_size"] as? Int == 64 }?["wire_bytes"] as? Int)
        let page = try #require(sparse.first { $0["mode"] as? String == "page" }?["wire_bytes"] as? Int)
        #expect(fgbi * 10 < page, "fgbi sent \(fgbi) bytes for sparse writes, page \(page)")
        let baselines = try #require(report["baselines"] as? [[String: Any]])
        if zstdInstalled {
            #expect(baselines.count == 2)
            for baseline in baselines {
                #expect(baseline["tool"] as? String == "zstd" && baseline["pairs"] as? Int == 2)
                #expect((baseline["bytes"] as? Int ?? 0) > 0, "\(baseline)")
            }
        }
    }

    @Test func primaryAndBackupProcessesReplicateAndFinish() throws {
        try replicateThroughProcesses(primaryOptions: [])
    }

    @Test func primaryLearnsTheWholeFirstPassWhenAsked() throws {
        try replicateThroughProcesses(primaryOptions: ["--learn-whole-first-pass"])
    }

    @Test(
        "the capture on the guest's CPU, at realtime priority, through the CLI",
        .enabled(if: CaptureCrewTests.realtimeAllowed, "SCHED_FIFO needs root, CAP_SYS_NICE or RLIMIT_RTPRIO"))
    func primaryCapturesOnPinnedRealtimeThreads() throws {
        try replicateThroughProcesses(primaryOptions: ["--capture-cpus", "0", "--capture-priority", "5"])
    }

    private func replicateThroughProcesses(primaryOptions: [String]) throws {
        let backup = Process()
        backup.executableURL = CommandRunner.executable
        backup.arguments = ["backup", "--listen", "127.0.0.1:0", "--region-mib", "8"]
        let backupOutput = Pipe()
        let backupLog = Pipe()
        backup.standardOutput = backupOutput
        backup.standardError = backupLog
        try backup.run()
        // The backup names the port it got: "fgbi: backup: listening on 127.0.0.1:PORT".
        var log = ""
        while !log.contains("listening on"), backup.isRunning {
            log += String(decoding: backupLog.fileHandleForReading.availableData, as: UTF8.self)
        }
        let port = try #require(
            log.split(separator: "\n").first { $0.contains("listening on") }?.split(separator: ":").last.map(
                String.init))
        let primary = try CommandRunner.run(
            [
                "primary", "--backup", "127.0.0.1:\(port)", "--region-mib", "8", "--duration", "1",
                "--tracker", Kernel.preferredTracker.rawValue,
            ] + primaryOptions)
        backup.waitUntilExit()
        let said = String(decoding: backupOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(primary.status == 0, "\(primary.stderr)")
        #expect(primary.stdout.contains("last committed epoch"))
        #expect(backup.terminationStatus == 0)
        #expect(said.contains("backup: primary finished; replica at epoch"), "backup said: \(said)")
    }

    @Test func demoReplicatesComparesAndVerifies() throws {
        let outcome = try CommandRunner.run([
            "demo", "--seconds", "3", "--region-mib", "16", "--tracker", Kernel.preferredTracker.rawValue,
        ])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(
            outcome.stdout.contains("verified: the backup equals the primary at committed epoch"), "\(outcome.stdout)")
        for mode in ["fgbi", "page", "page-lz4", "xbzrle"] {
            #expect(
                outcome.stdout.split(separator: "\n").contains { $0.hasPrefix(mode + " ") },
                "no summary row for \(mode)")
        }
        // Not a terminal here: progress degrades to plain lines, no carriage returns.
        #expect(outcome.stdout.contains(" epochs/s | dirty "))
        #expect(!outcome.stdout.contains("\r"))
    }

    @Test func demoTracksEveryEpochExactly() throws {
        let outcome = try CommandRunner.run([
            "demo", "tracking", "--epochs", "3", "--region-mib", "8", "--tracker", Kernel.preferredTracker.rawValue,
        ])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stdout.contains("every epoch reported exactly the pages written"))
        #expect(outcome.stdout.contains("the replica matched the primary after every epoch: yes"))
    }
}

/// Running a userfaultfd tracker as an unprivileged user, where vm.unprivileged_userfaultfd=0 denies it:
/// a typed error with errno and hint, a non-zero exit, and no crash.
@Suite("Denied userfaultfd")
struct DeniedUserfaultfdTests {
    /// Conditions for the test: root to drop privileges from, setpriv, and the sysctl denying unprivileged use.
    static let canDropPrivileges: Bool = {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { return false }
        let sysctl = try? String(contentsOfFile: "/proc/sys/vm/unprivileged_userfaultfd", encoding: .utf8)
        return sysctl?.trimmingCharacters(in: .whitespacesAndNewlines) == "0"
    }()

    @Test(
        .requiringUserfaultfd(because: "the denial of a userfaultfd that exists"),
        .enabled(
            if: canDropPrivileges && CommandRunner.executable != nil,
            "needs root, /usr/bin/setpriv and vm.unprivileged_userfaultfd=0"),
        arguments: ["uffd-async", "uffd-sync"])
    func unprivilegedUserGetsATypedError(tracker: String) throws {
        // A copy any user can execute: the build directory may sit under a home only root can enter.
        let directory = URL(fileURLWithPath: "/tmp/fgbi-denied-\(getpid())-\(tracker)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let copy = directory.appendingPathComponent("fgbi")
        try? FileManager.default.removeItem(at: copy)
        try FileManager.default.copyItem(at: CommandRunner.executable!, to: copy)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory.path)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: copy.path)

        let outcome = try CommandRunner.run(
            ["demo", "tracking", "--tracker", tracker, "--region-mib", "1", "--epochs", "1"],
            prefix: ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"],
            executable: copy)
        #expect(outcome.status != 0)
        #expect(outcome.status < 128, "exited by a signal rather than an error (status \(outcome.status))")
        #expect(outcome.stderr.contains("userfaultfd: EPERM"), "stderr was: \(outcome.stderr)")
        #expect(outcome.stderr.contains("vm.unprivileged_userfaultfd=1"), "stderr was: \(outcome.stderr)")
    }
}
