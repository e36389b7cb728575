import FGBI
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A long-running child process started with posix_spawn: default signal handling and no signal blocked,
/// descriptors other than 0, 1 and 2 closed, output appended to a file.
///
/// Foundation's Process passes on the starting thread's signal mask, and a thread of Swift's concurrency
/// pool (where tests run) blocks nearly every signal, SIGCHLD included; a shell started that way waits for
/// its children forever. This starts the child as if from a fresh login shell instead.
final class SpawnedProcess: @unchecked Sendable {
    let pid: pid_t
    private let lock = NSLock()
    private var status: Int32?

    /// Starts `arguments` (the first an absolute path), its standard output and error appended to `logFile`,
    /// its standard input `input` (a descriptor of this process, dup'ed) or /dev/null.
    init(_ arguments: [String], environment: [String: String], logFile: String, input: Int32? = nil) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let input {
            posix_spawn_file_actions_adddup2(&actions, input, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_addopen(&actions, 1, logFile, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        _ = Self.addCloseFrom?(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") }
        envp.append(nil)
        defer { for pointer in argv + envp { free(pointer) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, arguments[0], &actions, &attributes, argv, envp)
        guard rc == 0 else { throw SystemError(operation: "posix_spawn(\(arguments[0]))", errno: rc) }
        pid = child
    }

    /// posix_spawn_file_actions_addclosefrom_np (glibc 2.34), which Swift's Glibc module does not declare.
    private static let addCloseFrom:
        (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
            else { return nil }
            return unsafeBitCast(
                symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
        }()

    /// The exit status once the process has ended (128 + signal when killed), nil while it runs.
    var exitStatus: Int32? {
        lock.withLock {
            if status == nil {
                var raw: Int32 = 0
                if waitpid(pid, &raw, WNOHANG) == pid {
                    // WIFEXITED / WEXITSTATUS are macros Swift does not import.
                    status = raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
                }
            }
            return status
        }
    }

    var isRunning: Bool { exitStatus == nil }

    func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Waits for the process to end, at most `timeout`; its exit status, or nil when it still runs.
    @discardableResult
    func waitForExit(timeout: Duration) -> Int32? {
        let deadline = MonotonicClock.nanoseconds() + timeout.wholeNanoseconds
        while true {
            if let status = exitStatus { return status }
            if MonotonicClock.nanoseconds() >= deadline { return nil }
            MonotonicClock.sleep(nanoseconds: 2_000_000)
        }
    }
}
