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
