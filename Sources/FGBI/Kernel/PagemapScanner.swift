import CSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The PAGEMAP_SCAN ioctl (Linux 6.7) on /proc/self/pagemap: finds pages written since they were last
/// write-protected by an async userfaultfd and, in the same pass, write-protects them again.
///
/// Holds the pagemap descriptor and a reusable region buffer, so a collection allocates nothing.
/// Not thread-safe: one scanner per tracker.
package final class PagemapScanner: @unchecked Sendable {
    private let pagemap: Int32
    private let regions: UnsafeMutablePointer<CSupport_page_region>
    private let regionCapacity: Int

    /// Opens /proc/self/pagemap and a buffer of `regionCapacity` page runs per ioctl.
    public init(regionCapacity: Int = 65_536) throws(SystemError) {
        pagemap = try Syscall.libc("open(/proc/self/pagemap)", hint: { _ in "is /proc mounted?" }) {
            open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)
        }
        self.regionCapacity = max(regionCapacity, 1)
        regions = .allocate(capacity: self.regionCapacity)
    }

    deinit {
        regions.deallocate()
        close(pagemap)
    }

    static func hint(_ code: Int32) -> String {
        switch code {
        case ENOTTY, EINVAL:
            return
                """
                PAGEMAP_SCAN needs Linux 6.7 or newer; use the uffd-sync or scan tracker (`--tracker`, \
                `PrimaryConfiguration.tracker`)
                """
        case EPERM: return "the range is not registered with an async (WP_ASYNC) userfaultfd"
        default: return ""
        }
    }

    /// Reports every run of written pages in [start, end) to `body` as (first byte address, byte length),
    /// in address order, and write-protects them again atomically. Returns the number of pages reported.
    @discardableResult
    public func collectWritten(
        start: UInt64, end: UInt64, reprotect: Bool = true, _ body: (UInt64, UInt64) -> Void
    ) throws(SystemError) -> Int {
        var flags: UInt64 = CSupport_PM_SCAN_CHECK_WPASYNC
        if reprotect { flags |= CSupport_PM_SCAN_WP_MATCHING }
        var cursor = start
        var pages = 0
        while cursor < end {
            var walkEnd: UInt64 = 0
            let found = try Syscall.shim("PAGEMAP_SCAN", hint: Self.hint) {
                CSupport_pagemap_scan(
                    pagemap, cursor, end, flags, CSupport_PAGE_IS_WRITTEN, CSupport_PAGE_IS_WRITTEN,
                    regions, UInt64(regionCapacity), 0, &walkEnd)
            }
            for i in 0..<found {
                let region = regions[i]
                body(region.start, region.end - region.start)
                pages += Int((region.end - region.start) / UInt64(GuestMemory.pageSize))
            }
            guard walkEnd > cursor else {
                throw SystemError(
                    operation: "PAGEMAP_SCAN", errno: EIO, hint: "the kernel made no progress at \(cursor)")
            }
            cursor = walkEnd
        }
        return pages
    }

    /// Whether this kernel understands PAGEMAP_SCAN: a harmless scan of one page of our own memory.
    public static func isSupported() -> Result<Void, SystemError> {
        do {
            let scanner = try PagemapScanner(regionCapacity: 1)
            let probe = UnsafeMutableRawPointer.allocate(
                byteCount: GuestMemory.pageSize, alignment: GuestMemory.pageSize)
            defer { probe.deallocate() }
            let start = UInt64(UInt(bitPattern: probe))
            var walkEnd: UInt64 = 0
            var region = CSupport_page_region()
            try Syscall.shim("PAGEMAP_SCAN", hint: hint) {
                CSupport_pagemap_scan(
                    scanner.pagemap, start, start + UInt64(GuestMemory.pageSize), 0,
                    CSupport_PAGE_IS_WRITTEN, CSupport_PAGE_IS_WRITTEN, &region, 1, 0, &walkEnd)
            }
            return .success(())
        } catch {
            return .failure(error)
        }
    }
}
