import FGBI
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Injects faults into a running replication and checks, after each, what FGBI promises
/// (Docs/RELIABILITY.md): the backup holds exactly some epoch the primary captured (its content equals that
/// epoch's digest, never a torn mix), the primary never reported `committed` for an epoch the backup does
/// not hold, and a restarted backup is resynchronised (replication goes on past what it held).
///
/// The primary runs here, tracking a region written by a ``WorkloadDriver``; its ``EpochDigests`` record the
/// region's digest at every capture. The backup is an `fgbi backup` process with a state directory, in a
/// network namespace behind a ``VethLink`` (so the link can be impaired), started again after each fault.
/// Each episode ends with the backup killed, so its state directory can be read as a restart would.
public final class FaultInjector {
    public struct Configuration: Sendable {
        public var executable: URL
        public var regionMiB = 16
        public var epochMilliseconds = 25
        public var pagesPerSecond = 20_000
        public var mode = ReplicationMode.fgbi
        /// The primary's dirty tracker.
        public var tracker = TrackerKind.uffdAsync
        /// The faults, in order.
        public var schedule: [FaultKind]
        /// When set, after the schedule more faults drawn from it at random until this many seconds have
        /// passed since the start (a soak).
        public var repeatForSeconds: Double?
        /// Seed for the random moments and fault-point counts.
        public var seed: UInt64 = 1
        /// Where the key, the state directory (a tmpfs when the schedule fills the disk) and the logs go.
        public var workDirectory: String
        /// How long to wait for replication to move on after a restart before calling it stuck.
        public var resynchronisationTimeout = 30.0

        public init(executable: URL, schedule: [FaultKind], workDirectory: String) {
            self.executable = executable
            self.schedule = schedule
            self.workDirectory = workDirectory
        }
    }

    public let configuration: Configuration
    private var random: SeededRandom
    private let link: VethLink
    private let stateDirectory: String
    private let keyFile: String
    private let logFile: String
    private let port: UInt16
    private var tmpfsMounted = false

    /// The state directory's tmpfs: two checkpoint images, and a journal up to the backup's limit (256 MiB,
    /// ``ReplicaStore/journalLimit``'s default). A session with pre-copy ends in a checkpoint, which empties the
    /// journal; without (the scan tracker) only that limit does, so a smaller disk fills between faults.
    private var stateDiskMiB: Int { configuration.regionMiB * 8 + 256 }

    /// Makes the link, the key and the state directory (mounting a tmpfs there when the schedule fills the
    /// disk). Needs root, iproute2 and tc (``isAvailable``).
    public init(_ configuration: Configuration) throws {
        self.configuration = configuration
        random = SeededRandom(seed: configuration.seed)
        link = try VethLink()
        try FileManager.default.createDirectory(atPath: configuration.workDirectory, withIntermediateDirectories: true)
        stateDirectory = configuration.workDirectory + "/state"
        keyFile = configuration.workDirectory + "/key"
        logFile = configuration.workDirectory + "/backup.log"
        port = UInt16(20_000 + Int(getpid() % 20_000))
        try FileManager.default.createDirectory(
            atPath: stateDirectory, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        unlink(keyFile)
        try PrivateFile.create(keyFile, bytes: (0..<32).map { _ in UInt8.random(in: 0...255) })
        if configuration.schedule.contains(.diskFull) {
            try Self.mount(["-t", "tmpfs", "-o", "size=\(stateDiskMiB)m,mode=0700", "tmpfs", stateDirectory])
            tmpfsMounted = true
        }
    }

    deinit {
        link.heal()
        if tmpfsMounted { _ = try? Self.run("/bin/umount", [stateDirectory]) }
    }

    /// Root, network namespaces, tc, mount: what a run needs.
    public static var isAvailable: Bool { VethLink.isAvailable && VethLink.canImpair }

    /// Runs the schedule; `progress` gets a line per episode.
    public func run(progress: (String) -> Void = { _ in }) throws -> Report {
        let started = Date()
        var report = Report()
        let length = configuration.regionMiB << 20
        let memory = try GuestMemory.anonymous(length: length)
        try memory.prefault()
        SyntheticWorkload.fillInitial(memory, seed: configuration.seed)
        let check = try GuestMemory.anonymous(length: length)
        try check.prefault()
        let driver = WorkloadDriver(
            memory: memory, workload: .sparse, threads: 1, pagesPerSecond: configuration.pagesPerSecond,
            seed: configuration.seed)
        let digests = EpochDigests(regions: [memory])
        let primary = try Primary(
            regions: [memory], configuration: try primarySettings(), hooks: digests.hooks(wrapping: driver.hooks))
        digests.attach(primary)

        var backup = try startBackup(faultPoint: nil)
        try startPrimary(primary)
        driver.start()
        defer { driver.stop() }
        guard waitForProgress(primary, beyond: primary.statistics.lastSynchronisation?.epoch) else {
            throw BenchmarkError("replication did not start; backup log: \(logFile)")
        }

        var index = 0
        while let kind = nextFault(index, startedAt: started) {
            index += 1
            var resynchronised: Bool?
            if kind.faultPoint != nil, let running = backup, running.isRunning {
                // Only the first backup runs unarmed into a fault-point episode: end it as a plain kill,
                // checked like any other, and start an armed one.
                running.kill9()
                var episode = verify(kind: .killBackup, primary: primary, digests: digests, check: check)
                episode.backupStatus = running.waitForExit(seconds: 1)
                report.episodes.append(episode)
                backup = nil
            }
            if backup == nil || !(backup?.isRunning ?? false) {
                let point = kind.faultPoint.map { "\($0.rawValue):\(3 + Int(random.next() % 8))" }
                backup = try startBackup(faultPoint: point)
                if point == nil {
                    resynchronised = waitForProgress(primary, beyond: primary.committedEpoch)
                }
            }
            guard let running = backup else { break }
            let (status, injected) = try inject(kind, into: running)
            backup = nil
            var episode = verify(kind: injected, primary: primary, digests: digests, check: check)
            episode.backupStatus = status
            if let resynchronised, let last = report.episodes.indices.last {
                report.episodes[last].resynchronised = resynchronised
            }
            report.episodes.append(episode)
            progress(describe(episode, index: index, kind: injected, status: status))
        }

        // A last healthy backup: replication must reach it, and a final epoch must land in its state.
        backup = try startBackup(faultPoint: nil)
        let resumed = waitForProgress(primary, beyond: primary.committedEpoch)
        if let last = report.episodes.indices.last { report.episodes[last].resynchronised = resumed }
        driver.stop()
        let final = try primary.stop()
        _ = backup?.waitForExit(seconds: 10)
        let closing = verify(kind: .killBackup, primary: primary, digests: digests, check: check)
        if let failed = Self.closingFailure(closing, finalEpoch: final) { report.episodes.append(failed) }
        report.epochsCommitted = final ?? 0
        report.reconnects = primary.statistics.reconnects
        report.seconds = Date().timeIntervalSince(started)
        return report
    }

    /// The primary: the run's mode, tracker and interval, keyed, to the backup across the veth link, waiting
    /// (reconnecting) for as long as a schedule takes.
    private func primarySettings() throws -> PrimaryConfiguration {
        var settings = PrimaryConfiguration(backup: Endpoint(host: link.peerAddress, port: port))
        settings.key = try PresharedKey(file: keyFile)
        settings.engine = EngineConfiguration(mode: configuration.mode)
        settings.tracker = configuration.tracker
        settings.epochInterval = .milliseconds(configuration.epochMilliseconds)
        settings.reconnectWindow = .seconds(600)
        settings.backupTimeout = .seconds(3)
        return settings
    }

    /// Fault number `index`: the schedule's, then with --repeat-s random ones from it until the time is up; nil
    /// when the run is over.
    private func nextFault(_ index: Int, startedAt started: Date) -> FaultKind? {
        if index < configuration.schedule.count { return configuration.schedule[index] }
        guard let seconds = configuration.repeatForSeconds, Date().timeIntervalSince(started) < seconds,
            !configuration.schedule.isEmpty
        else { return nil }
        return configuration.schedule[Int(random.next() % UInt64(configuration.schedule.count))]
    }

    // MARK: - Episodes

    private func startBackup(faultPoint: String?) throws -> BackupProcess? {
        var settings = BackupProcess.Settings(
            executable: configuration.executable, namespace: link.namespace,
            listen: "\(link.peerAddress):\(port)", regionMiB: configuration.regionMiB,
            stateDirectory: stateDirectory, keyFile: keyFile, logFile: logFile)
        settings.timeoutMilliseconds = 2_000
        return try BackupProcess(settings, faultPoint: faultPoint)
    }

    private func startPrimary(_ primary: Primary) throws {
        let deadline = Date().addingTimeInterval(10)
        while true {
            do {
                try primary.start()
                return
            } catch {
                guard Date() < deadline else { throw error }
                usleep(50_000) // the backup process is still starting
            }
        }
    }

    /// Waits until the primary's committed epoch passes `epoch` (or is set, for nil).
    private func waitForProgress(_ primary: Primary, beyond epoch: UInt64?) -> Bool {
        let deadline = Date().addingTimeInterval(configuration.resynchronisationTimeout)
        while Date() < deadline {
            if let committed = primary.committedEpoch, epoch.map({ committed > $0 }) ?? true { return true }
            usleep(5_000)
        }
        return false
    }

    private func pause(_ low: Double, _ high: Double) {
        let fraction = Double(random.next() % 1_000_000) / 1_000_000
        usleep(useconds_t((low + (high - low) * fraction) * 1e6))
    }

    /// Injects `kind` and leaves the backup dead; returns its exit status and the fault that happened (a
    /// fault point not reached in time ends as a plain kill, and is counted as one).
    private func inject(_ kind: FaultKind, into backup: BackupProcess) throws -> (Int32?, FaultKind) {
        if kind.faultPoint != nil {
            if let status = backup.waitForExit(seconds: 20) { return (status, kind) }
            backup.kill9()
            return (backup.waitForExit(seconds: 1), .killBackup)
        }
        switch kind {
        case .killBackup:
            pause(0, 0.3)
        case .stallBackup:
            backup.signal(SIGSTOP)
            pause(0.3, 0.8)
            backup.signal(SIGCONT)
            pause(0.2, 0.4)
        case .loss, .slowLink, .duplicate, .partition:
            try link.impair(kind.impairment ?? .partition)
            if kind == .partition { usleep(1_200_000) } else { pause(0.4, 0.8) }
            link.heal()
            pause(0.2, 0.4)
        case .diskFull:
            // Leave a little room: the next journal appends or checkpoint fail with ENOSPC.
            try Self.mount(["-o", "remount,size=\(usedKilobytes() + 96)k", stateDirectory])
            let status = backup.waitForExit(seconds: 10)
            try Self.mount(["-o", "remount,size=\(stateDiskMiB)m", stateDirectory])
            if let status { return (status, kind) }
        default:
            break
        }
        backup.kill9()
        return (backup.waitForExit(seconds: 5), kind)
    }

    /// Reads the state directory as a restarted backup would and checks the promises.
    private func verify(kind: FaultKind, primary: Primary, digests: EpochDigests, check: GuestMemory) -> Episode {
        var episode = Episode(kind: kind, residentBytes: Self.residentBytes())
        let result = Self.check(stateDirectory: stateDirectory, into: check, digests: digests) {
            primary.committedEpoch
        }
        episode.backupEpoch = result.held
        episode.committedEpoch = result.committed
        episode.divergence = result.divergence
        return episode
    }

    /// The check after a fault: loads `stateDirectory` into `region` (as a restarted backup would), and
    /// compares it with the primary's digest of the epoch it holds; then reads `committed` (the primary's
    /// committed epoch, read after the load so any late acknowledgement is counted) and checks it is not past
    /// that epoch. Returns the epochs and, when a promise is broken, why.
    public static func check(
        stateDirectory: String, into region: GuestMemory, digests: EpochDigests,
        committed: () -> UInt64?
    ) -> (held: UInt64?, committed: UInt64?, divergence: String?) {
        let held: UInt64?
        do {
            let replica = Replica(regions: [region], geometry: try BlockGeometry())
            held = try ReplicaStore(directory: stateDirectory).load(into: replica)
        } catch {
            return (nil, committed(), "the state directory does not load: \(error)")
        }
        let committedEpoch = committed()
        if let held {
            guard let expected = digests.digest(epoch: held) else {
                return (held, committedEpoch, "the backup holds epoch \(held), which the primary never captured")
            }
            if EpochDigests.digest(of: [region]) != expected {
                return (
                    held, committedEpoch,
                    "the backup's epoch \(held) differs from the primary's epoch \(held) (a torn or wrong epoch)"
                )
            }
        }
        if let committedEpoch, held.map({ committedEpoch > $0 }) ?? true {
            return (
                held, committedEpoch,
                """
                the primary reported epoch \(committedEpoch) committed, the backup holds \
                \(held.map(String.init) ?? "none")
                """
            )
        }
        return (held, committedEpoch, nil)
    }

    /// Kilobytes the state directory's files take (the tmpfs holds nothing else).
    private func usedKilobytes() -> Int {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: stateDirectory)) ?? []
        let bytes = names.reduce(0) { total, name in
            let size =
                (try? FileManager.default.attributesOfItem(atPath: stateDirectory + "/" + name)[.size] as? Int) ?? 0
            return total + (size + 4095) / 4096 * 4096
        }
        return bytes / 1024
    }

    static func residentBytes() -> Int {
        guard let text = try? KernelFile.text("/proc/self/statm") else { return 0 }
        let fields = text.split(separator: " ")
        return fields.count > 1 ? (Int(fields[1]) ?? 0) * GuestMemory.pageSize : 0
    }

    static func mount(_ arguments: [String]) throws {
        try run("/bin/mount", arguments)
    }

    static func run(_ tool: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BenchmarkError(
                """
                \(tool) \(arguments.joined(separator: " ")) failed: \
                \(String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
                """
            )
        }
    }
}
