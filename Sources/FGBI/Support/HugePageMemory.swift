import CSupport

/// Memory for tables probed at random (the content index) and for stores written in ring order (stored
/// copies, the xbzrle page cache): aligned to 2 MiB and advised onto transparent huge pages where the kernel
/// allows it, so a probe costs a cache miss without a TLB miss (under a hypervisor's nested paging a TLB miss
/// walks two page tables). Freed with `deallocate()` as usual.
enum HugePageMemory {
    static let hugePageSize = 2 << 20

    static func allocate<T>(_ type: T.Type, capacity: Int) -> UnsafeMutablePointer<T> {
        allocateBytes(max(capacity * MemoryLayout<T>.stride, 1), alignment: MemoryLayout<T>.alignment)
            .bindMemory(to: T.self, capacity: capacity)
    }

    /// `byteCount` bytes, zero-filled now: every page is faulted in at creation (set-up), so no encode pays a
    /// first-touch fault (about 0.4 GB/s here) when a store's ring first reaches it.
    static func allocatePrefaulted(byteCount: Int) -> UnsafeMutableRawPointer {
        let raw = allocateBytes(max(byteCount, 1), alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
        return raw
    }

    private static func allocateBytes(_ bytes: Int, alignment: Int) -> UnsafeMutableRawPointer {
        let aligned = bytes >= hugePageSize ? hugePageSize : max(alignment, 64)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: aligned)
        if bytes >= hugePageSize { _ = CSupport_madvise_hugepage(raw, bytes) } // advice: nothing to do if refused
        return raw
    }
}
