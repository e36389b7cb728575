import FGBI

/// Records a built-in workload as a trace directory: the region's initial content as image 0, then a
/// snapshot after each epoch, taken with the writers paused (what `fgbi trace record` runs).
public struct WorkloadTraceRecorder: Sendable {
    public var workload: SyntheticWorkload = .guest
    /// Region size in bytes (a whole number of pages).
    public var regionBytes = 16 << 20
    /// Epochs recorded: the directory gets one more image than this.
    public var epochs = 10
    /// Milliseconds the writers run between snapshots.
    public var epochMs = 50.0
    public var threads = 2
    /// Page writes per second, all writer threads together.
    public var pagesPerSecond = 20_000
    public var seed: UInt64 = 42

    public init() {}

    /// Writes the trace into `path` (created if missing; it must not hold images already) and returns it
    /// opened.
    public func record(to path: String, progress: (String) -> Void = { _ in }) throws -> TraceDirectory {
        guard epochs > 0 else { throw FGBIError.invalidArgument("a trace recording needs at least one epoch") }
        let writer = try TraceDirectoryWriter(path: path)
        let memory = try GuestMemory.anonymous(length: regionBytes)
        try memory.prefault()
        workload.fillInitialContent(memory, seed: seed)
        try writer.append(memory)
        let driver = WorkloadDriver(
            memory: memory, workload: workload, threads: threads, pagesPerSecond: pagesPerSecond, seed: seed)
        let epochNanoseconds = UInt64(epochMs * 1e6)
        let start = MonotonicClock.nanoseconds()
        driver.start()
        defer { driver.stop() }
        for epoch in 1...epochs {
            let due = start + UInt64(epoch) * epochNanoseconds
            let now = MonotonicClock.nanoseconds()
            if due > now { MonotonicClock.sleep(nanoseconds: due - now) }
            driver.pause()
            defer { driver.resume() }
            try writer.append(memory)
            if epoch % max(epochs / 10, 1) == 0 || epoch == epochs { progress("recorded epoch \(epoch)/\(epochs)") }
        }
        try writer.finish(TraceDirectory.Metadata(epochMs: epochMs, source: "workload:\(workload.rawValue)"))
        return try TraceDirectory.open(path)
    }
}
