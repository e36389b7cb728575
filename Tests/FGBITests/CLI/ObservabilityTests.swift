import FGBI
import Foundation
import Testing

/// Structured logs, the Prometheus endpoint, and the --config file, through the real executable.
@Suite(
    "Logs, metrics and configuration", .serialized,
    .enabled(if: CommandRunner.executable != nil, "the fgbi executable was not built beside the tests"))
struct ObservabilityTests {
    static func scrape(_ url: String) throws -> String {
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        curl.arguments = ["-sS", "--max-time", "5", url]
        let output = Pipe()
        curl.standardOutput = output
        try curl.run()
        let body = output.fileHandleForReading.readDataToEndOfFile()
        curl.waitUntilExit()
        return String(decoding: body, as: UTF8.self)
    }

    static func metricsURL(_ line: String?) -> String? {
        line?.split(separator: " ").first { $0.hasPrefix("http://") }.map(String.init)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/curl"), "needs /usr/bin/curl"))
    func bothEndsServePrometheusMetricsAndLogWithLevels() throws {
        let backup = try RunningCommand([
            "backup", "--listen", "127.0.0.1:0", "--region-mib", "8", "--metrics-port", "0", "--log-level", "debug",
        ])
        defer { if backup.process.isRunning { backup.process.terminate() } }
        let port = try #require(backup.waitFor("listening on")?.split(separator: ":").last.map(String.init))
        let backupMetrics = try #require(Self.metricsURL(backup.waitFor("metrics at")))
        let primary = try RunningCommand([
            "primary", "--backup", "127.0.0.1:\(port)", "--region-mib", "8", "--duration", "5",
            "--metrics-port", "0", "--tracker", Kernel.preferredTracker.rawValue,
        ])
        defer { if primary.process.isRunning { primary.process.terminate() } }
        let primaryMetrics = try #require(Self.metricsURL(primary.waitFor("metrics at")))
        // The primary logs its synchronisation: pre-copy rounds, or none with the scan tracker.
        let synchronised = Kernel.preferredTracker == .scan ? "no pre-copy with the scan tracker" : "pre-copy done"
        #expect(primary.waitFor(synchronised) != nil, "the primary logs its synchronisation: \(primary.stderr)")
        // Scrape until the backup has applied an epoch (a loaded machine may take a while).
        var fromBackup = ""
        var applied = 0.0
        let deadline = Date().addingTimeInterval(20)
        while applied == 0, Date() < deadline, primary.process.isRunning {
            fromBackup = try Self.scrape(backupMetrics)
            applied =
                fromBackup.split(separator: "\n").first { $0.hasPrefix("fgbi_backup_epochs_applied_total ") }
                .flatMap { $0.split(separator: " ").last.flatMap { Double($0) } } ?? 0
            if applied == 0 { Thread.sleep(forTimeInterval: 0.1) }
        }
        #expect(fromBackup.contains("# TYPE fgbi_backup_epochs_applied_total counter"), "\(fromBackup)")
        #expect(applied > 0, "epochs applied")
        #expect(fromBackup.contains("fgbi_backup_apply_seconds"))
        let fromPrimary = try Self.scrape(primaryMetrics)
        #expect(fromPrimary.contains("fgbi_primary_epochs_committed_total"), "\(fromPrimary)")
        #expect(fromPrimary.contains("fgbi_primary_pause_seconds"))
        #expect(
            try Self.scrape(primaryMetrics.replacingOccurrences(of: "/metrics", with: "/other")).isEmpty,
            "only /metrics is served")
        for (end, text) in [("primary", fromPrimary), ("backup", fromBackup)] {
            Self.expectPrometheusConventions(text, end: end)
        }

        #expect(primary.finish() == 0, "\(primary.stderr)")
        #expect(backup.finish() == 0, "\(backup.stderr)")
        // swift-log lines: time, level, label, message.
        #expect(backup.stderr.contains(" info fgbi.backup: [FGBI] primary 127.0.0.1 connected"), "\(backup.stderr)")
    }

    /// Every metric family has HELP text and every counter ends in `_total`; and where Prometheus's own
    /// linter is installed (Debian's prometheus package), `promtool check metrics` finds nothing.
    static func expectPrometheusConventions(_ text: String, end: String) {
        let lines = text.split(separator: "\n")
        let types = lines.filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ") }
        #expect(!types.isEmpty, "the \(end) serves metrics")
        for type in types where type.count == 4 {
            #expect(lines.contains { $0.hasPrefix("# HELP \(type[2]) ") }, "the \(end)'s \(type[2]) has HELP text")
            if type[3] == "counter" {
                #expect(type[2].hasSuffix("_total"), "the \(end)'s counter \(type[2]) ends in _total")
            }
        }
        let promtool = "/usr/bin/promtool"
        guard FileManager.default.isExecutableFile(atPath: promtool) else { return }
        let check = Process()
        check.executableURL = URL(fileURLWithPath: promtool)
        check.arguments = ["check", "metrics"]
        let input = Pipe()
        let output = Pipe()
        check.standardInput = input
        check.standardOutput = output
        check.standardError = output
        do {
            try check.run()
            input.fileHandleForWriting.write(Data(text.utf8))
            try input.fileHandleForWriting.close()
            let findings = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            check.waitUntilExit()
            #expect(check.terminationStatus == 0, "promtool check metrics on the \(end)'s metrics: \(findings)")
        } catch {
            Issue.record("cannot run \(promtool): \(error)")
        }
    }

    @Test func configFileOptionsApplyAndTheCommandLineWins() throws {
        let path = NSTemporaryDirectory() + "fgbi-config-\(getpid()).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        unlink(path)
        try PrivateFile.create(path, bytes: Array(#"{"demo": {"seconds": 0, "region-mib": 8}}"#.utf8))
        let fromFile = try CommandRunner.run(["demo", "--config", path])
        #expect(fromFile.status != 0)
        #expect(
            fromFile.stderr.contains("--seconds must be between"),
            "the file's seconds = 0 was applied: \(fromFile.stderr)")
        let overridden = try CommandRunner.run([
            "demo", "--config", path, "--seconds", "1", "--json",
            "--tracker", Kernel.preferredTracker.rawValue,
        ])
        #expect(overridden.status == 0, "\(overridden.stderr)")
        #expect(overridden.stdout.contains("\"verified\" : true"), "\(overridden.stdout)")
    }

    @Test(arguments: [
        (#"{"demo": {"no-such-option": 1}}"#, "no-such-option"),
        (#"["not", "sections"]"#, "expected {\"subcommand\""),
        (#"{"demo": {"seconds": {"nested": 1}}}"#, "a value must be"),
    ])
    func badConfigFilesAreRefusedClearly(contents: String, message: String) throws {
        let path = NSTemporaryDirectory() + "fgbi-bad-config-\(getpid())-\(abs(contents.hashValue)).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        unlink(path)
        try PrivateFile.create(path, bytes: Array(contents.utf8))
        let outcome = try CommandRunner.run(["demo", "--config", path])
        #expect(outcome.status != 0 && outcome.status < 128)
        #expect(outcome.stderr.contains(message), "\(outcome.stderr)")
        let missing = try CommandRunner.run(["demo", "--config", path + ".missing"])
        #expect(missing.status != 0 && missing.stderr.contains("cannot read it"), "\(missing.stderr)")
    }
}
