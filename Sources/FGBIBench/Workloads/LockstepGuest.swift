import FGBI
import Foundation

/// A guest that writes only when told to, one epoch's worth at a time, so every mode of a benchmark
/// replicates the very same sequence of memory states: ``writeNext()`` writes the next epoch of a
/// ``SyntheticWorkload`` (a fixed number of pages, from a seed) or the next image of a trace, holding a gate
/// that the primary's ``hooks`` take at each epoch boundary, so an epoch never cuts through a write.
public final class LockstepGuest: @unchecked Sendable {
    /// Where the writes come from.
    public enum Source: Sendable {
        case workload(SyntheticWorkload, pagesPerEpoch: Int, seed: UInt64)
        case trace(TraceDirectory)
    }

    public let memory: GuestMemory
    private let source: Source
    private var random: SeededRandom
    private let replayer: TraceReplayer?
    private let gate = NSLock()
    /// Pages written by the last ``writeNext()`` (a workload's count of writes; a trace's differing pages).
    public private(set) var lastWritten = 0

    /// Fills `memory` with the source's initial content (the trace's first image, or guest-like content from
    /// the seed). Call before tracking starts.
    public init(memory: GuestMemory, source: Source) throws(TraceError) {
        self.memory = memory
        self.source = source
        switch source {
        case .workload(_, _, let seed):
            random = SeededRandom(seed: seed &+ 1)
            replayer = nil
            SyntheticWorkload.fillGuest(memory, seed: seed)
        case .trace(let trace):
            random = SeededRandom(seed: 0)
            let replay = try TraceReplayer(memory: memory, trace: trace)
            try replay.prepare()
            replayer = replay
        }
    }

    /// Close the gate (waiting for a write in progress) at an epoch boundary, and open it again.
    public var hooks: PauseHooks {
        PauseHooks(pause: { [gate] in gate.lock() }, resume: { [gate] in gate.unlock() })
    }

    /// Writes the next epoch; false (writing nothing) when a trace has no more images.
    public func writeNext() throws(TraceError) -> Bool {
        gate.lock()
        defer { gate.unlock() }
        switch source {
        case .workload(let workload, let pages, _):
            workload.writeEpoch(memory, pages: pages, random: &random)
            lastWritten = pages
            return true
        case .trace:
            guard try replayer!.writeNext() else { return false }
            lastWritten = replayer!.lastWritten.pageCount
            return true
        }
    }
}
