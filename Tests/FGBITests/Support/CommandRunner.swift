import Foundation

/// Runs the `fgbi` executable the package built, as a user would, and captures what it printed.
enum CommandRunner {
    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The built `fgbi`: beside the test bundle in SwiftPM's build directory.
    static let executable: URL? = {
        let here = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        for directory in [here, here.deletingLastPathComponent()] {
            let candidate = directory.appendingPathComponent("fgbi")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return nil
    }()

    /// Starts `fgbi primary` replicating a 16 MiB region written by its built-in workload (20,000 pages per
    /// second, for up to a minute) to the backup on `backupPort` on loopback, its output discarded: a
    /// primary process for a test to kill.
    static func startPrimary(backupPort: UInt16) throws -> Process {
        let primary = Process()
        primary.executableURL = executable
        primary.arguments = [
            "primary", "--backup", "127.0.0.1:\(backupPort)", "--region-mib", "16", "--duration", "60",
            "--pages-per-second", "20000", "--tracker", Kernel.preferredTracker.rawValue,
        ]
        primary.standardOutput = FileHandle.nullDevice
        primary.standardError = FileHandle.nullDevice
        try primary.run()
        return primary
    }

    /// Runs `fgbi arguments`, optionally through a wrapper command (such as setpriv) given as `prefix`.
    static func run(_ arguments: [String], prefix: [String] = [], executable: URL? = nil) throws -> Outcome {
        guard let binary = executable ?? Self.executable else { throw CocoaError(.fileNoSuchFile) }
        let process = Process()
        if prefix.isEmpty {
            process.executableURL = binary
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = prefix + [binary.path] + arguments
        }
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("fgbi-test-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: output.path + ".out", contents: nil)
        _ = FileManager.default.createFile(atPath: output.path + ".err", contents: nil)
        defer {
            try? FileManager.default.removeItem(atPath: output.path + ".out")
            try? FileManager.default.removeItem(atPath: output.path + ".err")
        }
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output.path + ".out"))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: output.path + ".err"))
        try process.run()
        process.waitUntilExit()
        return Outcome(
            status: process.terminationStatus,
            stdout: (try? String(contentsOfFile: output.path + ".out", encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: output.path + ".err", encoding: .utf8)) ?? "")
    }
}
