import CSupport
import FGBI

/// `fgbi bench pause`: the guest pause of an epoch (tracker collect plus capture) for a region with a given
/// number of written pages, per mode (and for `fgbi` per capture strategy), beside the floor for the same work measured alone in the same run:
/// the PAGEMAP_SCAN walk that finds and re-protects the written pages, plus the cheaper of copying those
/// pages or hashing them (and copying the changed blocks).
public struct PauseBenchmark: Sendable {
    public struct Configuration: Sendable {
        public var regionsMiB = [1024]
        public var writtenPages = [1000, 10_000, 50_000]
        public var modes: [ReplicationMode] = [.fgbi, .page]
        public var epochs = 20
        public var blockSize = 64
        public var seed: UInt64 = 5
        public init() {}
    }

    public struct Case: Codable, Sendable {
        public var regionMib: Int
        public var mode: String
        public var writtenPages: Int
        public var epochs: Int
        public var pauseMsP50: Double
        public var pauseMsP99: Double
        /// Of the pause: collecting the written pages (PAGEMAP_SCAN and re-protect, through the tracker).
        public var collectMsP50: Double
        /// The floor, each step timed alone (medians): the raw scan, copying the pages, hashing them.
        public var floorScanMs: Double
        public var floorCopyMs: Double
        public var floorHashMs: Double
        /// scan + min(copy, hash + changed-block copy).
        public var floorMs: Double
        /// pauseMsP99 / floorMs.
        public var p99OverFloor: Double
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    public func run(progress: (String) -> Void) throws -> [Case] {
        var cases: [Case] = []
        for regionMiB in configuration.regionsMiB {
            let memory = try GuestMemory.anonymous(length: regionMiB << 20)
            progress("pause: pre-faulting \(regionMiB) MiB")
            try memory.prefault()
            for written in configuration.writtenPages where written <= memory.pageCount {
                let floor = try measureFloor(memory, written: written)
                for mode in configuration.modes {
                    for strategy in mode == .fgbi ? [CaptureStrategy.rehash, .copyPages] : [.rehash] {
                        let label = mode == .fgbi ? "\(mode)/\(strategy)" : mode.rawValue
                        progress("pause: \(regionMiB) MiB, \(written) written pages, \(label)")
                        cases.append(try measure(memory, mode: mode, strategy: strategy, label: label, written: written,
                                                 floor: floor, regionMiB: regionMiB))
                    }
                }
            }
        }
        return cases
    }

    /// Writes one 8-byte word in each of `count` distinct random pages; returns the pages, sorted.
    private func write(_ memory: GuestMemory, count: Int, random: inout SeededRandom) -> [Int] {
        var pages = Set<Int>()
        while pages.count < count { pages.insert(Int(random.next() % UInt64(memory.pageCount))) }
        for page in pages {
            memory.page(page).storeBytes(of: random.next() | 1, toByteOffset: Int(random.next() % 512) * 8, as: UInt64.self)
        }
        return pages.sorted()
    }

    private func measure(_ memory: GuestMemory, mode: ReplicationMode, strategy: CaptureStrategy, label: String, written: Int,
                         floor: (scan: Double, copy: Double, hash: Double), regionMiB: Int) throws -> Case {
        var engineConfiguration = EngineConfiguration(mode: mode, blockSize: configuration.blockSize)
        engineConfiguration.captureStrategy = strategy
        let engine = try PrimaryEngine(regions: [memory], configuration: engineConfiguration)
        let tracker = try TrackerKind.uffdAsync.makeTracker(for: memory)
        let capture = EpochCapture()
        // Set-up, not timed: room for every page written (whole pages in the page modes) and no first-touch faults.
        capture.reserve(items: written * 2, itemSize: mode == .fgbi && strategy == .rehash ? configuration.blockSize : GuestMemory.pageSize)
        var dirty = DirtyPageSet()
        dirty.reserveCapacity(runs: written)
        try tracker.start()
        defer { try? tracker.stop() }
        try engine.capture([dirty], into: capture)  // epoch 0, the full pass, not timed
        _ = try engine.encode(capture)
        var random = SeededRandom(seed: configuration.seed)
        var pauses: [Double] = []
        var collects: [Double] = []
        for _ in 0..<configuration.epochs {
            _ = write(memory, count: written, random: &random)
            let start = MonotonicClock.nanoseconds()
            try tracker.collect(into: &dirty)
            let collected = MonotonicClock.nanoseconds()
            try engine.capture([dirty], into: capture)
            let end = MonotonicClock.nanoseconds()
            pauses.append(Double(end - start) / 1e6)
            collects.append(Double(collected - start) / 1e6)
            _ = try engine.encode(capture)  // after the pause, as the pipeline does; not timed
            guard dirty.pageCount == written else { throw BenchmarkError("tracker reported \(dirty.pageCount) of \(written) written pages") }
        }
        let floorTotal = floor.scan + min(floor.copy, floor.hash)
        let p99 = Summary.percentile(pauses, 0.99)
        return Case(regionMib: regionMiB, mode: label, writtenPages: written, epochs: configuration.epochs,
                    pauseMsP50: Summary(pauses).median, pauseMsP99: p99, collectMsP50: Summary(collects).median,
                    floorScanMs: floor.scan, floorCopyMs: floor.copy, floorHashMs: floor.hash, floorMs: floorTotal,
                    p99OverFloor: p99 / floorTotal)
    }

    /// Each floor step alone, median over the epochs: a raw PAGEMAP_SCAN loop with re-protection (through
    /// an async write-protect registration of its own), a memcpy of the written pages, and an XXH3 of their
    /// blocks plus a copy of one block per page (what a sparse write changes).
    private func measureFloor(_ memory: GuestMemory, written: Int) throws -> (scan: Double, copy: Double, hash: Double) {
        let uffd = try Userfaultfd(required: [.wpAsync, .wpUnpopulated], purpose: "the pause floor")
        try uffd.registerAndProtect(address: memory.address, length: UInt64(memory.length))
        defer { try? uffd.unregister(address: memory.address, length: UInt64(memory.length)) }
        let scanner = try PagemapScanner()
        try scanner.collectWritten(start: memory.address, end: memory.address + UInt64(memory.length)) { _, _ in }
        let staging = UnsafeMutableRawPointer.allocate(byteCount: written * GuestMemory.pageSize, alignment: 64)
        defer { staging.deallocate() }
        staging.initializeMemory(as: UInt8.self, repeating: 0, count: written * GuestMemory.pageSize)  // pre-fault
        let blocksPerPage = GuestMemory.pageSize / configuration.blockSize
        let hashes = UnsafeMutablePointer<UInt64>.allocate(capacity: written * blocksPerPage)
        defer { hashes.deallocate() }
        hashes.initialize(repeating: 0, count: written * blocksPerPage)
        var random = SeededRandom(seed: configuration.seed &+ 99)
        var scans: [Double] = [], copies: [Double] = [], hashings: [Double] = []
        for _ in 0..<max(configuration.epochs / 2, 3) {
            let pages = write(memory, count: written, random: &random)
            var start = MonotonicClock.nanoseconds()
            var found = 0
            try scanner.collectWritten(start: memory.address, end: memory.address + UInt64(memory.length)) { _, length in
                found += Int(length) / GuestMemory.pageSize
            }
            scans.append(Double(MonotonicClock.nanoseconds() - start) / 1e6)
            start = MonotonicClock.nanoseconds()
            for (index, page) in pages.enumerated() {
                (staging + index * GuestMemory.pageSize).copyMemory(from: memory.page(page), byteCount: GuestMemory.pageSize)
            }
            copies.append(Double(MonotonicClock.nanoseconds() - start) / 1e6)
            start = MonotonicClock.nanoseconds()
            for (index, page) in pages.enumerated() {
                CSupport_hash_blocks(memory.page(page), configuration.blockSize, blocksPerPage, hashes + index * blocksPerPage)
                (staging + index * configuration.blockSize).copyMemory(from: memory.page(page), byteCount: configuration.blockSize)
            }
            hashings.append(Double(MonotonicClock.nanoseconds() - start) / 1e6)
            guard found == written else { throw BenchmarkError("floor scan found \(found) of \(written) written pages") }
        }
        return (Summary(scans).median, Summary(copies).median, Summary(hashings).median)
    }
}
