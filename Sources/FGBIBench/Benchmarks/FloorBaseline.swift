import Foundation

/// The machine's floor for FGBI's hot steps, measured by ../shared/baselines/floor.c in the same run as a
/// benchmark: built with the system C compiler, run for the same region size, read back as JSON.
public struct FloorBaseline: Sendable {
    /// Metric name to value, as floor printed them (for example `scan_reprotect_16384_of_262144_pages_ms`).
    public var metrics: [String: Double]

    /// Where floor.c is looked for when no path is given: beside the project checkout, as laid out here.
    public static let defaultSourceCandidates = ["../shared/baselines/floor.c", "shared/baselines/floor.c", "../../shared/baselines/floor.c"]

    /// Finds floor.c at `path`, or at the first default candidate that exists.
    public static func locateSource(_ path: String?) -> String? {
        let fileManager = FileManager.default
        if let path { return fileManager.fileExists(atPath: path) ? path : nil }
        return defaultSourceCandidates.first { fileManager.fileExists(atPath: $0) }
    }

    /// Compiles floor.c with `cc -O2` and runs it for `regionMiB`, returning its metrics.
    public static func measure(source: String, regionMiB: Int) throws -> FloorBaseline {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fgbi-floor-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let binary = directory.appendingPathComponent("floor").path
        _ = try run("/usr/bin/env", ["cc", "-O2", "-o", binary, source, "-lxxhash", "-llz4"], what: "building floor.c")
        let output = try run(binary, [String(regionMiB), "--json"], what: "running floor")
        var metrics: [String: Double] = [:]
        for line in output.split(separator: "\n") {
            guard let data = line.data(using: .utf8),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let name = object["metric"] as? String, let value = object["value"] as? Double else { continue }
            metrics[name] = value
        }
        guard !metrics.isEmpty else { throw BenchmarkError("floor printed no metrics") }
        return FloorBaseline(metrics: metrics)
    }

    private static func run(_ executable: String, _ arguments: [String], what: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errors, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw BenchmarkError("\(what) failed (exit \(process.terminationStatus)): \(message)")
        }
        return String(decoding: output, as: UTF8.self)
    }
}

/// A benchmark that could not run, with the reason.
public struct BenchmarkError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
