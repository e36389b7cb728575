import CSupport

#if canImport(Glibc)
    import Glibc
#endif

/// userfaultfd feature bits (UFFD_FEATURE_*) FGBI negotiates.
package struct UserfaultfdFeatures: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// UFFD_FEATURE_PAGEFAULT_FLAG_WP: write-protect faults are reported (always present with WP support).
    public static let pagefaultFlagWP = UserfaultfdFeatures(rawValue: CSupport_UFFD_FEATURE_PAGEFAULT_FLAG_WP)
    /// UFFD_FEATURE_THREAD_ID: fault messages carry the faulting thread's id.
    public static let threadID = UserfaultfdFeatures(rawValue: CSupport_UFFD_FEATURE_THREAD_ID)
    /// UFFD_FEATURE_WP_HUGETLBFS_SHMEM: write-protect works on shmem (memfd) and hugetlbfs.
    public static let wpHugetlbfsShmem = UserfaultfdFeatures(rawValue: CSupport_UFFD_FEATURE_WP_HUGETLBFS_SHMEM)
    /// UFFD_FEATURE_WP_UNPOPULATED: write-protect also covers pages never touched, so their first write is seen.
    public static let wpUnpopulated = UserfaultfdFeatures(rawValue: CSupport_UFFD_FEATURE_WP_UNPOPULATED)
    /// UFFD_FEATURE_WP_ASYNC: the kernel resolves write-protect faults itself and marks the page written.
    public static let wpAsync = UserfaultfdFeatures(rawValue: CSupport_UFFD_FEATURE_WP_ASYNC)

    /// Every feature FGBI knows, with the name the kernel uses and the Linux release that introduced it.
    public static let named: [(feature: UserfaultfdFeatures, name: String, since: String)] = [
        (.pagefaultFlagWP, "PAGEFAULT_FLAG_WP", "5.7"),
        (.threadID, "THREAD_ID", "4.14"),
        (.wpHugetlbfsShmem, "WP_HUGETLBFS_SHMEM", "5.19"),
        (.wpUnpopulated, "WP_UNPOPULATED", "6.4"),
        (.wpAsync, "WP_ASYNC", "6.7"),
    ]

    public var description: String {
        let names = Self.named.filter { contains($0.feature) }.map { "UFFD_FEATURE_\($0.name)" }
        return names.isEmpty ? "[]" : names.joined(separator: ", ")
    }
}

/// An open userfaultfd descriptor with its negotiated features.
///
/// Created through the userfaultfd(2) system call, falling back to /dev/userfaultfd where the call is
/// denied. Non-blocking and close-on-exec. Closed on deinit.
package final class Userfaultfd: @unchecked Sendable {
    /// The descriptor.
    public let fileDescriptor: Int32
    /// The features the kernel granted (a superset of those required).
    public let features: UserfaultfdFeatures

    /// Hint for the errors userfaultfd creation can return.
    static func creationHint(_ code: Int32) -> String {
        switch code {
        case EPERM, EACCES:
            return "run as root, set vm.unprivileged_userfaultfd=1, or grant read-write access to /dev/userfaultfd; "
                + """
                or use the scan tracker (`--tracker scan`, `PrimaryConfiguration.tracker = .scan`), which needs \
                no kernel help
                """
        case ENOSYS:
            return
                """
                this kernel is built without CONFIG_USERFAULTFD; use the scan tracker (`--tracker scan`, \
                `PrimaryConfiguration.tracker = .scan`)
                """
        case EMFILE, ENFILE:
            return "the process or system is out of file descriptors; raise `ulimit -n`"
        default:
            return ""
        }
    }

    /// Opens a userfaultfd descriptor without negotiating features (the caller issues UFFDIO_API).
    static func openDescriptor() throws(SystemError) -> Int32 {
        let flags = O_CLOEXEC | O_NONBLOCK
        let viaSyscall = CSupport_userfaultfd_syscall(flags)
        if viaSyscall >= 0 { return viaSyscall }
        if -viaSyscall == EPERM {
            // Unprivileged users may still be allowed through /dev/userfaultfd.
            let viaDevice = CSupport_userfaultfd_device(flags)
            if viaDevice >= 0 { return viaDevice }
        }
        throw SystemError(operation: "userfaultfd", errno: -viaSyscall, hint: creationHint(-viaSyscall))
    }

    /// The features this kernel offers, read with a throw-away descriptor (UFFDIO_API may be issued once
    /// per descriptor, so discovering and requesting need two).
    public static func availableFeatures() throws(SystemError) -> UserfaultfdFeatures {
        let fd = try openDescriptor()
        defer { close(fd) }
        var granted: UInt64 = 0
        var ioctls: UInt64 = 0
        try Syscall.shim("UFFDIO_API") { CSupport_uffdio_api(fd, 0, &granted, &ioctls) }
        return UserfaultfdFeatures(rawValue: granted)
    }

    /// Throws ``FGBIError/unsupported(feature:neededBy:hint:)`` naming the first of `required` not in `available`.
    public static func check(required: UserfaultfdFeatures, available: UserfaultfdFeatures, purpose: String)
        throws(FGBIError)
    {
        for known in UserfaultfdFeatures.named
        where required.contains(known.feature) && !available.contains(known.feature) {
            throw .unsupported(
                feature: "UFFD_FEATURE_\(known.name)", neededBy: purpose,
                hint:
                    """
                    it arrived in Linux \(known.since); upgrade the kernel or use the scan tracker (`--tracker \
                    scan`, `PrimaryConfiguration.tracker = .scan`)
                    """
            )
        }
    }

    /// Opens a userfaultfd with `required` features, plus those of `optional` the kernel has.
    ///
    /// - Throws: ``SystemError`` when userfaultfd is denied or absent;
    ///   ``FGBIError/unsupported(feature:neededBy:hint:)``
    ///   naming the first required feature the kernel lacks.
    public init(required: UserfaultfdFeatures, optional: UserfaultfdFeatures = [], purpose: String) throws {
        let available = try Self.availableFeatures()
        try Self.check(required: required, available: available, purpose: purpose)
        let requested = required.union(optional.intersection(available))
        let fd = try Self.openDescriptor()
        var granted: UInt64 = 0
        var ioctls: UInt64 = 0
        do {
            try Syscall.shim("UFFDIO_API", hint: { _ in "the kernel refused features \(requested)" }) {
                CSupport_uffdio_api(fd, requested.rawValue, &granted, &ioctls)
            }
        } catch {
            close(fd)
            throw error
        }
        fileDescriptor = fd
        features = UserfaultfdFeatures(rawValue: granted)
    }

    deinit { close(fileDescriptor) }

    /// Registers [address, address+length) for write-protect tracking (UFFDIO_REGISTER_MODE_WP).
    public func registerWriteProtect(address: UInt64, length: UInt64) throws(SystemError) {
        var ioctls: UInt64 = 0
        try Syscall.shim(
            "UFFDIO_REGISTER",
            hint: { code in
                switch code {
                case EINVAL: return "the range must be page aligned and be anonymous, shmem or hugetlbfs memory"
                case EBUSY: return "the range is already registered with another userfaultfd"
                default: return ""
                }
            }
        ) {
            CSupport_uffdio_register(fileDescriptor, address, length, CSupport_UFFDIO_REGISTER_MODE_WP, &ioctls)
        }
    }

    /// Registers [address, address+length) for write-protect and protects all of it, so every later write
    /// is seen; on failure the range is left unregistered.
    public func registerAndProtect(address: UInt64, length: UInt64) throws(SystemError) {
        try registerWriteProtect(address: address, length: length)
        do {
            try writeProtect(address: address, length: length)
        } catch {
            try? unregister(address: address, length: length)
            throw error
        }
    }

    /// Unregisters [address, address+length).
    public func unregister(address: UInt64, length: UInt64) throws(SystemError) {
        try Syscall.shim("UFFDIO_UNREGISTER") { CSupport_uffdio_unregister(fileDescriptor, address, length) }
    }

    /// Write-protects [address, address+length).
    public func writeProtect(address: UInt64, length: UInt64) throws(SystemError) {
        try Syscall.shim("UFFDIO_WRITEPROTECT", hint: Self.writeProtectHint) {
            CSupport_uffdio_writeprotect(fileDescriptor, address, length, 1, 0)
        }
    }

    /// Removes write protection from [address, address+length), waking threads blocked on it unless `wake` is false.
    public func unprotect(address: UInt64, length: UInt64, wake: Bool = true) throws(SystemError) {
        try Syscall.shim("UFFDIO_WRITEPROTECT(unprotect)", hint: Self.writeProtectHint) {
            CSupport_uffdio_writeprotect(fileDescriptor, address, length, 0, wake ? 0 : 1)
        }
    }

    private static func writeProtectHint(_ code: Int32) -> String {
        code == ENOENT ? "the range is not registered for write-protect" : ""
    }

    /// One fault message read from the descriptor.
    public struct Fault: Sendable, Equatable {
        /// The faulting address (page aligned unless UFFD_FEATURE_EXACT_ADDRESS was negotiated).
        public var address: UInt64
        /// True for a write-protect fault.
        public var isWriteProtect: Bool
        /// The faulting thread's id, when UFFD_FEATURE_THREAD_ID was negotiated; else 0.
        public var threadID: UInt32
    }

    /// Reads the next page-fault message, or returns nil when none is pending. Other events are skipped.
    public func readFault() throws(SystemError) -> Fault? {
        var address: UInt64 = 0
        var flags: UInt64 = 0
        var tid: UInt32 = 0
        while true {
            let rc = try Syscall.shim("read(userfaultfd)") {
                CSupport_uffd_read_fault(fileDescriptor, &address, &flags, &tid)
            }
            switch rc {
            case 0: return nil
            case 1:
                return Fault(
                    address: address, isWriteProtect: flags & CSupport_UFFD_PAGEFAULT_FLAG_WP != 0, threadID: tid)
            default: continue
            }
        }
    }
}
