import CSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Which io_uring send operations this kernel offers the frame writers, probed once per process.
struct URingSendSupport: Sendable, Equatable {
    /// IORING_OP_SENDMSG (Linux 5.3).
    var sendmsg: Bool
    /// IORING_OP_SENDMSG_ZC (Linux 6.1).
    var sendmsgZeroCopy: Bool

    /// The running kernel's support, or why no io_uring can be set up at all (ENOSYS: no io_uring; EPERM:
    /// kernel.io_uring_disabled or seccomp). Probed on first use.
    static let current: Result<URingSendSupport, SystemError> = probe()

    /// Probes the running kernel (sets up and tears down a small ring per opcode).
    static func probe() -> Result<URingSendSupport, SystemError> {
        Result { () throws(SystemError) in
            func supported(_ opcode: Int32) throws(SystemError) -> Bool {
                try Syscall.shim("io_uring probe", hint: hint) { CSupport_io_uring_opcode_supported(opcode) } == 1
            }
            return URingSendSupport(
                sendmsg: try supported(CSupport_IORING_OP_SENDMSG),
                sendmsgZeroCopy: try supported(CSupport_IORING_OP_SENDMSG_ZC))
        }
    }

    /// Advice for an errno from setting up a ring.
    static func hint(_ code: Int32) -> String {
        switch code {
        case EPERM:
            """
            io_uring is disabled (sysctl kernel.io_uring_disabled) or blocked by seccomp; the socket send path \
            works without it
            """
        case ENOSYS: "this kernel has no io_uring; the socket send path works without it"
        case ENOMEM: "no memory for a ring, or a kernel older than 5.6 that cannot be probed (RLIMIT_MEMLOCK?)"
        default: ""
        }
    }

    /// Why `path` cannot run here, or nil when it can. `.automatic` and `.socket` always can.
    func unavailableReason(for path: FrameSendPath) -> SystemError? {
        switch path {
        case .automatic, .socket:
            return nil
        case .uring, .bySize:
            return sendmsg
                ? nil
                : SystemError(
                    operation: "io_uring IORING_OP_SENDMSG", errno: EOPNOTSUPP,
                    hint: "this kernel's io_uring cannot send messages (needs Linux 5.3)")
        case .uringZeroCopy:
            if !sendmsg { return unavailableReason(for: .uring) }
            return sendmsgZeroCopy
                ? nil
                : SystemError(
                    operation: "io_uring IORING_OP_SENDMSG_ZC", errno: EOPNOTSUPP,
                    hint: "zero-copy sends need Linux 6.1")
        }
    }
}
