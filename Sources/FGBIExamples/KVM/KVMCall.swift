import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// Turns the KVM shim's `-errno` results into ``SystemError``s (through the library's one syscall-to-error path)
/// with advice for the operator.
enum KVMCall {
    /// Runs a shim call that returns a non-negative value or `-errno`, retrying EINTR (``Syscall/shim(_:hint:_:)``
    /// with the KVM hints).
    @discardableResult
    static func check<T: SignedInteger>(_ operation: @autoclosure () -> String, _ body: () -> T) throws(SystemError)
        -> T
    {
        try Syscall.shim(operation(), hint: { hint(for: operation(), errno: $0) }, body)
    }

    /// What to do about a failed KVM call.
    static func hint(for operation: String, errno code: Int32) -> String {
        switch code {
        case ENOENT where operation.hasPrefix("open(/dev/kvm)"), ENODEV where operation.hasPrefix("open(/dev/kvm)"),
            ENXIO where operation.hasPrefix("open(/dev/kvm)"):
            return "no KVM on this host (/dev/kvm is missing): enable virtualisation or load kvm-intel/kvm-amd"
        case EACCES, EPERM:
            return "run as root or add the user to the kvm group"
        case ENOMEM:
            return "the host is out of memory for the guest; try a smaller --ram-mib"
        case EINVAL where operation.contains("DIRTY_LOG_RING"):
            return "this KVM has no dirty ring (KVM_CAP_DIRTY_LOG_RING_ACQ_REL) or refuses the ring size"
        case EEXIST:
            return "the memory slot overlaps another"
        default:
            return ""
        }
    }
}
