import FGBI

/// Why a running process's memory could not be captured as a trace directory: each names the process, the
/// failed operation and what to do.
public enum CaptureError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No process has this id (or it exited before the first snapshot).
    case noSuchProcess(Int32)
    /// The kernel refused access to the process (signalling it, or reading its memory).
    case notPermitted(pid: Int32, SystemError)
    /// Another system call on the process failed.
    case system(pid: Int32, SystemError)
    /// /proc/PID/maps listed no writable private memory that could be read.
    case nothingToCapture(pid: Int32)
    /// The process stopped existing before two images (one epoch) were written.
    case exitedTooEarly(pid: Int32, images: Int)
    /// The images would not fit on the output's file system.
    case notEnoughSpace(path: String, needed: Int, free: Int)
    /// Writing the trace directory failed.
    case trace(TraceError)

    public var description: String {
        switch self {
        case .noSuchProcess(let pid):
            return "no process \(pid): it does not exist or has exited"
        case .notPermitted(let pid, let error):
            return "process \(pid): \(error)"
        case .system(let pid, let error):
            return "process \(pid): \(error)"
        case .nothingToCapture(let pid):
            return "process \(pid) has no readable writable private memory (rw-p) in /proc/\(pid)/maps"
        case .exitedTooEarly(let pid, let images):
            return
                """
                process \(pid) exited after \(images) image\(images == 1 ? "" : "s"); a trace needs at least 2 \
                (one epoch)
                """
        case .notEnoughSpace(let path, let needed, let free):
            return "the capture needs \(needed >> 20) MiB (snapshots x image) but \(path) has \(free >> 20) MiB free; "
                + "lower --snapshots or --max-mib"
        case .trace(let error):
            return error.description
        }
    }

    /// The advice for an EPERM from kill(2) or process_vm_readv(2) on another process.
    public static let permissionHint =
        "reading another process's memory needs ptrace access to it: "
        + "run as root (or the process's user, with CAP_SYS_PTRACE) or set kernel.yama.ptrace_scope=0"
}
