import CSupport
import FGBI
import Foundation

/// `fgbi bench pause`: the guest pause of an epoch (tracker collect plus capture) for a region with a given
/// number of written pages, per mode (and for `fgbi` per capture strategy), beside the floor for the same
/// work measured alone: the PAGEMAP_SCAN walk that finds and re-protects the written pages, plus the cheaper
/// of copying those pages or hashing them (and copying the changed blocks).
///
/// Variants are measured side by side: each has a region of its own, every epoch writes the same pages in
/// all of them, and the variants are timed one after another within the epoch, in rotating order, so drift
/// of the shared machine hits them alike.
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
        /// The floor's own 99th percentile: scan p99 + the cheaper of copy p99 and hash p99, so the pause's
        /// tail is compared with the tail of the same work done alone.
        public var floorMsP99: Double
        /// pauseMsP99 / floorMsP99.
        public var p99OverFloorP99: Double
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    /// One measured variant: its own region, tracker, engine and capture.
    private final class Variant {
        let label: String
        let memory: GuestMemory
        let tracker: any DirtyTracker
        let engine: PrimaryEngine
        let capture = EpochCapture()
        var dirty = DirtyPageSet()
        var pauses: [Double] = []
        var collects: [Double] = []

        init(
            label: String, memory: GuestMemory, mode: ReplicationMode, strategy: CaptureStrategy, blockSize: Int,
            written: Int
        ) throws {
            self.label = label
            self.memory = memory
            var configuration = EngineConfiguration(mode: mode, blockSize: blockSize)
            configuration.captureStrategy = strategy
            engine = try PrimaryEngine(regions: [memory], configuration: configuration)
            tracker = try TrackerKind.uffdAsync.makeTracker(for: memory)
            // Set-up, not timed: room for every written page and no first-touch faults later.
            capture.reserve(
                items: written * 2, itemSize: mode == .fgbi && strategy == .rehash ? blockSize : GuestMemory.pageSize)
            dirty.reserveCapacity(runs: written)
            try tracker.start()
            try engine.capture([dirty], into: capture) // epoch 0, the full pass
            _ = try engine.encode(capture)
        }

        func epoch(expected: Int) throws {
            let start = MonotonicClock.nanoseconds()
            try tracker.collect(into: &dirty)
            let collected = MonotonicClock.nanoseconds()
            try engine.capture([dirty], into: capture)
            let end = MonotonicClock.nanoseconds()
            pauses.append(Double(end - start) / 1e6)
            collects.append(Double(collected - start) / 1e6)
            guard dirty.pageCount == expected else {
                throw BenchmarkError("\(label): tracker reported \(dirty.pageCount) of \(expected) pages")
            }
            _ = try engine.encode(capture) // after the pause, as the pipeline does; not timed
        }

        deinit { try? tracker.stop() }
    }

    /// The floor steps on a region of their own.
    private final class Floor {
        let memory: GuestMemory
        let uffd: Userfaultfd
        let scanner: PagemapScanner
        let staging: UnsafeMutableRawPointer
        let hashes: UnsafeMutablePointer<UInt64>
        let blockSize: Int
        var scans: [Double] = [], copies: [Double] = [], hashings: [Double] = []

        init(memory: GuestMemory, written: Int, blockSize: Int) throws {
            self.memory = memory
            self.blockSize = blockSize
            uffd = try Userfaultfd(required: [.wpAsync, .wpUnpopulated], purpose: "the pause floor")
            try uffd.registerAndProtect(address: memory.address, length: UInt64(memory.length))
            scanner = try PagemapScanner()
            staging = .allocate(byteCount: written * GuestMemory.pageSize, alignment: 64)
            staging.initializeMemory(as: UInt8.self, repeating: 0, count: written * GuestMemory.pageSize)
            let blocks = written * GuestMemory.pageSize / blockSize
            hashes = .allocate(capacity: blocks)
            hashes.initialize(repeating: 0, count: blocks)
        }

        deinit {
            try? uffd.unregister(address: memory.address, length: UInt64(memory.length))
            staging.deallocate()
            hashes.deallocate()
        }

        func epoch(pages: [Int]) throws {
            var start = MonotonicClock.nanoseconds()
            var found = 0
            try scanner.collectWritten(start: memory.address, end: memory.address + UInt64(memory.length)) {
                _, length in
                found += Int(length) / GuestMemory.pageSize
            }
            scans.append(Double(MonotonicClock.nanoseconds() - start) / 1e6)
            guard found == pages.count else {
                throw BenchmarkError("floor scan found \(found) of \(pages.count) written pages")
            }
            start = MonotonicClock.nanoseconds()
            for (index, page) in pages.enumerated() {
                (staging + index * GuestMemory.pageSize).copyMemory(
                    from: memory.page(page), byteCount: GuestMemory.pageSize)
            }
            copies.append(Double(MonotonicClock.nanoseconds() - start) / 1e6)
            let blocksPerPage = GuestMemory.pageSize / blockSize
            start = MonotonicClock.nanoseconds()
            for (index, page) in pages.enumerated() {
                CSupport_hash_blocks(memory.page(page), blockSize, blocksPerPage, hashes + index * blocksPerPage)
                (staging + index * blockSize).copyMemory(from: memory.page(page), byteCount: blockSize)
            }
            hashings.append(Double(MonotonicClock.nanoseconds() - start) / 1e6)
        }
    }

    /// Refuses, with a clear message, a run that would not fit in memory rather than be killed by the OOM killer.
    static func checkMemory(needed: Int, what: String) throws {
        guard let available = availableMemory(), needed > available * 9 / 10 else { return }
        throw BenchmarkError(
            "\(what) need about \(needed >> 30) GiB and \(available >> 30) GiB are available; "
                + "measure fewer modes (--modes fgbi) or a smaller --region-mib")
    }

    /// MemAvailable from /proc/meminfo, in bytes.
    static func availableMemory() -> Int? {
        guard let text = try? KernelFile.text("/proc/meminfo"),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
            let kib = Int(line.split(separator: " ").dropFirst().first ?? "")
        else { return nil }
        return kib << 10
    }

    public func run(progress: (String) -> Void) throws -> [Case] {
        var cases: [Case] = []
        for regionMiB in configuration.regionsMiB {
            for written in configuration.writtenPages where written <= (regionMiB << 20) / GuestMemory.pageSize {
                // fgbi variants: the region and its block hashes; page modes also stage and encode the whole region
                // for epoch 0 (capture, body, delta); the floor: a region.
                let eighths = configuration.modes.reduce(8) { $0 + ($1 == .fgbi ? 2 * 9 : 4 * 8) }
                try Self.checkMemory(
                    needed: (regionMiB << 20) / 8 * eighths, what: "\(regionMiB) MiB regions for \(configuration.modes)"
                )
                progress("pause: \(regionMiB) MiB, \(written) written pages: setting up")
                var variants: [Variant] = []
                for mode in configuration.modes {
                    for strategy in mode == .fgbi ? [CaptureStrategy.rehash, .copyPages] : [.rehash] {
                        let memory = try GuestMemory.anonymous(length: regionMiB << 20)
                        try memory.prefault()
                        variants.append(
                            try Variant(
                                label: mode == .fgbi ? "\(mode)/\(strategy)" : mode.rawValue, memory: memory,
                                mode: mode, strategy: strategy, blockSize: configuration.blockSize, written: written))
                    }
                }
                let floorMemory = try GuestMemory.anonymous(length: regionMiB << 20)
                try floorMemory.prefault()
                let floor = try Floor(memory: floorMemory, written: written, blockSize: configuration.blockSize)
                try floor.scanner.collectWritten(
                    start: floorMemory.address, end: floorMemory.address + UInt64(floorMemory.length)
                ) { _, _ in }
                progress(
                    """
                    pause: \(regionMiB) MiB, \(written) written pages: \(configuration.epochs) epochs of \
                    \(variants.map(\.label).joined(separator: ", ")), floor
                    """
                )
                var random = SeededRandom(seed: configuration.seed)
                for epoch in 0..<configuration.epochs {
                    var chosen = Set<Int>()
                    while chosen.count < written { chosen.insert(Int(random.next() % UInt64(floorMemory.pageCount))) }
                    let pages = chosen.sorted()
                    for page in pages {
                        let value = random.next() | 1
                        let offset = Int(random.next() % 512) * 8
                        for memory in variants.map(\.memory) + [floorMemory] {
                            memory.page(page).storeBytes(of: value, toByteOffset: offset, as: UInt64.self)
                        }
                    }
                    // Rotate who goes first, so no variant always runs on a cold or warm cache.
                    for index in 0..<variants.count {
                        try variants[(index + epoch) % variants.count].epoch(expected: written)
                    }
                    try floor.epoch(pages: pages)
                }
                let scan = Summary(floor.scans).median
                let copy = Summary(floor.copies).median
                let hash = Summary(floor.hashings).median
                let floorTotal = scan + min(copy, hash)
                let floorP99 =
                    Summary.percentile(floor.scans, 0.99)
                    + min(Summary.percentile(floor.copies, 0.99), Summary.percentile(floor.hashings, 0.99))
                for variant in variants {
                    let p99 = Summary.percentile(variant.pauses, 0.99)
                    cases.append(
                        Case(
                            regionMib: regionMiB, mode: variant.label, writtenPages: written,
                            epochs: configuration.epochs,
                            pauseMsP50: Summary(variant.pauses).median, pauseMsP99: p99,
                            collectMsP50: Summary(variant.collects).median, floorScanMs: scan, floorCopyMs: copy,
                            floorHashMs: hash, floorMs: floorTotal, p99OverFloor: p99 / floorTotal,
                            floorMsP99: floorP99, p99OverFloorP99: p99 / floorP99))
                }
            }
        }
        return cases
    }
}
