import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The process a capture may have stopped, for the signal handlers: 0 when none.
private let stoppedTarget = Atomic<Int32>(0)

/// Makes SIGINT, SIGTERM and SIGHUP send SIGCONT to a capture's target before this process dies of them,
/// so interrupting `fgbi trace capture` in the middle of a snapshot never leaves the program stopped.
public enum InterruptContinuation {
    /// Installs the handlers for `pid`; they restore the default action and re-raise the signal after
    /// continuing the target. Call once, from a command-line tool (it replaces the handlers process-wide).
    public static func install(pid: Int32) {
        stoppedTarget.store(pid, ordering: .relaxed)
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            _ = Glibc.signal(signal) { received in
                let pid = stoppedTarget.load(ordering: .relaxed)
                if pid > 0 { kill(pid, SIGCONT) }
                _ = Glibc.signal(received, SIG_DFL)
                raise(received)
            }
        }
    }
}
