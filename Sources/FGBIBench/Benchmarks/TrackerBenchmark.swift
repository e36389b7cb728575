import FGBI
import Foundation

/// `fgbi bench tracker`: the per-epoch cost of collecting and re-protecting a region's dirty set, and the
/// cost of a first write to a tracked page, per tracker backend, side by side with the machine's floor.
public struct TrackerBenchmark: Sendable {
    /// What to measure.
    public struct Configuration: Sendable {
        public var regionMiB = 1024
        public var trackers: [TrackerKind] = [.uffdAsync, .scan]
        /// Written pages per epoch; 0 stands for every page of the region.
        public var writtenPages = [1024, 16384, 0]
        public var repetitions = 5
        public var seed: UInt64 = 1
        public init() {}
    }

    /// One (tracker, written pages) case.
    public struct Case: Codable, Sendable {
        public var tracker: String
        public var regionMib: Int
        public var writtenPages: Int
        public var repetitions: Int
        /// Collect + re-protect time per epoch, milliseconds.
        public var collectMsMedian: Double
        public var collectMsMin: Double
        public var collectMsMax: Double
        /// The first write to a tracked page, microseconds per page (median over repetitions).
        public var firstWriteUsPerPage: Double
        /// The same writes with tracking off, microseconds per page: the cost of the write itself.
        public var untrackedWriteUsPerPage: Double
        /// Every epoch reported exactly the pages written.
        public var exact: Bool
        /// floor's collect time for the same case, when floor ran and measures it.
        public var floorCollectMs: Double?
        /// collectMsMedian / floorCollectMs.
        public var collectRatioToFloor: Double?
        /// floor's first-write cost for the same case.
        public var floorFirstWriteUsPerPage: Double?
        /// The `scan` backend's median collect time divided by this one's, for the same case.
        public var scanOverThis: Double?
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    /// Runs every case; `progress` receives a line before each.
    public func run(floor: FloorBaseline?, progress: (String) -> Void) throws -> [Case] {
        let length = configuration.regionMiB << 20
        var cases: [Case] = []
        for tracker in configuration.trackers {
            for requested in configuration.writtenPages {
                progress(
                    """
                    tracker \(tracker): \(requested == 0 ? "all" : String(requested)) written pages of \
                    \(length / GuestMemory.pageSize)
                    """
                )
                cases.append(try measure(tracker: tracker, requestedPages: requested, length: length, floor: floor))
            }
        }
        for index in cases.indices {
            guard
                let scan = cases.first(where: {
                    $0.tracker == TrackerKind.scan.rawValue && $0.writtenPages == cases[index].writtenPages
                })
            else { continue }
            cases[index].scanOverThis = scan.collectMsMedian / cases[index].collectMsMedian
        }
        return cases
    }

    private func measure(tracker kind: TrackerKind, requestedPages: Int, length: Int, floor: FloorBaseline?) throws
        -> Case
    {
        let memory = try GuestMemory.anonymous(length: length)
        try memory.prefault()
        let pageCount = memory.pageCount
        let written = requestedPages == 0 ? pageCount : min(requestedPages, pageCount)
        var random = SeededRandom(seed: configuration.seed)
        var pages = [Int](repeating: 0, count: written)

        // The write itself, untracked, so the fault cost can be told apart from the store.
        var untracked: [Double] = []
        for _ in 0..<configuration.repetitions {
            choosePages(&pages, pageCount: pageCount, random: &random)
            untracked.append(timeWrites(memory, pages, &random) / Double(written) * 1e6)
        }

        let tracker = try kind.makeTracker(for: memory)
        try tracker.start()
        defer { try? tracker.stop() }
        var dirty = DirtyPageSet()
        try tracker.collect(into: &dirty) // settle: nothing should be pending
        var collect: [Double] = []
        var firstWrite: [Double] = []
        var exact = dirty.isEmpty
        for _ in 0..<configuration.repetitions {
            choosePages(&pages, pageCount: pageCount, random: &random)
            firstWrite.append(timeWrites(memory, pages, &random) / Double(written) * 1e6)
            let start = MonotonicClock.nanoseconds()
            try tracker.collect(into: &dirty)
            collect.append(Double(MonotonicClock.nanoseconds() - start) / 1e6)
            exact = exact && dirty.pageCount == written && pages.allSatisfy { dirty.contains($0) }
        }

        let collectStats = Summary(collect)
        let floorCollect = floor?.metrics["scan_reprotect_\(written)_of_\(pageCount)_pages_ms"]
        return Case(
            tracker: kind.rawValue, regionMib: configuration.regionMiB, writtenPages: written,
            repetitions: configuration.repetitions,
            collectMsMedian: collectStats.median, collectMsMin: collectStats.min, collectMsMax: collectStats.max,
            firstWriteUsPerPage: Summary(firstWrite).median, untrackedWriteUsPerPage: Summary(untracked).median,
            exact: exact, floorCollectMs: kind == .uffdAsync ? floorCollect : nil,
            collectRatioToFloor: kind == .uffdAsync ? floorCollect.map { collectStats.median / $0 } : nil,
            floorFirstWriteUsPerPage: kind == .uffdAsync ? floor?.metrics["first_write_after_wp_us_\(written)"] : nil)
    }

    /// Picks `pages.count` distinct pages spread over the region: a stride walk from a random start, as
    /// floor.c does, so both touch the same kind of pattern.
    private func choosePages(_ pages: inout [Int], pageCount: Int, random: inout SeededRandom) {
        let stride = max(pageCount / pages.count, 1)
        let start = Int(random.next() % UInt64(stride))
        for i in pages.indices { pages[i] = (start + i * stride) % pageCount }
    }

    /// Flips one byte at a random offset of each page; returns the seconds taken.
    private func timeWrites(_ memory: GuestMemory, _ pages: [Int], _ random: inout SeededRandom) -> Double {
        let offsets = pages.map { _ in Int(random.next() % UInt64(GuestMemory.pageSize)) }
        let start = MonotonicClock.nanoseconds()
        for (page, offset) in zip(pages, offsets) {
            let byte = memory.page(page).advanced(by: offset).assumingMemoryBound(to: UInt8.self)
            byte.pointee ^= 1
        }
        return Double(MonotonicClock.nanoseconds() - start) / 1e9
    }
}
