import Synchronization

/// The `uffd-async` backend: async userfaultfd write-protect plus PAGEMAP_SCAN.
///
/// The region is registered for write-protect with UFFD_FEATURE_WP_ASYNC, so the kernel resolves each first
/// write to a protected page itself (about 1 µs) and marks the page written; no thread waits on faults.
/// A collection is one PAGEMAP_SCAN with PM_SCAN_WP_MATCHING, which returns the written pages and
/// write-protects them again in the same page-table walk, so no write slips between the two.
/// WP_UNPOPULATED makes pages never touched protected too; WP_HUGETLBFS_SHMEM covers memfd regions.
///
/// With a ``HotPagePolicy`` on, pages written in every epoch stop being scanned and re-protected: they are
/// reported at every collection instead, so the guest stops paying a first write for each of them each epoch.
/// Collections then report a superset of the written pages.
///
/// It is also a witness of writes since its last collection (`WrittenPageWitness`): the same scan without
/// re-protecting says which pages were written since the last collection (hot pages, never protected, always
/// count as written).
public final class AsyncWriteProtectTracker: DirtyTracker, WrittenPageWitness, @unchecked Sendable {
    public var kind: TrackerKind { .uffdAsync }
    public let memory: GuestMemory
    private let uffd: Userfaultfd
    private let scanner: PagemapScanner
    private let state: PthreadLock<State>

    private struct State {
        var phase = Phase.idle
        var hotPages: HotPageSet
        var collections = 0
    }

    private enum Phase { case idle, running, stopped }

    /// Which pages stop being scanned because they are written every epoch.
    public let hotPagePolicy: HotPagePolicy

    /// Features this backend cannot work without, for a region of `kind`.
    package static func requiredFeatures(for kind: GuestMemory.Kind) -> UserfaultfdFeatures {
        var required: UserfaultfdFeatures = [.wpAsync, .wpUnpopulated]
        if kind.isSharedFile { required.insert(.wpHugetlbfsShmem) }
        return required
    }

    /// Opens the userfaultfd and pagemap descriptors. The tracker is not armed until ``start()``.
    ///
    /// - Throws: ``FGBIError/invalidArgument(_:)`` for a hot-page policy out of range, ``SystemError`` when the
    ///   kernel refuses a descriptor.
    public init(memory: GuestMemory, hotPages: HotPagePolicy = .off) throws {
        try hotPages.validate()
        self.memory = memory
        hotPagePolicy = hotPages
        state = PthreadLock(State(hotPages: HotPageSet(policy: hotPages, pageCount: memory.pageCount)))
        uffd = try Userfaultfd(
            required: Self.requiredFeatures(for: memory.kind), optional: [],
            purpose: "the uffd-async tracker")
        if case .failure(let error) = PagemapScanner.isSupported() { throw error }
        scanner = try PagemapScanner()
    }

    deinit { try? stop() }

    public func start() throws {
        try state.withLock { state in
            guard state.phase == .idle else {
                throw FGBIError.invalidState("uffd-async tracker already started or stopped")
            }
            try uffd.registerAndProtect(address: memory.address, length: UInt64(memory.length))
            state.phase = .running
        }
    }

    public func collect(into set: inout DirtyPageSet) throws {
        set.removeAll()
        try state.withLock { state in
            guard state.phase == .running else {
                throw FGBIError.invalidState("collect on a uffd-async tracker that is not running")
            }
            let base = memory.address
            let pageSize = UInt64(GuestMemory.pageSize)
            state.collections += 1
            try state.hotPages.collect(into: &set) { run, written in
                let start = base + UInt64(run.start) * pageSize
                try scanner.collectWritten(start: start, end: start + UInt64(run.count) * pageSize) { address, length in
                    written.insert(start: Int((address - base) / pageSize), count: Int(length / pageSize))
                }
            }
        }
    }

    package var collectionCount: Int { state.withLock { $0.collections } }

    package func writtenRuns(in pages: Range<Int>, sinceCollection collection: Int, _ body: (Int, Int) -> Void) throws
        -> Bool
    {
        try state.withLock { state in
            guard state.phase == .running, state.collections == collection else { return false }
            let pages = pages.clamped(to: 0..<memory.pageCount)
            guard !pages.isEmpty else { return true }
            let base = memory.address
            let pageSize = UInt64(GuestMemory.pageSize)
            try scanner.collectWritten(
                start: base + UInt64(pages.lowerBound) * pageSize, end: base + UInt64(pages.upperBound) * pageSize,
                reprotect: false
            ) { address, length in
                body(Int((address - base) / pageSize), Int(length / pageSize))
            }
            return true
        }
    }

    public func noteUnchanged<Pages: Sequence<Int>>(_ pages: Pages) {
        guard hotPagePolicy.isEnabled else { return }
        state.withLock { $0.hotPages.noteUnchanged(pages) }
    }

    /// Pages the last collection reported without scanning them (hot pages and the gaps between them).
    public var pagesReportedUnscanned: Int { state.withLock { $0.hotPages.reportedUnscanned } }

    public func stop() throws {
        try state.withLock { state in
            defer { state.phase = .stopped }
            guard state.phase == .running else { return }
            try uffd.unregister(address: memory.address, length: UInt64(memory.length))
        }
    }
}
