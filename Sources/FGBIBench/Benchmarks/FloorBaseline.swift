import CFloor
import Foundation

/// The machine's floor for FGBI's hot steps, measured in the same run as a benchmark so that its figures
/// can be read as ratios: by this repository's own probe (the CFloor target, ``probe(regionMiB:)``), or by
/// an outside `floor.c` printing the same metrics (``measure(source:regionMiB:)``, kept as a cross-check:
/// `fgbi bench floor --cross-check PATH`).
public struct FloorBaseline: Sendable {
    /// Metric name to value (for example `scan_reprotect_16384_of_262144_pages_ms`).
    public var metrics: [String: Double]
    /// Metric name to unit, in the order measured (the probe's; empty for floor.c's JSON).
    public var units: [(metric: String, unit: String)] = []
    /// Why some figures are missing (the tracker's, when userfaultfd or PAGEMAP_SCAN is unavailable).
    public var note: String?

    public init(metrics: [String: Double], units: [(metric: String, unit: String)] = [], note: String? = nil) {
        self.metrics = metrics
        self.units = units
        self.note = note
    }

    /// Runs this repository's probe over a region of `regionMiB` MiB.
    ///
    /// - Throws: ``BenchmarkError`` when the region cannot be mapped. Tracker figures that cannot be measured
    ///   (no userfaultfd, no PAGEMAP_SCAN) are left out and ``note`` says why.
    public static func probe(regionMiB: Int) throws -> FloorBaseline {
        final class Collected {
            var figures: [(metric: String, value: Double, unit: String)] = []
        }
        let collected = Collected()
        var failedStep: UnsafePointer<CChar>?
        let result = withExtendedLifetime(collected) {
            CFloor_measure(
                max(regionMiB, 1),
                { context, metric, value, unit in
                    let collected = Unmanaged<Collected>.fromOpaque(context!).takeUnretainedValue()
                    collected.figures.append((String(cString: metric!), value, String(cString: unit!)))
                }, Unmanaged.passUnretained(collected).toOpaque(), &failedStep)
        }
        let step = failedStep.map { String(cString: $0) }
        guard !collected.figures.isEmpty else {
            throw BenchmarkError("floor probe: \(step ?? "setup"): \(String(cString: strerror(-result)))")
        }
        var baseline = FloorBaseline(
            metrics: Dictionary(collected.figures.map { ($0.metric, $0.value) }, uniquingKeysWith: { $1 }),
            units: collected.figures.map { ($0.metric, $0.unit) })
        if result != 0, let step {
            baseline.note = "tracker figures not measured: \(step): \(String(cString: strerror(-result)))"
        }
        return baseline
    }

    /// Where floor.c is looked for when no path is given: beside the project checkout, as laid out here.
    public static let defaultSourceCandidates = [
        "../shared/baselines/floor.c", "shared/baselines/floor.c", "../../shared/baselines/floor.c",
    ]

    /// Finds floor.c at `path`, or at the first default candidate that exists.
    public static func locateSource(_ path: String?) -> String? {
        let fileManager = FileManager.default
        if let path { return fileManager.fileExists(atPath: path) ? path : nil }
        return defaultSourceCandidates.first { fileManager.fileExists(atPath: $0) }
    }

    /// Compiles an outside floor.c with `cc -O2` and runs it for `regionMiB`, returning its metrics (a cross-check
    /// of ``probe(regionMiB:)``).
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
                let name = object["metric"] as? String, let value = object["value"] as? Double
            else { continue }
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
