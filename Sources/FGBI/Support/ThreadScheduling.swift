import CSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Where and how the calling thread runs: pinned to CPUs (a guest's writer on its own CPU, the capture's
/// helpers on the paused guest's CPUs) and under SCHED_FIFO (the latency-critical threads of an epoch's
/// pause). Threads inherit the CPU set of the thread that creates them.
package enum ThreadScheduling {
    /// The CPUs online now (sysconf).
    public static var onlineCPUCount: Int { ProcessInfoLite.activeProcessorCount }

    /// The priorities SCHED_FIFO accepts.
    public static let realtimePriorities = 1...99

    /// Restricts the calling thread (and threads it creates later) to `cpus`; `thread` names it in errors.
    ///
    /// - Throws: ``SystemError`` (EINVAL for a CPU outside 0-63, none given, or none online).
    public static func pinCallingThread(to cpus: [Int], thread: String = "calling thread") throws(SystemError) {
        let operation = "sched_setaffinity(\(thread), \(cpus.count == 1 ? "CPU \(cpus[0])" : "CPUs \(cpus)"))"
        var mask: UInt64 = 0
        for cpu in cpus {
            guard (0..<64).contains(cpu) else {
                throw SystemError(operation: operation, errno: EINVAL, hint: "CPUs 0 to 63 only")
            }
            mask |= 1 << UInt64(cpu)
        }
        let rc = cpus.isEmpty ? -EINVAL : CSupport_set_thread_affinity(mask)
        guard rc == 0 else {
            throw SystemError(
                operation: operation, errno: -rc,
                hint: -rc == EINVAL
                    ? "the CPU must be online and allowed to this process; see nproc and taskset -p" : "")
        }
    }

    /// Puts the calling thread under SCHED_FIFO at `priority`; `thread` names it in errors.
    ///
    /// - Throws: ``SystemError`` (EPERM without CAP_SYS_NICE or a high enough RLIMIT_RTPRIO).
    public static func enterRealtime(priority: Int, thread: String) throws(SystemError) {
        let rc = CSupport_set_thread_realtime(Int32(priority))
        guard rc == 0 else {
            throw SystemError(
                operation: "pthread_setschedparam(\(thread), SCHED_FIFO \(priority))", errno: -rc,
                hint: -rc == EPERM
                    ? """
                    run as root, grant CAP_SYS_NICE, or raise RLIMIT_RTPRIO (ulimit -r) to \(priority); or leave \
                    the capture priority unset
                    """
                    : "")
        }
    }

    /// Puts the calling thread back under normal scheduling (best effort: a thread may always lower itself).
    public static func leaveRealtime() { _ = CSupport_set_thread_realtime(0) }
}
