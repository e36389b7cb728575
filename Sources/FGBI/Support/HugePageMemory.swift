import CSupport

/// Memory for tables probed at random (the content index): aligned to 2 MiB and advised onto transparent
/// huge pages where the kernel allows it, so a probe costs a cache miss without a TLB miss (under a
/// hypervisor's nested paging a TLB miss walks two page tables). Freed with `deallocate()` as usual.
enum HugePageMemory {
    static let hugePageSize = 2 << 20

    static func allocate<T>(_ type: T.Type, capacity: Int) -> UnsafeMutablePointer<T> {
        let bytes = max(capacity * MemoryLayout<T>.stride, 1)
        let alignment = bytes >= hugePageSize ? hugePageSize : max(MemoryLayout<T>.alignment, 64)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: alignment)
        if bytes >= hugePageSize { _ = CSupport_madvise_hugepage(raw, bytes) }   // advice: nothing to do if refused
        return raw.bindMemory(to: T.self, capacity: capacity)
    }
}
