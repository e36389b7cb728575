import FGBI
import FGBILab
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A program run inside a lab host's network namespace (`ip netns exec`), its standard output collected
/// line by line as it arrives and its standard error appended to a log file.
public final class LabProcess: @unchecked Sendable {
    private let process = Process()
    private let lock = NSLock()
    private var collected: [String] = []
    private var partial = Data()
    private let outputDone = DispatchSemaphore(value: 0)
    public let logFile: String

    /// Starts `executable arguments` in `namespace` (nil: this one).
    public init(executable: URL, arguments: [String], namespace: NetworkNamespace?, logFile: String) throws {
        self.logFile = logFile
        if let namespace {
            process.executableURL = URL(fileURLWithPath: VethLink.toolPath("ip"))
            process.arguments = ["netns", "exec", namespace.name, executable.path] + arguments
        } else {
            process.executableURL = executable
            process.arguments = arguments
        }
        if !FileManager.default.fileExists(atPath: logFile) {
            _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        log.seekToEndOfFile()
        process.standardError = log
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let reading = pipe.fileHandleForReading
        Thread.detachNewThread { [self] in
            while true {
                let chunk = reading.availableData
                if chunk.isEmpty { break }
                lock.withLock {
                    partial.append(chunk)
                    while let newline = partial.firstIndex(of: 0x0A) {
                        collected.append(String(decoding: partial[partial.startIndex..<newline], as: UTF8.self))
                        partial.removeSubrange(partial.startIndex...newline)
                    }
                }
            }
            outputDone.signal()
        }
    }

    /// Every whole line printed so far.
    public var lines: [String] { lock.withLock { collected } }

    /// The `epoch N digest H` lines it printed (`--print-epoch-digests`), by epoch.
    public var epochDigests: [UInt64: UInt64] {
        var digests: [UInt64: UInt64] = [:]
        for line in lines where line.hasPrefix("epoch ") {
            let words = line.split(separator: " ")
            if words.count == 4, let epoch = UInt64(words[1]), let digest = UInt64(words[3], radix: 16) {
                digests[epoch] = digest
            }
        }
        return digests
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// Sends `signal` to the program (through `ip netns exec`, which execs it, so the pid is the program's).
    public func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits until a line satisfies `predicate` or `seconds` pass; the line, or nil.
    public func waitForLine(seconds: Double, _ predicate: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let line = lines.first(where: predicate) { return line }
            if !process.isRunning {
                // Let the reader drain what the program printed before it ended.
                _ = outputDone.wait(timeout: .now() + 1)
                outputDone.signal()
                return lines.first(where: predicate)
            }
            usleep(5_000)
        }
        return nil
    }

    /// Waits until the program's log (its standard error) holds `text`, up to `seconds`; false if it did not,
    /// or the program ended first.
    @discardableResult
    public func waitForLog(_ text: String, seconds: Double = 20) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline, process.isRunning {
            if (try? String(contentsOfFile: logFile, encoding: .utf8))?.contains(text) ?? false { return true }
            usleep(10_000)
        }
        return (try? String(contentsOfFile: logFile, encoding: .utf8))?.contains(text) ?? false
    }

    /// Waits for the program to end, up to `seconds`; its exit status (128+signal when killed), or nil.
    @discardableResult
    public func waitForExit(seconds: Double) -> Int32? {
        guard let status = process.exitStatus(within: seconds) else { return nil }
        _ = outputDone.wait(timeout: .now() + 1)
        outputDone.signal()
        return status
    }

    /// Kills the program and waits for it.
    public func kill9() {
        signal(SIGKILL)
        signal(SIGCONT)
        process.waitUntilExit()
        _ = outputDone.wait(timeout: .now() + 1)
        outputDone.signal()
    }

    deinit {
        if process.isRunning { kill9() }
    }
}

/// One `event ... at NS` line of `--print-events` (``EventLine`` in the CLI), parsed.
public struct LabEvent: Sendable, Equatable {
    /// The words between `event` and `at`: `commit epoch 12 term 3` is ["commit", "epoch", "12", "term", "3"].
    public var words: [String]
    /// The monotonic clock when it was printed.
    public var nanoseconds: UInt64

    public init?(_ line: String) {
        let parts = line.split(separator: " ").map(String.init)
        guard parts.count >= 3, parts[0] == "event", parts[parts.count - 2] == "at",
            let time = UInt64(parts[parts.count - 1])
        else { return nil }
        words = Array(parts[1..<(parts.count - 2)])
        nanoseconds = time
    }

    public var kind: String { words.first ?? "" }

    /// The number after `name` (`epoch`, `term`), if any.
    public func number(_ name: String) -> UInt64? {
        guard let index = words.firstIndex(of: name), index + 1 < words.count else { return nil }
        return UInt64(words[index + 1])
    }
}
