import Foundation

/// The `fgbi` executable running in the background, its standard error read as it goes (to wait for a line)
/// and its standard output kept for the end.
final class RunningCommand {
    let process = Process()
    private let errors = Pipe()
    private let output = Pipe()
    private(set) var stderr = ""
    private(set) var stdout = ""

    init(_ arguments: [String]) throws {
        process.executableURL = CommandRunner.executable
        process.arguments = arguments
        process.standardError = errors
        process.standardOutput = output
        try process.run()
    }

    /// Reads standard error until a line contains `text`; returns that line.
    func waitFor(_ text: String, seconds: Double = 20) -> String? {
        waitFor(seconds: seconds) { $0.contains(text) }
    }

    /// Reads standard error until a line satisfies `wanted`; returns the first that does.
    func waitFor(seconds: Double = 20, _ wanted: (Substring) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let line = stderr.split(separator: "\n").first(where: wanted) { return String(line) }
            guard process.isRunning else { break }
            stderr += String(decoding: errors.fileHandleForReading.availableData, as: UTF8.self)
        }
        return stderr.split(separator: "\n").first(where: wanted).map(String.init)
    }

    /// Waits for the process to end (killing it after `seconds`) and returns its exit status.
    func finish(seconds: Double = 60) -> Int32 {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        stderr += String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        stdout += String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return process.terminationStatus
    }

    /// Ends the process if it still runs (for `defer`).
    func end() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
