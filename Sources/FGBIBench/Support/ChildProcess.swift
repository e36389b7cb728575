import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a program to completion and measures it: wall time and the child's own CPU time (from wait4's
/// resource usage), its standard output and error sent to /dev/null.
enum ChildProcess {
    struct Outcome {
        var status: Int32
        var wallNanoseconds: UInt64
        var cpuNanoseconds: UInt64
    }

    /// Whether `program` is found on PATH.
    static func isAvailable(_ program: String) -> Bool {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        return path.split(separator: ":").contains { access("\($0)/\(program)", X_OK) == 0 }
    }

    /// Runs `arguments` (the first is the program, looked up on PATH).
    static func run(_ arguments: [String]) throws -> Outcome {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let start = MonotonicClock.nanoseconds()
        let rc = posix_spawnp(&pid, arguments[0], &actions, nil, argv, environ)
        guard rc == 0 else {
            throw SystemError(
                operation: "posix_spawnp(\(arguments[0]))", errno: rc, hint: "is \(arguments[0]) installed?")
        }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { throw SystemError(operation: "wait4(\(arguments[0]))", errno: errno) }
        }
        let wall = MonotonicClock.nanoseconds() - start
        let user = UInt64(usage.ru_utime.tv_sec) * 1_000_000_000 + UInt64(usage.ru_utime.tv_usec) * 1000
        let system = UInt64(usage.ru_stime.tv_sec) * 1_000_000_000 + UInt64(usage.ru_stime.tv_usec) * 1000
        // WIFEXITED / WEXITSTATUS are macros Swift does not import.
        let exitStatus: Int32 = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Outcome(status: exitStatus, wallNanoseconds: wall, cpuNanoseconds: user + system)
    }
}
