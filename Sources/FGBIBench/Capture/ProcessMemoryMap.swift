import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// One line of /proc/PID/maps: an address range, its permissions and what backs it.
public struct ProcessMapping: Sendable, Equatable {
    /// First byte's address.
    public var start: UInt64
    /// One past the last byte's address.
    public var end: UInt64
    /// The four permission letters, such as `rw-p` (p private, s shared).
    public var permissions: String
    /// The backing file's path, a pseudo name (`[heap]`, `[stack]`, `[vdso]`), or empty for anonymous memory.
    public var name: String

    public init(start: UInt64, end: UInt64, permissions: String, name: String) {
        self.start = start
        self.end = end
        self.permissions = permissions
        self.name = name
    }

    public var length: Int { Int(end - start) }

    /// Pseudo mappings the kernel provides that a process does not write: never captured.
    public static let kernelNames: Set<String> = ["[vvar]", "[vvar_vclock]", "[vsyscall]", "[vdso]", "[uprobes]"]

    /// True for memory the process writes and owns: readable, writable, private (`rw-p`), not a kernel pseudo
    /// mapping. This is the heap, anonymous mappings, stacks and the data and bss of the binary and its
    /// libraries; shared mappings (`rw-s`) are left out, their content belongs to a file or another process.
    public var isWritablePrivate: Bool {
        permissions == "rw-p" && !Self.kernelNames.contains(name)
    }

    /// True for a readable, writable, shared mapping (`rw-s`): a file mapped for writing (a database's map,
    /// such as LMDB's with `MDB_WRITEMAP`) or shared memory. Captured only when asked
    /// (``CaptureLayout/select(from:maxBytes:includingShared:isReadable:)``).
    public var isWritableShared: Bool {
        permissions == "rw-s" && !Self.kernelNames.contains(name)
    }

    /// Whether a capture takes this mapping: writable private, or (`includingShared`) writable shared.
    public func isCaptured(includingShared: Bool) -> Bool {
        isWritablePrivate || (includingShared && isWritableShared)
    }
}

/// Reads and parses /proc/PID/maps.
public enum ProcessMemoryMap {
    /// The mappings of process `pid`, in address order.
    public static func read(pid: Int32) throws(CaptureError) -> [ProcessMapping] {
        let bytes: [UInt8]
        do { bytes = try KernelFile.read("/proc/\(pid)/maps") } catch {
            if error.errno == ENOENT || error.errno == ESRCH { throw .noSuchProcess(pid) }
            if error.errno == EACCES || error.errno == EPERM {
                throw .notPermitted(
                    pid: pid,
                    SystemError(operation: error.operation, errno: error.errno, hint: CaptureError.permissionHint))
            }
            throw .system(pid: pid, error)
        }
        return parse(String(decoding: bytes, as: UTF8.self))
    }

    /// Parses the text of a maps file; lines that do not have the format are skipped.
    public static func parse(_ text: String) -> [ProcessMapping] {
        var result: [ProcessMapping] = []
        for line in text.split(separator: "\n") {
            // start-end perms offset dev inode [name]; the name may hold spaces.
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count >= 5 else { continue }
            let range = fields[0].split(separator: "-")
            guard range.count == 2, let start = UInt64(range[0], radix: 16), let end = UInt64(range[1], radix: 16),
                end > start
            else { continue }
            var name = fields.count > 5 ? String(fields[5]) : ""
            while name.first == " " { name.removeFirst() }
            result.append(ProcessMapping(start: start, end: end, permissions: String(fields[1]), name: name))
        }
        return result
    }
}
