import ArgumentParser
import FGBIBench

/// Runs the floor baseline for a benchmark when asked, saying on standard error what it did: this
/// repository's probe, or with `path` an outside floor.c printing the same metrics.
enum FloorRun {
    static func measure(enabled: Bool, path: String?, regionMiB: Int) throws -> FloorBaseline? {
        guard enabled else { return nil }
        guard let path else {
            Progress.note("floor: measuring this machine's floor (the CFloor probe) over \(regionMiB) MiB")
            let baseline = try FloorBaseline.probe(regionMiB: regionMiB)
            if let note = baseline.note { Progress.note("floor: \(note)") }
            return baseline
        }
        guard let source = FloorBaseline.locateSource(path) else {
            throw BenchmarkError("floor.c not found at \(path)")
        }
        Progress.note("floor: building and running \(source) for \(regionMiB) MiB")
        return try FloorBaseline.measure(source: source, regionMiB: regionMiB)
    }
}

/// The floor options of the benchmarks whose ratios use the machine's floor (`bench engine`, `bench tracker`).
struct FloorOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Measure the floor with this outside floor.c instead of the built-in probe "
                + "(a cross-check: fgbi bench floor).")
    )
    var floor: String?

    @Flag(help: "Skip the floor baseline.")
    var noFloor = false

    /// The floor, measured as asked (nil with --no-floor).
    func measure(regionMiB: Int) throws -> FloorBaseline? {
        try FloorRun.measure(enabled: !noFloor, path: floor, regionMiB: regionMiB)
    }
}
