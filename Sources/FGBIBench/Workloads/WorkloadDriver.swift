import FGBI
import Foundation
import Synchronization

/// Writer threads that keep writing a region with a ``SyntheticWorkload`` pattern until stopped, and a
/// pause gate the primary's ``PauseHooks`` use: `pause()` returns once no writer is mid-write, and
/// writers wait until as many `resume()`s have come (pauses nest, so the primary's epoch boundary inside
/// an outer pause does not let the writers go). Stands in for a guest in `fgbi primary`, the demo and tests.
public final class WorkloadDriver: @unchecked Sendable {
    public let memory: GuestMemory
    public let workload: SyntheticWorkload
    /// Pages written per second by all threads together (spread evenly).
    public let pagesPerSecond: Int
    private let threadCount: Int
    private let pauseDepth = Atomic<Int>(0)
    private let writersInside = Atomic<Int>(0)
    private let running = Atomic<Bool>(false)
    private let pagesWritten = Atomic<Int>(0)
    private let finished = DispatchGroup()
    private let seed: UInt64

    public init(
        memory: GuestMemory, workload: SyntheticWorkload, threads: Int = 2, pagesPerSecond: Int = 100_000,
        seed: UInt64 = 7
    ) {
        self.memory = memory
        self.workload = workload
        threadCount = max(threads, 1)
        self.pagesPerSecond = max(pagesPerSecond, 1)
        self.seed = seed
    }

    /// Hooks that stop and restart the writers at epoch boundaries.
    public var hooks: PauseHooks {
        PauseHooks(pause: { [self] in pause() }, resume: { [self] in resume() })
    }

    /// Pages written so far.
    public var written: Int { pagesWritten.load(ordering: .relaxed) }

    /// Starts the writer threads.
    public func start() {
        running.store(true, ordering: .sequentiallyConsistent)
        for thread in 0..<threadCount {
            finished.enter()
            Thread.detachNewThread { [self] in
                writerLoop(thread)
                finished.leave()
            }
        }
    }

    /// Stops the writers and waits for them; nothing is written after it returns.
    public func stop() {
        running.store(false, ordering: .sequentiallyConsistent)
        finished.wait()
    }

    /// Returns once every writer is outside a write batch; writers then wait until the matching ``resume()``.
    public func pause() {
        pauseDepth.add(1, ordering: .sequentiallyConsistent)
        while writersInside.load(ordering: .sequentiallyConsistent) != 0 { sched_yield() }
    }

    public func resume() {
        pauseDepth.subtract(1, ordering: .sequentiallyConsistent)
    }

    private func writerLoop(_ thread: Int) {
        var random = SeededRandom(seed: seed &+ UInt64(thread) &* 0x9E37_79B9)
        let batch = 16
        let perThreadRate = Double(pagesPerSecond) / Double(threadCount)
        let start = MonotonicClock.nanoseconds()
        var done = 0
        while running.load(ordering: .relaxed) {
            // Enter the gate: announce, then check for a pause (the pauser does the opposite order).
            writersInside.add(1, ordering: .sequentiallyConsistent)
            if pauseDepth.load(ordering: .sequentiallyConsistent) > 0 {
                writersInside.subtract(1, ordering: .sequentiallyConsistent)
                while pauseDepth.load(ordering: .sequentiallyConsistent) > 0 && running.load(ordering: .relaxed) {
                    sched_yield()
                }
                continue
            }
            workload.writeEpoch(memory, pages: batch, random: &random)
            writersInside.subtract(1, ordering: .sequentiallyConsistent)
            done += batch
            pagesWritten.add(batch, ordering: .relaxed)
            // Keep to the rate: sleep when ahead of schedule.
            let due = Double(done) / perThreadRate
            let elapsed = Double(MonotonicClock.nanoseconds() - start) / 1e9
            if due > elapsed { usleep(UInt32(min((due - elapsed) * 1e6, 100_000))) }
        }
    }
}
