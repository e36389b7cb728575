import CSupport

#if canImport(Glibc)
import Glibc
#endif

/// SCHED_FIFO for the calling thread, for the latency-critical threads of an epoch's pause.
enum RealtimeScheduling {
    /// The priorities SCHED_FIFO accepts.
    static let priorities = 1...99

    /// Puts the calling thread under SCHED_FIFO at `priority`.
    ///
    /// - Throws: ``SystemError`` (EPERM without CAP_SYS_NICE or a high enough RLIMIT_RTPRIO).
    static func enter(priority: Int, thread: String) throws(SystemError) {
        let rc = CSupport_set_thread_realtime(Int32(priority))
        guard rc == 0 else {
            throw SystemError(operation: "pthread_setschedparam(\(thread), SCHED_FIFO \(priority))", errno: -rc,
                              hint: -rc == EPERM ? "run as root, grant CAP_SYS_NICE, or raise RLIMIT_RTPRIO (ulimit -r) to \(priority); or leave the capture priority unset" : "")
        }
    }

    /// Puts the calling thread back under normal scheduling (best effort: a thread may always lower itself).
    static func leave() { _ = CSupport_set_thread_realtime(0) }
}
