import FGBI
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// What `fgbi demo` runs until the networked replicator exists: a region written by several threads in
/// epochs; at each epoch boundary the chosen tracker collects the written pages (checked against the
/// writers' own record and against the `scan` backend watching the same memory), the engine turns them into
/// an epoch delta, and an in-process replica applies it and is compared with the primary bit for bit.
public struct TrackingDemo: Sendable {
    public var regionMiB = 64
    public var tracker: TrackerKind = .uffdAsync
    public var mode: ReplicationMode = .fgbi
    public var epochs = 10
    public var writerThreads = 2
    public var writesPerThread = 2000
    public var seed: UInt64 = 42

    public init() {}

    /// One epoch's outcome.
    public struct Epoch: Sendable {
        public var number: Int
        public var pagesWritten: Int
        public var pagesReported: Int
        public var collectMicroseconds: Double
        public var matchesWriters: Bool
        public var matchesScan: Bool
        /// Blocks (pages, in the page modes) that changed and were sent.
        public var blocksSent: Int
        /// The epoch delta's size, and what sending the written pages whole would have cost.
        public var deltaBytes: Int
        public var pageBytes: Int
        /// The replica equals the primary after applying the delta.
        public var replicaIdentical: Bool
    }

    /// Runs the epochs, handing each to `report` as it completes.
    public func run(report: (Epoch) -> Void) throws {
        let memory = try GuestMemory.anonymous(length: regionMiB << 20)
        let backup = try GuestMemory.anonymous(length: regionMiB << 20)
        try memory.prefault()
        try backup.prefault()
        let engine = try PrimaryEngine(regions: [memory], configuration: EngineConfiguration(mode: mode))
        let replica = Replica(regions: [backup], geometry: engine.geometry)
        let capture = EpochCapture()
        let tracked = try tracker.makeTracker(for: memory)
        let reference = ScanTracker(memory: memory)
        try reference.start()
        try tracked.start()
        defer { try? tracked.stop() }
        // Epoch 0 copies the whole region to the replica.
        try engine.capture([], into: capture)
        try replica.apply(engine.encode(capture).delta)
        var reported = DirtyPageSet()
        var scanned = DirtyPageSet()
        let pageCount = memory.pageCount
        // A hot set of a sixteenth of the region takes most writes, as a server's memory would.
        let hotPages = max(pageCount / 16, 1)
        for epoch in 1...epochs {
            let written = Self.writeConcurrently(
                memory, threads: writerThreads, writesPerThread: writesPerThread,
                seed: seed &+ UInt64(epoch), hotPages: hotPages)
            let start = MonotonicClock.nanoseconds()
            try tracked.collect(into: &reported)
            let elapsed = Double(MonotonicClock.nanoseconds() - start) / 1e3
            try reference.collect(into: &scanned)
            try engine.capture([reported], into: capture)
            let (delta, statistics) = try engine.encode(capture)
            try replica.apply(delta)
            let truth = DirtyPageSet(pages: written)
            report(
                Epoch(
                    number: epoch, pagesWritten: truth.pageCount, pagesReported: reported.pageCount,
                    collectMicroseconds: elapsed, matchesWriters: reported == truth, matchesScan: reported == scanned,
                    blocksSent: statistics.blocksDirty, deltaBytes: delta.count,
                    pageBytes: reported.pageCount * GuestMemory.pageSize,
                    replicaIdentical: memcmp(memory.base, backup.base, memory.length) == 0))
        }
    }

    /// Lets `threads` threads each store `writesPerThread` unique 8-byte values at random aligned offsets,
    /// mostly within the first `hotPages` pages, and returns every page written.
    public static func writeConcurrently(
        _ memory: GuestMemory, threads: Int, writesPerThread: Int, seed: UInt64, hotPages: Int
    ) -> [Int] {
        let pageCount = memory.pageCount
        let slotsPerPage = GuestMemory.pageSize / 8
        // Each thread fills its own slice, so the unsynchronized buffer is safe.
        nonisolated(unsafe) let results = UnsafeMutableBufferPointer<Int>.allocate(capacity: threads * writesPerThread)
        defer { results.deallocate() }
        let base = UInt(bitPattern: memory.base)
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            var random = SeededRandom(seed: seed &* 31 &+ UInt64(thread))
            let region = UnsafeMutablePointer<UInt64>(bitPattern: base)!
            for write in 0..<writesPerThread {
                let hot = random.next() % 10 < 9
                let page = Int(random.next() % UInt64(hot ? hotPages : pageCount))
                let slot = Int(random.next() % UInt64(slotsPerPage))
                // Unique per (seed, thread, write), so the page's content surely changes.
                region[page * slotsPerPage + slot] = (seed << 40) ^ (UInt64(thread) << 32) ^ UInt64(write + 1)
                results[thread * writesPerThread + write] = page
            }
        }
        return Array(results)
    }
}
