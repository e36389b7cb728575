import FGBI
import FGBIBench
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// What `fgbi example kvm` does, as a library call the CLI and the tests share: run the guest unreplicated
/// for a reference checksum; run it again replicated to an in-process backup over loopback; kill the
/// primary mid-run; resume the guest on the backup from the replica (RAM and vCPU registers of the last
/// committed epoch); let it finish; compare its checksum with the reference.
public enum KVMExample {
    /// How the primary runs and dies.
    public enum PrimaryLaunch: Sendable {
        /// In this process; "killed" by stopping replication without a final epoch, then the vCPU.
        case inProcess
        /// As `executable example kvm --role primary ...`, killed with SIGKILL.
        case childProcess(executable: URL)
    }

    /// What to run.
    public struct Options: Sendable {
        public var seed: UInt64 = 1
        public var operations: UInt64 = 20_000_000
        public var ramMiB = 64
        public var epochInterval = Duration.milliseconds(25)
        /// Milliseconds after the guest started (once the backup held its first epoch) at which the
        /// primary is killed.
        public var killAfterMilliseconds = 1000
        /// Or kill it once the guest has done this many operations (as its progress reports, every
        /// `progressEvery`): a kill point that does not depend on the machine's speed. In-process, the
        /// vCPU is held there and replication stopped; a child primary kills itself with SIGKILL there.
        public var killAfterOperations: UInt64?
        public var imagePath: String
        public var progressEvery: UInt64 = 1_000_000

        public init(imagePath: String) { self.imagePath = imagePath }

        /// The guest's parameter block for these options.
        public var parameters: KVMGuestParameters {
            var parameters = KVMGuestParameters(seed: seed, operations: operations, ramBytes: ramMiB << 20)
            parameters.progressEvery = progressEvery
            return parameters
        }

        /// The arguments that make a child `fgbi` run the same primary.
        public func childArguments(backupPort: UInt16) -> [String] {
            [
                "example", "kvm", "--role", "primary", "--backup", "127.0.0.1:\(backupPort)", "--seed", "\(seed)",
                "--operations", "\(operations)", "--ram-mib", "\(ramMiB)",
                "--epoch-ms", "\(epochInterval.wholeMilliseconds)", "--progress-every", "\(progressEvery)",
                "--guest", imagePath,
            ] + (killAfterOperations.map { ["--kill-after-operations", "\($0)"] } ?? [])
        }
    }

    /// What happened, for the table and `--json`.
    public struct Report: Sendable, Codable {
        public var seed: UInt64
        public var operations: UInt64
        public var ramMebibytes: Int
        public var epochMilliseconds: Int
        public var referenceChecksum: String
        public var referenceSeconds: Double
        /// Whether the primary died before the guest finished (false: the guest finished first).
        public var killedMidRun: Bool
        /// When the kill was due: "N ms" after the guest started, or "N operations".
        public var killPoint: String
        public var primary: String
        public var backupOutcome: String
        public var epochsReplicated: Int
        public var lastEpoch: UInt64?
        public var bytesReceived: Int
        /// Operations the guest had done in the replica it resumed from.
        public var operationsAtFailover: UInt64
        public var resumedChecksum: String
        public var resumeSeconds: Double
        public var checksumsMatch: Bool
    }

    /// The regions a replicated guest is made of, in order: RAM, then the vCPU state page.
    public static func regions(memory: GuestMemory, state: GuestMemory) -> [GuestMemory] { [memory, state] }

    /// Runs the guest once without replication and returns its checksum, operations and wall time.
    public static func reference(image: KVMGuestImage, parameters: KVMGuestParameters, ramBytes: Int) throws
        -> (checksum: UInt64, operations: UInt64, seconds: Double)
    {
        let memory = try GuestMemory.memfd(length: ramBytes, name: "fgbi-kvm-reference")
        let guest = try KVMGuest.fresh(image: image, parameters: parameters, memory: memory)
        let start = MonotonicClock.nanoseconds()
        let outcome = try guest.runToCompletion()
        let seconds = Double(MonotonicClock.nanoseconds() - start) / 1e9
        guard case .finished(let checksum, let operations) = outcome else {
            throw KVMGuestError(message: "the reference run did not finish")
        }
        return (checksum, operations, seconds)
    }

    /// The whole example. `progress` gets human-readable lines (the CLI prints them on standard error).
    public static func run(
        _ options: Options, launch: PrimaryLaunch,
        progress: @escaping @Sendable (String) -> Void = { _ in }
    ) throws -> Report {
        let image = try KVMGuestImage(path: options.imagePath)
        let ramBytes = options.ramMiB << 20
        let parameters = options.parameters
        progress("reference run: \(options.operations) operations, seed \(options.seed), \(options.ramMiB) MiB")
        let reference = try reference(image: image, parameters: parameters, ramBytes: ramBytes)
        progress(String(format: "reference checksum %016llx in %.2f s", reference.checksum, reference.seconds))

        let backupMemory = try GuestMemory.memfd(length: ramBytes, name: "fgbi-kvm-backup-ram")
        let backupState = try GuestMemory.memfd(length: GuestMemory.pageSize, name: "fgbi-kvm-backup-vcpu")
        var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
        configuration.primaryTimeout = .milliseconds(100)
        let backup = try Backup(
            regions: regions(memory: backupMemory, state: backupState), configuration: configuration)
        let served = try backup.start()

        var killedMidRun = false
        var primaryDescription = ""
        do {
            switch launch {
            case .inProcess:
                primaryDescription = "in-process"
                killedMidRun = try runInProcess(options, image: image, backupPort: backup.port, progress: progress)
            case .childProcess(let executable):
                primaryDescription = "child process"
                killedMidRun = try runChildProcess(options, executable: executable, backup: backup, progress: progress)
            }
        } catch {
            backup.stop() // nothing will fail over: end the serving thread
            throw error
        }
        guard let outcome = try served.outcome(timeout: .seconds(60)) else {
            throw KVMGuestError(message: "the backup did not end within 60 s")
        }
        let statistics = backup.statistics
        guard let lastEpoch = backup.lastEpoch else {
            throw KVMGuestError(message: "the backup committed no epoch before the primary died: \(outcome)")
        }
        let atFailover = KVMGuestResults(memory: backupMemory).completed
        progress(
            """
            backup: \(outcome); \(statistics.epochsApplied) epochs, \(statistics.bytesReceived) bytes; resuming \
            at operation \(atFailover)
            """
        )

        let start = MonotonicClock.nanoseconds()
        let resumed = try KVMGuest.resume(memory: backupMemory, stateRegion: backupState)
        guard case .finished(let checksum, _) = try resumed.runToCompletion() else {
            throw KVMGuestError(message: "the resumed guest did not finish")
        }
        let resumeSeconds = Double(MonotonicClock.nanoseconds() - start) / 1e9
        return Report(
            seed: options.seed, operations: options.operations, ramMebibytes: options.ramMiB,
            epochMilliseconds: options.epochInterval.wholeMilliseconds,
            referenceChecksum: hex(reference.checksum), referenceSeconds: reference.seconds,
            killedMidRun: killedMidRun,
            killPoint: options.killAfterOperations.map { "\($0) operations" } ?? "\(options.killAfterMilliseconds) ms",
            primary: primaryDescription, backupOutcome: "\(outcome)", epochsReplicated: statistics.epochsApplied,
            lastEpoch: lastEpoch, bytesReceived: statistics.bytesReceived, operationsAtFailover: atFailover,
            resumedChecksum: hex(checksum), resumeSeconds: resumeSeconds,
            checksumsMatch: checksum == reference.checksum)
    }

    /// The in-process primary of `--primary in-process`, killed mid-run (no final epoch) at the kill point
    /// unless the guest ends first; returns whether it was.
    private static func runInProcess(
        _ options: Options, image: KVMGuestImage, backupPort: UInt16,
        progress: @escaping @Sendable (String) -> Void
    ) throws -> Bool {
        let parameters = options.parameters
        let ramBytes = options.ramMiB << 20
        var killedMidRun = false
        let replicated = try KVMReplicatedGuest(
            image: image, parameters: parameters, ramBytes: ramBytes,
            backup: Endpoint(host: "127.0.0.1", port: backupPort),
            epochInterval: options.epochInterval)
        let reached = DispatchSemaphore(value: 0)
        if let threshold = options.killAfterOperations {
            replicated.guest.runner.onProgress = { done in if done >= threshold { reached.signal() } }
        }
        try replicated.start()
        let deadline = MonotonicClock.nanoseconds() + UInt64(options.killAfterMilliseconds) * 1_000_000
        while !replicated.guest.runner.hasEnded {
            if options.killAfterOperations != nil {
                if reached.wait(timeout: .now() + .milliseconds(1)) == .success { break }
            } else {
                if MonotonicClock.nanoseconds() >= deadline { break }
                usleep(1000)
            }
        }
        if replicated.guest.runner.hasEnded {
            _ = try replicated.finish() // the final epoch carries the final registers
        } else {
            killedMidRun = replicated.crash()
            if killedMidRun {
                progress(
                    """
                    primary stopped without a final epoch, \
                    \(KVMGuestResults(memory: replicated.memory).completed) operations in
                    """
                )
            } else {
                _ = try replicated.guest.runner.wait() // it ended meanwhile: surface its error, if any
            }
        }
        return killedMidRun
    }

    /// The primary as a child process, killed with SIGKILL at the kill point (it kills itself at a number of
    /// operations); returns whether it died mid-run.
    private static func runChildProcess(
        _ options: Options, executable: URL, backup: Backup,
        progress: @escaping @Sendable (String) -> Void
    ) throws -> Bool {
        var killedMidRun = false
        let child = Process()
        child.executableURL = executable
        child.arguments = options.childArguments(backupPort: backup.port)
        try child.run()
        waitForFirstEpoch(backup, while: { child.isRunning })
        if options.killAfterOperations != nil {
            // The child kills itself at that many operations (``runPrimary``): a kill point on the
            // guest's own clock. Polling the replica's counter from here raced the guest: on a busy
            // machine the guest finished before the replica's counter reached the trigger.
            child.waitUntilExit()
            killedMidRun = child.terminationReason == .uncaughtSignal && child.terminationStatus == SIGKILL
            if killedMidRun { progress("primary (pid \(child.processIdentifier)) died of SIGKILL mid-run") }
        } else {
            let deadline = MonotonicClock.nanoseconds() + UInt64(options.killAfterMilliseconds) * 1_000_000
            while child.isRunning && MonotonicClock.nanoseconds() < deadline { usleep(1000) }
            if child.isRunning {
                kill(child.processIdentifier, SIGKILL)
                killedMidRun = true
                progress("primary (pid \(child.processIdentifier)) killed with SIGKILL")
            }
            child.waitUntilExit()
        }
        if !killedMidRun && child.terminationStatus != 0 {
            throw KVMGuestError(message: "the primary process failed (status \(child.terminationStatus))")
        }
        return killedMidRun
    }

    /// The primary role of the child process: runs the replicated guest to its end, or with
    /// ``Options/killAfterOperations`` to its death by SIGKILL at that point.
    public static func runPrimary(
        _ options: Options, backup: Endpoint,
        progress: @escaping @Sendable (UInt64) -> Void = { _ in }
    ) throws -> KVMGuestOutcome {
        let image = try KVMGuestImage(path: options.imagePath)
        let replicated = try KVMReplicatedGuest(
            image: image, parameters: options.parameters,
            ramBytes: options.ramMiB << 20, backup: backup,
            epochInterval: options.epochInterval)
        let killPoint = options.killAfterOperations
        replicated.guest.runner.onProgress = { done in
            progress(done)
            // On the vCPU thread, at the guest's progress exit: the process dies with the guest held at this
            // point, no final epoch sent (the backup fails over to the last committed one).
            if let killPoint, done >= killPoint { kill(getpid(), SIGKILL) }
        }
        try replicated.start()
        return try replicated.finish()
    }

    static func hex(_ value: UInt64) -> String { String(format: "%016llx", value) }

    private static func waitForFirstEpoch(_ backup: Backup, while alive: () -> Bool = { true }) {
        let deadline = MonotonicClock.nanoseconds() + 30_000_000_000
        while backup.lastEpoch == nil, alive(), MonotonicClock.nanoseconds() < deadline { usleep(1000) }
    }
}
