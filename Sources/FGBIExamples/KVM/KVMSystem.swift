import CKVM
import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// /dev/kvm: the API version check, capabilities, and the size of each vCPU's kvm_run mapping.
public final class KVMSystem: @unchecked Sendable {
    /// The open /dev/kvm.
    public let fileDescriptor: Int32
    /// Bytes to map for each vCPU's kvm_run.
    public let vcpuMapSize: Int

    /// Opens /dev/kvm and checks the API version (12).
    ///
    /// - Throws: ``SystemError`` naming the failing step: no KVM on this host, no permission, an old API.
    public init() throws(SystemError) {
        let fd = try KVMCall.check("open(/dev/kvm)") { CKVM_kvm_open() }
        fileDescriptor = fd
        do throws(SystemError) {
            let version = try KVMCall.check("KVM_GET_API_VERSION") { CKVM_kvm_api_version(fd) }
            guard version == KVM_API_VERSION else {
                throw SystemError(
                    operation: "KVM_GET_API_VERSION", errno: ENOTSUP,
                    hint: "this KVM speaks API \(version), the VMM needs \(KVM_API_VERSION)")
            }
            vcpuMapSize = Int(try KVMCall.check("KVM_GET_VCPU_MMAP_SIZE") { CKVM_kvm_vcpu_mmap_size(fd) })
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fileDescriptor) }

    /// Whether /dev/kvm exists on this host (it may still refuse the caller).
    public static var isPresent: Bool { access("/dev/kvm", F_OK) == 0 }

    /// KVM_CHECK_EXTENSION: the capability's value, 0 when absent.
    public func check(_ capability: Int32) throws(SystemError) -> Int {
        Int(
            try KVMCall.check("KVM_CHECK_EXTENSION(\(capability))") {
                CKVM_kvm_check_extension(fileDescriptor, capability)
            })
    }

    /// The largest dirty ring (bytes) KVM accepts, 0 when it has no acquire/release dirty ring.
    public func dirtyRingMaximumBytes() throws(SystemError) -> Int {
        try check(Int32(KVM_CAP_DIRTY_LOG_RING_ACQ_REL))
    }
}
