import FGBI
import FGBIBench
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A failover drill for the LMDB example: an in-process ``Backup`` on loopback, a real primary process
/// (`fgbi example lmdb --role primary`) replicating a database under a write-heavy workload and printing
/// each acknowledgement, `kill -9` of that process at a chosen moment, then the backup's failover image
/// opened with LMDB and compared with the history: it must hold exactly the first `R` transactions, with
/// `R` at least the last acknowledged one.
public struct LMDBFailoverDrill: Sendable {
    /// The drill's settings; the primary process is given the same.
    public struct Settings: Sendable {
        public var history: KeyValueHistory
        /// The database's map (and the replicated region's) size.
        public var mapBytes = 64 << 20
        public var epochMilliseconds = 25
        /// When to kill the primary, counted from ``killClock``.
        public var killAfter = Duration.seconds(2)
        /// What ``killAfter`` counts from.
        public var killClock = KillClock.processStart
        /// How long the backup waits for a silent primary before failing over.
        public var primaryTimeout = Duration.milliseconds(300)
        /// Where the primary's database (tmpfs) and the backup's image go; removed afterwards.
        public var databaseDirectory = "/dev/shm"
        public var imageDirectory = NSTemporaryDirectory()

        public init(history: KeyValueHistory) { self.history = history }
    }

    /// The moment a drill's kill delay counts from.
    public enum KillClock: Sendable {
        /// The primary process's start: a short delay kills it during set-up or synchronisation.
        case processStart
        /// The backup's first committed epoch (waited for up to a minute, then counted from there): the kill
        /// finds replication running however slow the host is to start the process, and a backup that held no
        /// epoch by then leaves an outcome with no replica.
        case firstEpoch
    }

    /// What the drill found.
    public struct Outcome: Sendable {
        /// The last transaction the primary acknowledged before it died.
        public var acknowledged: UInt64
        /// The backup's last epoch at failover (nil: it never held one).
        public var backupEpoch: UInt64?
        /// The verified replica (nil when the backup never held an epoch, and nothing was acknowledged).
        public var replica: LMDBReplicaVerifier.Report?
        /// Primary killed to image written, in seconds.
        public var failoverSeconds: Double
        /// How the primary ended (killed by SIGKILL: it ending on its own is a ``DrillError``).
        public var primaryStatus: String
    }

    /// The history written, the map, when the primary is killed and where the database and image go.
    public let settings: Settings
    /// The `fgbi` executable to run the primary with.
    public let executable: URL

    public init(settings: Settings, executable: URL) {
        self.settings = settings
        self.executable = executable
    }

    /// Runs the drill; `progress` gets a line now and then.
    ///
    /// - Throws: ``LMDBReplicaVerifier/Mismatch`` when the replica loses an acknowledged transaction or
    ///   differs from the history; ``LMDBError`` when LMDB cannot open it; other errors when the drill itself
    ///   cannot run (no backup port, the primary cannot start).
    public func run(progress: (String) -> Void = { _ in }) throws -> Outcome {
        let directories = try DrillDirectories.make(
            "fgbi-lmdb", under: [settings.databaseDirectory, settings.imageDirectory])
        let (databaseDirectory, imageDirectory) = (directories[0], directories[1])
        defer {
            try? FileManager.default.removeItem(at: databaseDirectory)
            try? FileManager.default.removeItem(at: imageDirectory)
        }
        let image = imageDirectory.appendingPathComponent("replica.mdb").path

        let region = try GuestMemory.anonymous(length: settings.mapBytes)
        try region.prefault()
        var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
        configuration.imagePath = image
        configuration.primaryTimeout = settings.primaryTimeout
        let backup = try Backup(regions: [region], configuration: configuration)
        let serving = try backup.start()

        let child = primaryProcess(
            backupPort: backup.port, database: databaseDirectory.appendingPathComponent("data.mdb").path)
        let output = Pipe()
        child.standardOutput = output
        let errors = Pipe()
        child.standardError = errors
        let acknowledgements = AcknowledgementLog()
        let diagnostics = TailBuffer(capacity: 4096)
        output.fileHandleForReading.readabilityHandler = { handle in acknowledgements.consume(handle.availableData) }
        errors.fileHandleForReading.readabilityHandler = { handle in diagnostics.append(handle.availableData) }
        try child.run()
        let started = Date()

        waitForTheKill(
            child, startedAt: started, backup: backup, acknowledgements: acknowledgements, progress: progress)
        let wasRunning = child.isRunning
        kill(child.processIdentifier, SIGKILL)
        let killed = Date()
        child.waitUntilExit()
        output.fileHandleForReading.readabilityHandler = nil
        errors.fileHandleForReading.readabilityHandler = nil
        acknowledgements.consume(output.fileHandleForReading.readDataToEndOfFile())
        diagnostics.append(errors.fileHandleForReading.readDataToEndOfFile())
        guard wasRunning, child.terminationReason == .uncaughtSignal, child.terminationStatus == SIGKILL else {
            _ = try? serving.stop()
            throw DrillError(
                description:
                    """
                    the primary process exited with status \(child.terminationStatus) before the kill; its last \
                    output:\n\(diagnostics.text)
                    """
            )
        }
        let status = "killed by SIGKILL"
        let acknowledged = acknowledgements.highest
        progress(
            """
            killed the primary after \(String(format: "%.2f", killed.timeIntervalSince(started))) s: \
            \(acknowledged) transactions acknowledged
            """
        )

        return try failoverOutcome(
            of: serving, killedAt: killed, acknowledged: acknowledged, image: image, status: status,
            progress: progress)
    }

    /// Waits for the backup's outcome after the kill and checks it: no epoch is fine only if nothing was
    /// acknowledged; otherwise the backup must have failed over, and its image must verify against the history.
    private func failoverOutcome(
        of serving: BackupService, killedAt killed: Date, acknowledged: UInt64, image: String, status: String,
        progress: (String) -> Void
    ) throws -> Outcome {
        // A primary killed before it connected leaves the backup listening: stop it once it had time to notice.
        let outcome = try serving.outcome(timeout: settings.primaryTimeout + .seconds(5)) ?? serving.stop()
        let failoverSeconds = Date().timeIntervalSince(killed)
        guard let epoch = outcome.lastEpoch else {
            guard acknowledged == 0 else {
                throw LMDBReplicaVerifier.Mismatch(
                    description: "\(acknowledged) transactions were acknowledged, but the backup holds no epoch")
            }
            return Outcome(
                acknowledged: 0, backupEpoch: nil, replica: nil, failoverSeconds: failoverSeconds, primaryStatus: status
            )
        }
        guard case .failedOver = outcome else {
            throw LMDBReplicaVerifier.Mismatch(description: "the backup did not fail over: \(outcome)")
        }
        progress(
            """
            backup failed over at epoch \(epoch) in \(String(format: "%.2f", failoverSeconds)) s; opening the \
            image with LMDB
            """
        )
        let report = try LMDBReplicaVerifier.verify(
            path: image, mapBytes: settings.mapBytes, history: settings.history, acknowledged: acknowledged)
        return Outcome(
            acknowledged: acknowledged, backupEpoch: epoch, replica: report, failoverSeconds: failoverSeconds,
            primaryStatus: status)
    }

    /// The `fgbi example lmdb --role primary` process of the drill (not started), replicating the database at
    /// `database` to the backup on `backupPort`.
    private func primaryProcess(backupPort: UInt16, database: String) -> Process {
        let child = Process()
        child.executableURL = executable
        let history = settings.history
        child.arguments = [
            "example", "lmdb", "--role", "primary", "--backup", "127.0.0.1:\(backupPort)", "--database", database,
            "--seed", String(history.seed), "--keys", String(history.keyCount),
            "--writes-per-transaction", String(history.writesPerTransaction),
            "--map-mib", String(settings.mapBytes >> 20), "--epoch-ms", String(settings.epochMilliseconds),
        ]
        return child
    }

    /// Waits until the kill is due (counted from the start, or from the backup's first epoch), or the primary
    /// has ended on its own, reporting progress every second.
    private func waitForTheKill(
        _ child: Process, startedAt started: Date, backup: Backup, acknowledgements: AcknowledgementLog,
        progress: (String) -> Void
    ) {
        var clockStart = started
        if settings.killClock == .firstEpoch {
            // At most a minute: a backup that never holds an epoch shows in the outcome (no replica).
            while backup.lastEpoch == nil, child.isRunning, Date().timeIntervalSince(started) < 60 { usleep(1_000) }
            clockStart = Date()
        }
        let killAt = clockStart.addingTimeInterval(Double(settings.killAfter.wholeNanoseconds) / 1e9)
        var lastReport = started
        while Date() < killAt, child.isRunning {
            usleep(2_000)
            if Date().timeIntervalSince(lastReport) >= 1 {
                lastReport = Date()
                progress(
                    """
                    primary pid \(child.processIdentifier): \(acknowledgements.highest) transactions \
                    acknowledged, backup at epoch \(backup.lastEpoch.map(String.init) ?? "-")
                    """
                )
            }
        }
    }
}

/// The drill could not run as planned (the primary ended on its own, say).
public struct DrillError: Error, CustomStringConvertible {
    public var description: String
}

/// A drill's scratch directories.
enum DrillDirectories {
    /// Creates a drill's own directory (`prefix`, the process id and a random number) under each of `bases`.
    static func make(_ prefix: String, under bases: [String]) throws -> [URL] {
        let tag = "\(prefix)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        return try bases.map { base in
            let directory = URL(fileURLWithPath: base).appendingPathComponent(tag)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            return directory
        }
    }
}

/// The last `capacity` bytes of a stream, for an error message.
final class TailBuffer: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func append(_ more: Data) {
        lock.withLock {
            data.append(more)
            if data.count > capacity { data = data.suffix(capacity) }
        }
    }

    var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
}

/// The primary's stdout as it arrives: `acknowledged N` lines, of which it keeps the highest N. A line cut
/// by the kill is ignored.
final class AcknowledgementLog: @unchecked Sendable {
    private let lock = NSLock()
    private var partial = Data()
    private var latest: UInt64 = 0

    var highest: UInt64 { lock.withLock { latest } }

    func consume(_ data: Data) {
        guard !data.isEmpty else { return }
        lock.withLock {
            partial.append(data)
            while let newline = partial.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: partial[partial.startIndex..<newline], as: UTF8.self)
                partial.removeSubrange(partial.startIndex...newline)
                let fields = line.split(separator: " ")
                if fields.count == 2, fields[0] == "acknowledged", let number = UInt64(fields[1]) {
                    latest = max(latest, number)
                }
            }
        }
    }
}
