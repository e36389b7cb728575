#if canImport(Glibc)
import Glibc
#endif

/// The check that a file holding a secret (a pre-shared key, a configuration that names a command to run
/// on failover, the state directory holding a replica) is private to the user running fgbi, as ssh checks its keys: owned by this user or by root,
/// and neither readable nor writable by group or others. A key others can read is a key others hold; a
/// command file others can write runs their commands as this user.
public enum PrivateFile {
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
        try DurableFile.create(path) { fd in try bytes.withUnsafeBytes { try DurableFile.writeAll(fd, $0, what: path) } }
    }

    static func check(owner: uid_t, mode: mode_t, path: String, what: String) throws(FGBIError) {
        let user = geteuid()
        guard owner == user || owner == 0 else {
            throw .invalidArgument("\(what) \(path) belongs to user \(owner), not to this user (\(user)) or root: "
                                   + "a file another user controls cannot hold this process's secrets (chown it, then chmod 600)")
        }
        let permissions = mode & 0o777
        guard permissions & 0o077 == 0 else {
            let fix = mode & S_IFMT == S_IFDIR ? "run `chmod 700 \(path)`"
                : "run `chmod 600 \(path)` (create such files with `install -m 600 /dev/null FILE` before writing them)"
            throw .invalidArgument("\(what) \(path) is open to group or others (mode \(String(permissions, radix: 8))): \(fix)")
        }
    }
}
