import CSupport

#if canImport(Glibc)
    import Glibc
#endif

/// What this kernel offers FGBI, probed once: userfaultfd and its features, PAGEMAP_SCAN, io_uring opcodes,
/// /dev/kvm, and from these which tracker backends will work.
package struct KernelCapabilities: Sendable {
    /// `uname -r`.
    public var kernelRelease: String
    /// `uname -m`.
    public var machine: String
    /// The userfaultfd features offered, or why userfaultfd cannot be opened.
    public var userfaultfd: Result<UserfaultfdFeatures, SystemError>
    /// Whether PAGEMAP_SCAN works, or the error it gave.
    public var pagemapScan: Result<Void, SystemError>
    /// io_uring opcode support by name (SEND, SEND_ZC, SENDMSG_ZC), or why io_uring cannot be set up.
    public var ioUringOpcodes: Result<[String: Bool], SystemError>
    /// Whether /dev/kvm exists and opens read-write.
    public var kvm: Result<Void, SystemError>
    /// /sys/kernel/mm/transparent_hugepage/enabled, when readable.
    public var transparentHugePages: String?

    /// The capabilities of the running kernel, probed on first use.
    public static let current = KernelCapabilities.probe()

    /// Probes the running kernel (a few system calls; no state is left behind).
    public static func probe() -> KernelCapabilities {
        var names = utsname()
        uname(&names)
        let release = withUnsafeBytes(of: &names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let machine = withUnsafeBytes(of: &names.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let userfaultfd = Result { () throws(SystemError) in try Userfaultfd.availableFeatures() }
        let opcodes: Result<[String: Bool], SystemError> = Result { () throws(SystemError) in
            var table: [String: Bool] = [:]
            for (name, opcode) in [
                ("SEND", CSupport_IORING_OP_SEND), ("SEND_ZC", CSupport_IORING_OP_SEND_ZC),
                ("SENDMSG_ZC", CSupport_IORING_OP_SENDMSG_ZC),
            ] {
                let supported = try Syscall.shim(
                    "io_uring_queue_init",
                    hint: { code in
                        code == EPERM ? "io_uring is disabled (kernel.io_uring_disabled) or blocked by seccomp" : ""
                    }
                ) { CSupport_io_uring_opcode_supported(opcode) }
                table[name] = supported == 1
            }
            return table
        }
        let kvm = Result { () throws(SystemError) in
            let fd = try Syscall.libc(
                "open(/dev/kvm)",
                hint: { code in
                    code == ENOENT ? "no KVM: load kvm_intel/kvm_amd or enable nested virtualization" : ""
                }
            ) {
                open("/dev/kvm", O_RDWR | O_CLOEXEC)
            }
            close(fd)
        }
        return KernelCapabilities(
            kernelRelease: release, machine: machine, userfaultfd: userfaultfd,
            pagemapScan: PagemapScanner.isSupported(), ioUringOpcodes: opcodes, kvm: kvm,
            transparentHugePages: readFirstLine("/sys/kernel/mm/transparent_hugepage/enabled"))
    }

    /// Why `tracker` cannot work on a region of `kind` here, or nil when it can.
    public func unavailableReason(for tracker: TrackerKind, regionKind: GuestMemory.Kind = .anonymous) -> String? {
        let required: UserfaultfdFeatures
        switch tracker {
        case .scan:
            return nil
        case .uffdAsync:
            required = AsyncWriteProtectTracker.requiredFeatures(for: regionKind)
            if case .failure(let error) = pagemapScan { return "PAGEMAP_SCAN: \(error)" }
        case .uffdSync:
            required = SyncWriteProtectTracker.requiredFeatures(for: regionKind)
        }
        switch userfaultfd {
        case .failure(let error):
            return error.description
        case .success(let features):
            let missing = required.subtracting(features)
            return missing.isEmpty ? nil : "missing \(missing)"
        }
    }

    private static func readFirstLine(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 256)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
        let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return line.trimmingSuffix { $0 == "\n" }
    }
}

extension String {
    func trimmingSuffix(while predicate: (Character) -> Bool) -> String {
        var result = self
        while let last = result.last, predicate(last) { result.removeLast() }
        return result
    }
}
