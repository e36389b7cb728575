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
