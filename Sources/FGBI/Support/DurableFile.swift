#if canImport(Glibc)
    import Glibc
#endif

/// Files written so that a crash leaves the old content or the new one, never half, and never through a file
/// or symbolic link someone else put in the way: new files are created exclusively (`O_EXCL|O_NOFOLLOW`,
/// mode 0600), a replacement is written to a fresh temporary name in the same directory (`mkstemp`),
/// synced, renamed over the old file, and the directory synced so the rename itself survives a crash.
enum DurableFile {
    /// Creates `path`, which must not exist, mode 0600; `body` writes it; then it is synced.
    static func create(_ path: String, _ body: (Int32) throws -> Void) throws {
        let fd = try Syscall.libc(
            "open(\(path))",
            hint: { code in
                code == EEXIST
                    ? "the file exists already: remove it first"
                    : code == ELOOP
                        ? "it is a symbolic link: remove it" : code == EACCES ? "no permission to write there" : ""
            }
        ) { open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600) }
        defer { close(fd) }
        try body(fd)
        try Syscall.libc("fsync(\(path))", hint: diskHint) { fsync(fd) }
    }

    /// Replaces `path` whole with what `body` writes, by way of a fresh temporary file beside it (removed
    /// again if anything fails), and syncs the directory after the rename.
    static func replace(_ path: String, _ body: (Int32) throws -> Void) throws {
        let directory = directoryName(of: path)
        var template = Array((directory + "/." + baseName(of: path) + ".XXXXXX").utf8CString)
        let fd = try Syscall.libc("mkstemp(\(path))", hint: { $0 == EACCES ? "no permission to write there" : "" }) {
            mkstemp(&template)
        }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        let temporary = String(
            decoding: template.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        do {
            defer { close(fd) }
            try body(fd)
            try Syscall.libc("fsync(\(temporary))", hint: diskHint) { fsync(fd) }
            try Syscall.libc("rename(\(temporary), \(path))") { rename(temporary, path) }
        } catch {
            unlink(temporary)
            throw error
        }
        try syncDirectory(directory)
    }

    /// Writes all of `bytes` to `fd`, looping over partial writes.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, what: String) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let chunk = min(bytes.count - offset, 1 << 30)
            offset += try Syscall.libc("write(\(what))", hint: diskHint) {
                write(fd, bytes.baseAddress! + offset, chunk)
            }
        }
    }

    /// Makes the directory's entries (a rename, a new file) durable.
    static func syncDirectory(_ directory: String) throws(SystemError) {
        let fd = try Syscall.libc("open(\(directory))") { open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { close(fd) }
        try Syscall.libc("fsync(\(directory))") { fsync(fd) }
    }

    static func diskHint(_ code: Int32) -> String { code == ENOSPC ? "the disk is full" : "" }

    private static func directoryName(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private static func baseName(of path: String) -> String {
        path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
    }
}
