import FGBI

/// The memory history a benchmark replays: a built-in workload (from a seed) or a recorded trace.
public enum BenchmarkSource: Sendable {
    case workload(SyntheticWorkload)
    case trace(TraceDirectory)

    /// The name tables print: the workload's, or `trace:` and the directory's last component.
    public var name: String {
        switch self {
        case .workload(let workload): workload.rawValue
        case .trace(let trace): "trace:" + (trace.path.split(separator: "/").last.map(String.init) ?? trace.path)
        }
    }

    /// The region's size: one image for a trace.
    public func regionBytes(default bytes: Int) -> Int {
        if case .trace(let trace) = self { return trace.imageSize }
        return bytes
    }

    /// Epochs a run can have: `wanted`, or fewer when a trace has fewer images.
    public func epochs(wanted: Int) throws -> Int {
        if case .trace(let trace) = self {
            guard trace.epochCount >= 1 else {
                throw BenchmarkError("the trace \(trace.path) has one image: nothing to replicate")
            }
            return min(wanted, trace.epochCount)
        }
        return wanted
    }

    func guestSource(pagesPerEpoch: Int, seed: UInt64) -> LockstepGuest.Source {
        switch self {
        case .workload(let workload): .workload(workload, pagesPerEpoch: pagesPerEpoch, seed: seed)
        case .trace(let trace): .trace(trace)
        }
    }
}
