import CSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A page-aligned region of memory to replicate.
///
/// Four kinds: private anonymous memory FGBI maps, a memfd FGBI creates and maps shared (so a backup, a
/// KVM guest or another process can map the same pages), a file FGBI maps shared (a database file on tmpfs
/// that outlives the process, so a node restarted after a crash still holds it), or a mapping the caller
/// already owns and lends to FGBI (a database's mmap). Owned mappings are unmapped on deinit; adopted ones
/// are left alone.
///
/// Fresh memory is slow to touch the first time (the kernel allocates each page): call ``prefault()`` during
/// set-up, before tracking starts, never inside a timed section.
public final class GuestMemory: @unchecked Sendable {
    /// How the region's memory came to be.
    public enum Kind: Sendable, Equatable, CustomStringConvertible {
        /// Private anonymous memory mapped by FGBI.
        case anonymous
        /// A memfd created by FGBI and mapped shared; ``GuestMemory/fileDescriptor`` maps it elsewhere.
        case memfd(name: String)
        /// A file mapped shared by FGBI (``GuestMemory/file(path:length:)``).
        case file(path: String)
        /// A mapping owned by the caller.
        case adopted

        public var description: String {
            switch self {
            case .anonymous: return "anonymous"
            case .memfd: return "memfd"
            case .file: return "file"
            case .adopted: return "adopted"
            }
        }

        /// Shared file memory (a memfd or a file): write-protecting it needs the kernel's shmem support.
        public var isSharedFile: Bool {
            switch self {
            case .memfd, .file: return true
            case .anonymous, .adopted: return false
            }
        }
    }

    /// The page size FGBI tracks in (the system's base page size).
    public static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// The kind of region.
    public let kind: Kind
    /// The first byte of the region.
    public let base: UnsafeMutableRawPointer
    /// The length in bytes, a multiple of ``pageSize``.
    public let length: Int
    /// For a memfd or file region, its descriptor (valid while this object lives); else nil.
    public let fileDescriptor: Int32?

    private init(kind: Kind, base: UnsafeMutableRawPointer, length: Int, fileDescriptor: Int32?) {
        self.kind = kind
        self.base = base
        self.length = length
        self.fileDescriptor = fileDescriptor
        // Exact per-page dirtiness needs base pages: a transparent huge page would be written, protected and
        // reported as 512 pages at once. Best effort: the advice can fail on exotic mappings, which is harmless.
        _ = CSupport_madvise_nohugepage(base, length)
    }

    deinit {
        guard kind != .adopted else { return }
        munmap(base, length)
        if let fd = fileDescriptor { close(fd) }
    }

    static func validate(length: Int) throws(FGBIError) {
        guard length > 0, length % pageSize == 0 else {
            throw .invalidArgument("region length \(length) must be a positive multiple of the page size \(pageSize)")
        }
    }

    private static func mapHint(_ code: Int32) -> String {
        code == ENOMEM
            ? "not enough memory or address space; use a smaller region or check `ulimit -v` and vm.overcommit_memory"
            : ""
    }

    /// Maps `length` bytes of private anonymous memory (zero-filled, not yet faulted in).
    public static func anonymous(length: Int) throws -> GuestMemory {
        try validate(length: length)
        let address = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let address, address != MAP_FAILED else {
            throw SystemError(operation: "mmap(anonymous, \(length) bytes)", errno: errno, hint: mapHint(errno))
        }
        return GuestMemory(kind: .anonymous, base: address, length: length, fileDescriptor: nil)
    }

    /// Creates a memfd named `name` of `length` bytes and maps it shared (zero-filled, not yet faulted in).
    public static func memfd(length: Int, name: String = "fgbi-guest") throws -> GuestMemory {
        try validate(length: length)
        let fd = try Syscall.shim("memfd_create(\(name))") { CSupport_memfd_create(name, CSupport_MFD_CLOEXEC) }
        return try mapShared(fd, length: length, kind: .memfd(name: name), what: "memfd", extendFrom: 0)
    }

    /// Extends the file behind `fd` to `length` bytes when it is shorter than that (`size`), maps it shared and
    /// returns the region owning `fd`; closes `fd` on failure.
    private static func mapShared(_ fd: Int32, length: Int, kind: Kind, what: String, extendFrom size: Int) throws
        -> GuestMemory
    {
        do {
            if size < length {
                try Syscall.libc(
                    "ftruncate(\(what), \(length))",
                    hint: { $0 == ENOSPC || $0 == EFBIG ? "the file system (shmem) is full or limited" : "" }
                ) {
                    ftruncate(fd, off_t(length))
                }
            }
            let address = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
            guard let address, address != MAP_FAILED else {
                throw SystemError(operation: "mmap(\(what), \(length) bytes)", errno: errno, hint: mapHint(errno))
            }
            return GuestMemory(kind: kind, base: address, length: length, fileDescriptor: fd)
        } catch {
            close(fd)
            throw error
        }
    }

    /// Maps the file at `path` shared, `length` bytes: created (mode 0600) when missing, extended with zeros
    /// when shorter. Its content is the region's, and stays in the file after this process ends: a node
    /// killed and restarted on a tmpfs file holds the memory it had (``Backup``'s `.formerPrimary`).
    ///
    /// - Throws: ``FGBIError/invalidArgument(_:)`` for a file longer than `length` (another region's), one
    ///   owned by another user or open to group or others (`PrivateFile`), a symbolic link or not a regular
    ///   file; ``SystemError`` when it cannot be opened, sized or mapped.
    public static func file(path: String, length: Int) throws -> GuestMemory {
        try validate(length: length)
        let fd = try Syscall.libc(
            "open(\(path))", hint: { $0 == ELOOP ? "the path is a symbolic link, which is refused" : "" }
        ) {
            open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        }
        var status = stat()
        do {
            try Syscall.libc("fstat(\(path))") { fstat(fd, &status) }
            guard status.st_mode & S_IFMT == S_IFREG else {
                throw FGBIError.invalidArgument("\(path) is not a regular file")
            }
            // Guest memory holds the guest's secrets: a file another user owns or can read is refused.
            try PrivateFile.check(descriptor: fd, path: path, what: "the memory file")
            guard Int(status.st_size) <= length else {
                throw FGBIError.invalidArgument(
                    "\(path) holds \(status.st_size) bytes, more than the region's \(length): another region's file?")
            }
        } catch {
            close(fd)
            throw error
        }
        return try mapShared(fd, length: length, kind: .file(path: path), what: path, extendFrom: Int(status.st_size))
    }

    /// Whether the file at `path` exists and is not empty: mapped by ``file(path:length:)``, it holds the
    /// memory a process left there (a former primary's, to rejoin with), not zeros.
    public static func fileHoldsContent(at path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && status.st_size > 0
    }

    /// Adopts an existing mapping the caller owns, such as a database's mmap. The caller keeps it mapped
    /// for this object's lifetime and unmaps it afterwards.
    ///
    /// - Throws: ``FGBIError/invalidArgument(_:)`` when the address or length is not page aligned.
    public static func adopting(address: UnsafeMutableRawPointer, length: Int) throws -> GuestMemory {
        try validate(length: length)
        guard UInt(bitPattern: address) % UInt(pageSize) == 0 else {
            throw FGBIError.invalidArgument("adopted address \(address) must be aligned to the page size \(pageSize)")
        }
        return GuestMemory(kind: .adopted, base: address, length: length, fileDescriptor: nil)
    }

    /// The number of pages.
    public var pageCount: Int { length / Self.pageSize }

    /// The region's first byte as an integer address, as the kernel interfaces take it.
    public var address: UInt64 { UInt64(UInt(bitPattern: base)) }

    /// The region's bytes.
    public var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base, count: length) }

    /// The first byte of page `index`.
    @inline(__always)
    public func page(_ index: Int) -> UnsafeMutableRawPointer { base + index * Self.pageSize }

    /// Faults every page in, writable, without changing its content (MADV_POPULATE_WRITE, or a read-and-
    /// write-back touch on kernels older than 5.14). Call before tracking starts: under write-protection
    /// this would mark every page written.
    public func prefault() throws {
        let rc = CSupport_madvise_populate_write(base, length)
        if rc == 0 { return }
        guard -rc == EINVAL else {
            throw SystemError(
                operation: "madvise(MADV_POPULATE_WRITE)", errno: -rc,
                hint: -rc == ENOMEM ? "not enough memory to populate the region" : "")
        }
        CSupport_touch_pages_write(base, length, Self.pageSize)
    }
}
