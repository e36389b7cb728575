import FGBIBench

/// Runs the floor baseline for a benchmark when asked, saying on standard error what it did.
enum FloorRun {
    static func measure(enabled: Bool, path: String?, regionMiB: Int) throws -> FloorBaseline? {
        guard enabled else { return nil }
        guard let source = FloorBaseline.locateSource(path) else {
            Progress.note("floor: floor.c not found (\(path ?? FloorBaseline.defaultSourceCandidates.joined(separator: ", "))); ratios omitted")
            return nil
        }
        Progress.note("floor: building and running \(source) for \(regionMiB) MiB")
        return try FloorBaseline.measure(source: source, regionMiB: regionMiB)
    }
}
