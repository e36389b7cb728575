import FGBI
import FGBILab
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// An `fgbi backup` process with a state directory, run inside a network namespace (through `ip netns
/// exec`) so a fault-injection run can kill, stop and restart it as an operator or a crash would.
public final class BackupProcess: @unchecked Sendable {
    public struct Settings: Sendable {
        public var executable: URL
        public var namespace: NetworkNamespace?
        public var listen: String
        public var regionMiB: Int
        public var stateDirectory: String
        public var keyFile: String
        /// Milliseconds of silence before the backup declares the primary lost.
        public var timeoutMilliseconds = 2_000
        /// Where its standard error goes (appended).
        public var logFile: String

        public init(
            executable: URL, namespace: NetworkNamespace?, listen: String, regionMiB: Int, stateDirectory: String,
            keyFile: String, logFile: String
        ) {
            self.executable = executable
            self.namespace = namespace
            self.listen = listen
            self.regionMiB = regionMiB
            self.stateDirectory = stateDirectory
            self.keyFile = keyFile
            self.logFile = logFile
        }
    }

    public let settings: Settings
    private let process = Process()

    /// Starts the backup; with `faultPoint` (`name:count`, see ``FaultPoints``) it kills itself there.
    public init(_ settings: Settings, faultPoint: String? = nil) throws {
        self.settings = settings
        var arguments = [
            settings.executable.path, "backup", "--listen", settings.listen, "--region-mib", String(settings.regionMiB),
            "--state-dir", settings.stateDirectory, "--key-file", settings.keyFile,
            "--timeout-ms", String(settings.timeoutMilliseconds), "--log-level", "warning",
        ]
        if let namespace = settings.namespace {
            process.executableURL = URL(fileURLWithPath: VethLink.toolPath("ip"))
            arguments = ["netns", "exec", namespace.name] + arguments
        } else {
            process.executableURL = settings.executable
            arguments.removeFirst()
        }
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["FGBI_FAULT_POINT"] = faultPoint
        process.environment = environment
        if !FileManager.default.fileExists(atPath: settings.logFile) {
            _ = FileManager.default.createFile(atPath: settings.logFile, contents: nil)
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: settings.logFile))
        log.seekToEndOfFile()
        process.standardError = log
        process.standardOutput = log
        try process.run()
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// Sends `signal` (SIGKILL, SIGSTOP, SIGCONT, ...).
    public func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for the process to end, up to `seconds`; its exit status (128+signal when killed), or nil when it
    /// still runs.
    @discardableResult
    public func waitForExit(seconds: Double) -> Int32? {
        process.exitStatus(within: seconds)
    }

    /// Kills the process (SIGCONT first, in case it was stopped) and waits for it.
    public func kill9() {
        signal(SIGKILL)
        signal(SIGCONT)
        process.waitUntilExit()
    }
}
