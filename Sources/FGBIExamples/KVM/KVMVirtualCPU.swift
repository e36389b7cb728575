import CKVM
import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// Why KVM_RUN returned.
public enum KVMExit: Sendable, Equatable {
    /// The guest executed OUT to `port` with `value` (its first four bytes).
    case output(port: UInt16, value: UInt32)
    /// A signal or kvm_run.immediate_exit stopped the vCPU (KVM_RUN returned EINTR); pending I/O is complete.
    case interrupted
    /// The guest triple-faulted (it has no IDT, so any exception ends here).
    case shutdown
    /// The dirty ring is full; harvest it and reset before running again.
    case dirtyRingFull
    /// Anything else: the raw exit reason (`KVM_EXIT_*`) and, for I/O in, the port.
    case other(reason: UInt32, detail: UInt64)
}

/// One vCPU: its fd, its kvm_run mapping, its registers and, when the VM logs dirty pages in a ring, its
/// dirty ring.
public final class KVMVirtualCPU: @unchecked Sendable {
    /// The VM this vCPU belongs to.
    public let machine: KVMVirtualMachine
    /// The vCPU's fd.
    public let fileDescriptor: Int32
    let run: UnsafeMutablePointer<CKVM_kvm_run_state>
    /// The dirty ring and its size, when the VM was made with ``KVMDirtyLogging/ring(entries:)``.
    let ring: UnsafeMutablePointer<CKVM_kvm_dirty_gfn>?
    let ringEntries: Int
    /// The next ring entry to harvest (only the harvesting thread touches it).
    var ringFetchIndex: UInt32 = 0

    init(machine: KVMVirtualMachine, id: Int32) throws {
        self.machine = machine
        let system = machine.system
        let fd = try KVMCall.check("KVM_CREATE_VCPU") { CKVM_kvm_create_vcpu(machine.fileDescriptor, id) }
        fileDescriptor = fd
        var mapped: UnsafeMutablePointer<CKVM_kvm_run_state>?
        var ringMapping: UnsafeMutablePointer<CKVM_kvm_dirty_gfn>?
        do {
            try KVMCall.check("KVM_GET_SUPPORTED_CPUID/KVM_SET_CPUID2") {
                CKVM_kvm_set_supported_cpuid(system.fileDescriptor, fd)
            }
            try KVMCall.check("mmap(kvm_run)") { CKVM_kvm_map_run(fd, system.vcpuMapSize, &mapped) }
            if case .ring(let entries) = machine.dirtyLogging {
                try KVMCall.check("mmap(dirty ring)") { CKVM_kvm_map_dirty_ring(fd, UInt32(entries), &ringMapping) }
                ringEntries = entries
            } else {
                ringEntries = 0
            }
        } catch {
            if let mapped { CKVM_kvm_unmap(mapped, system.vcpuMapSize) }
            close(fd)
            throw error
        }
        run = mapped!
        ring = ringMapping
    }

    deinit {
        CKVM_kvm_unmap(run, machine.system.vcpuMapSize)
        if let ring { CKVM_kvm_unmap(ring, ringEntries * MemoryLayout<CKVM_kvm_dirty_gfn>.stride) }
        close(fileDescriptor)
    }

    /// Sets the registers of a fresh guest: 64-bit long mode at CPL3 with IOPL=3, paging through the
    /// identity map ``KVMVirtualMachine/writeBootStructures(into:)`` wrote, `rip` at `entry`.
    public func setLongModeEntry(entry: UInt64, stack: UInt64) throws(SystemError) {
        var sregs = CKVM_kvm_sregs()
        try KVMCall.check("KVM_GET_SREGS") { CKVM_kvm_get_sregs(fileDescriptor, &sregs) }
        var code = kvm_segment()
        code.base = 0
        code.limit = 0xffff_ffff
        code.selector = 0x0b
        code.type = 0xb
        code.present = 1
        code.dpl = 3
        code.db = 0
        code.s = 1
        code.l = 1
        code.g = 1
        var data = code
        data.selector = 0x13
        data.type = 3
        data.db = 1
        data.l = 0
        sregs.cs = code
        sregs.ds = data
        sregs.es = data
        sregs.fs = data
        sregs.gs = data
        sregs.ss = data
        sregs.gdt.base = UInt64(KVMGuestLayout.gdtAddress)
        sregs.gdt.limit = 3 * 8 - 1
        sregs.cr3 = UInt64(KVMGuestLayout.pageTablesAddress)
        sregs.cr4 = 0x20 // PAE
        sregs.cr0 = 0x8001_0031 // PG | WP | NE | ET | PE
        sregs.efer = 0x500 // LME | LMA
        try setSpecialRegisters(sregs)
        var regs = CKVM_kvm_regs()
        regs.rip = entry
        regs.rsp = stack
        regs.rflags = 0x3002 // IOPL=3: OUT is allowed at CPL3
        try setRegisters(regs)
    }

    /// KVM_GET_REGS.
    public func registers() throws(SystemError) -> CKVM_kvm_regs {
        var regs = CKVM_kvm_regs()
        try KVMCall.check("KVM_GET_REGS") { CKVM_kvm_get_regs(fileDescriptor, &regs) }
        return regs
    }

    /// KVM_GET_SREGS.
    public func specialRegisters() throws(SystemError) -> CKVM_kvm_sregs {
        var sregs = CKVM_kvm_sregs()
        try KVMCall.check("KVM_GET_SREGS") { CKVM_kvm_get_sregs(fileDescriptor, &sregs) }
        return sregs
    }

    /// KVM_SET_REGS.
    public func setRegisters(_ regs: CKVM_kvm_regs) throws(SystemError) {
        var regs = regs
        try KVMCall.check("KVM_SET_REGS") { CKVM_kvm_set_regs(fileDescriptor, &regs) }
    }

    /// KVM_SET_SREGS.
    public func setSpecialRegisters(_ sregs: CKVM_kvm_sregs) throws(SystemError) {
        var sregs = sregs
        try KVMCall.check("KVM_SET_SREGS") { CKVM_kvm_set_sregs(fileDescriptor, &sregs) }
    }

    /// Sets or clears kvm_run.immediate_exit: while set, KVM_RUN completes pending I/O and returns EINTR
    /// without entering the guest.
    public func setImmediateExit(_ on: Bool) {
        CKVM_kvm_run_set_immediate_exit(run, on ? 1 : 0)
    }

    /// KVM_RUN once: runs the guest until its next exit.
    public func runOnce() throws(SystemError) -> KVMExit {
        let status = CKVM_kvm_run(fileDescriptor)
        if status == -EINTR || status == -EAGAIN { return .interrupted }
        if status < 0 {
            throw SystemError(operation: "KVM_RUN", errno: -status, hint: KVMCall.hint(for: "KVM_RUN", errno: -status))
        }
        let reason = CKVM_kvm_run_exit_reason(run)
        switch Int32(reason) {
        case KVM_EXIT_IO where CKVM_kvm_run_io_direction(run) == UInt8(KVM_EXIT_IO_OUT):
            return .output(port: CKVM_kvm_run_io_port(run), value: CKVM_kvm_run_io_value(run))
        case KVM_EXIT_IO:
            return .other(reason: reason, detail: UInt64(CKVM_kvm_run_io_port(run)))
        case KVM_EXIT_INTR:
            return .interrupted
        case KVM_EXIT_SHUTDOWN:
            return .shutdown
        case KVM_EXIT_DIRTY_RING_FULL:
            return .dirtyRingFull
        case KVM_EXIT_FAIL_ENTRY:
            return .other(reason: reason, detail: CKVM_kvm_run_fail_entry_reason(run))
        case KVM_EXIT_INTERNAL_ERROR:
            return .other(reason: reason, detail: UInt64(CKVM_kvm_run_internal_suberror(run)))
        default:
            return .other(reason: reason, detail: 0)
        }
    }

    /// Harvests this vCPU's dirty ring into `bitmap` (one bit per page of slot 0) and returns the entries
    /// taken; the caller then calls ``KVMVirtualMachine/resetDirtyRings()``. Only with a ring.
    public func harvestDirtyRing(into bitmap: UnsafeMutablePointer<UInt64>, pages: Int) -> Int {
        guard let ring else { return 0 }
        return CKVM_kvm_harvest_dirty_ring(ring, UInt32(ringEntries), &ringFetchIndex, 0, bitmap, UInt64(pages))
    }
}
