import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// A file written from the start, buffered, with every failure a ``SystemError`` that names the path:
/// what trace output, pictures and trace images are written through.
public final class OutputFile {
    /// The path the file was opened at.
    public let path: String
    private var descriptor: Int32
    private var buffer: [UInt8] = []
    private static let bufferLimit = 1 << 20

    /// Creates `path` or truncates it: mode 0644 (under the umask) for pictures and tables; with `ownerOnly`,
    /// 0600 for what holds a process's memory or where it wrote (trace images, fault traces), set with
    /// `fchmod` too, since a file that exists keeps its mode through `open`.
    ///
    /// - Throws: ``SystemError`` naming the path, with a hint for a missing directory or a denied permission.
    public init(path: String, ownerOnly: Bool = false) throws(SystemError) {
        self.path = path
        let mode: mode_t = ownerOnly ? 0o600 : 0o644
        descriptor = try Syscall.libc("open(\(path))", hint: Self.hint) {
            open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        }
        if ownerOnly {
            let descriptor = self.descriptor
            _ = try Syscall.libc("fchmod(\(path))", hint: Self.hint) { fchmod(descriptor, mode) }
        }
        buffer.reserveCapacity(Self.bufferLimit)
    }

    deinit {
        if descriptor >= 0 { Glibc.close(descriptor) }
    }

    /// Appends `text` as UTF-8.
    public func write(_ text: String) throws(SystemError) {
        buffer.append(contentsOf: text.utf8)
        if buffer.count >= Self.bufferLimit { try flush() }
    }

    /// Appends raw bytes; large ones go straight to the file.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        if bytes.count < Self.bufferLimit / 4 {
            buffer.append(contentsOf: bytes)
            if buffer.count >= Self.bufferLimit { try flush() }
            return
        }
        try flush()
        try writeAll(bytes)
    }

    /// Writes what is buffered.
    public func flush() throws(SystemError) {
        guard !buffer.isEmpty else { return }
        let pending = buffer
        buffer.removeAll(keepingCapacity: true)
        var failure: SystemError?
        pending.withUnsafeBytes { bytes in
            do throws(SystemError) { try writeAll(bytes) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Flushes and closes; the file is complete only when this returns without throwing.
    public func close() throws(SystemError) {
        guard descriptor >= 0 else { return }
        try flush()
        let fd = descriptor
        descriptor = -1
        try Syscall.libc("close(\(path))") { Glibc.close(fd) }
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        guard descriptor >= 0 else {
            throw SystemError(operation: "write(\(path))", errno: EBADF, hint: "the file is already closed")
        }
        var offset = 0
        while offset < bytes.count {
            let fd = descriptor
            let written = try Syscall.libc("write(\(path))", hint: Self.hint) {
                Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            }
            offset += written
        }
    }

    private static func hint(_ code: Int32) -> String {
        switch code {
        case ENOENT: return "the directory does not exist"
        case EACCES, EPERM: return "permission denied"
        case EISDIR: return "that is a directory; give a file name"
        case ENOSPC: return "the disk is full"
        default: return ""
        }
    }
}
