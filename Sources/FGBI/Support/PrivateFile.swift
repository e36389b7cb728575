#if canImport(Glibc)
    import Glibc
#endif

/// The check that a file holding a secret (a pre-shared key, a configuration that names a command to run
/// on failover, the state directory holding a replica) is private to the user running fgbi, as ssh checks its keys:
/// owned by this user or by root,
/// and neither readable nor writable by group or others. A key others can read is a key others hold; a
/// command file others can write runs their commands as this user.
package enum PrivateFile {
    /// Checks the open file `descriptor` (named `path`, a `what` for the message).
    ///
    /// - Throws: ``FGBIError/invalidArgument(_:)`` naming the file, what is wrong and the command that
    ///   fixes it; ``SystemError`` when `fstat` fails.
    public static func check(descriptor: Int32, path: String, what: String) throws {
        var info = stat()
        try Syscall.libc("fstat(\(path))") { fstat(descriptor, &info) }
        try check(owner: info.st_uid, mode: info.st_mode, path: path, what: what)
    }

    /// Checks the file at `path` (following symbolic links, as opening it does).
    public static func check(path: String, what: String) throws {
        var info = stat()
        try Syscall.libc("stat(\(path))", hint: { $0 == ENOENT ? "no such file" : "" }) { stat(path, &info) }
        try check(owner: info.st_uid, mode: info.st_mode, path: path, what: what)
    }

    /// Creates the file `path`, which must not exist (nor be a symbolic link), readable and writable by this
    /// user only, and writes `bytes` to it whole: how to write a key file.
    ///
    /// - Throws: ``SystemError`` naming the file (EEXIST when something is already there, ELOOP for a link).
    public static func create(_ path: String, bytes: [UInt8]) throws {
        try DurableFile.create(path) { fd in try bytes.withUnsafeBytes { try DurableFile.writeAll(fd, $0, what: path) }
        }
    }

    /// Checks that the directory holding `path` (a file fgbi will write there, such as the failover image) is
    /// owned by this user or root and writable by no one else: a directory others can write lets them
    /// replace the file between its writing and its reading (by `--on-failover`, say). Sticky world-writable
    /// directories such as /tmp are refused too: their owner check is per file, not per name yet to come.
    ///
    /// - Throws: ``FGBIError/invalidArgument(_:)`` naming the directory and the fix; ``SystemError`` when
    ///   the directory cannot be examined (ENOENT: it does not exist).
    public static func checkDirectory(holding path: String, what: String) throws {
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let name = directory.isEmpty ? "/" : directory
        var info = stat()
        try Syscall.libc("stat(\(name))", hint: { $0 == ENOENT ? "the directory for the \(what) does not exist" : "" })
        { stat(name, &info) }
        let user = geteuid()
        guard info.st_uid == user || info.st_uid == 0 else {
            throw FGBIError.invalidArgument(
                """
                the directory \(name) of the \(what) belongs to user \(info.st_uid), not to this user (\(user)) \
                or root:\u{20}
                """
                    + "use a directory of fgbi's user")
        }
        guard info.st_mode & 0o022 == 0 else {
            throw FGBIError.invalidArgument(
                """
                the directory \(name) of the \(what) is writable by group or others (mode \
                \(String(info.st_mode & 0o7777, radix: 8))):\u{20}
                """
                    + """
                    another user could replace the \(what) before it is read; run `chmod go-w \(name)` or use a \
                    directory of fgbi's user
                    """
            )
        }
    }

    static func check(owner: uid_t, mode: mode_t, path: String, what: String) throws(FGBIError) {
        let user = geteuid()
        guard owner == user || owner == 0 else {
            throw .invalidArgument(
                "\(what) \(path) belongs to user \(owner), not to this user (\(user)) or root: "
                    + "a file another user controls cannot hold this process's secrets (chown it, then chmod 600)")
        }
        let permissions = mode & 0o777
        guard permissions & 0o077 == 0 else {
            let fix =
                mode & S_IFMT == S_IFDIR
                ? "run `chmod 700 \(path)`"
                : "run `chmod 600 \(path)` (create such files with `install -m 600 /dev/null FILE` before writing them)"
            throw .invalidArgument(
                "\(what) \(path) is open to group or others (mode \(String(permissions, radix: 8))): \(fix)")
        }
    }
}
