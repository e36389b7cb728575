import Synchronization

/// The `uffd-async` backend: async userfaultfd write-protect plus PAGEMAP_SCAN.
///
/// The region is registered for write-protect with UFFD_FEATURE_WP_ASYNC, so the kernel resolves each first
/// write to a protected page itself (about 1 µs) and marks the page written; no thread waits on faults.
/// A collection is one PAGEMAP_SCAN with PM_SCAN_WP_MATCHING, which returns the written pages and
/// write-protects them again in the same page-table walk, so no write slips between the two.
/// WP_UNPOPULATED makes pages never touched protected too; WP_HUGETLBFS_SHMEM covers memfd regions.
public final class AsyncWriteProtectTracker: DirtyTracker, @unchecked Sendable {
    public var kind: TrackerKind { .uffdAsync }
    public let memory: GuestMemory
    private let uffd: Userfaultfd
    private let scanner: PagemapScanner
    private let state = PthreadLock(State.idle)

    private enum State { case idle, running, stopped }

    /// Features this backend cannot work without, for a region of `kind`.
    public static func requiredFeatures(for kind: GuestMemory.Kind) -> UserfaultfdFeatures {
        var required: UserfaultfdFeatures = [.wpAsync, .wpUnpopulated]
        if case .memfd = kind { required.insert(.wpHugetlbfsShmem) }
        return required
    }

    /// Opens the userfaultfd and pagemap descriptors. The tracker is not armed until ``start()``.
    public init(memory: GuestMemory) throws {
        self.memory = memory
        uffd = try Userfaultfd(
            required: Self.requiredFeatures(for: memory.kind), optional: [],
            purpose: "the uffd-async tracker")
        if case .failure(let error) = PagemapScanner.isSupported() { throw error }
        scanner = try PagemapScanner()
    }

    deinit { try? stop() }

    public func start() throws {
        try state.withLock { state in
            guard state == .idle else { throw FGBIError.invalidState("uffd-async tracker already started or stopped") }
            try uffd.registerAndProtect(address: memory.address, length: UInt64(memory.length))
            state = .running
        }
    }

    public func collect(into set: inout DirtyPageSet) throws {
        set.removeAll()
        try state.withLock { state in
            guard state == .running else { throw FGBIError.invalidState("collect on a uffd-async tracker that is not running") }
            let base = memory.address
            let pageSize = UInt64(GuestMemory.pageSize)
            try scanner.collectWritten(start: base, end: base + UInt64(memory.length)) { address, length in
                set.insert(start: Int((address - base) / pageSize), count: Int(length / pageSize))
            }
        }
    }

    public func stop() throws {
        try state.withLock { state in
            defer { state = .stopped }
            guard state == .running else { return }
            try uffd.unregister(address: memory.address, length: UInt64(memory.length))
        }
    }
}
