import CSupport
import FGBI

#if canImport(Glibc)
import Glibc
#endif

/// Turns the shim's `-errno` results of KVM calls into ``SystemError``s with advice for the operator.
enum KVMCall {
    /// Runs a shim call that returns a non-negative value or `-errno`, retrying EINTR.
    @discardableResult
    static func check<T: SignedInteger>(_ operation: @autoclosure () -> String, _ body: () -> T) throws(SystemError) -> T {
        while true {
            let result = body()
            if result >= 0 { return result }
            let code = Int32(truncatingIfNeeded: 0 - result)
            if code == EINTR { continue }
            let name = operation()
            throw SystemError(operation: name, errno: code, hint: hint(for: name, errno: code))
        }
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
