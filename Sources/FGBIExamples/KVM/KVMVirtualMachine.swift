import CKVM
import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// How KVM itself tracks the guest's writes to its RAM slot (besides FGBI's userfaultfd tracker, which
/// needs nothing from KVM).
public enum KVMDirtyLogging: Sendable, Equatable {
    /// No KVM dirty logging.
    case none
    /// KVM_MEM_LOG_DIRTY_PAGES, read with KVM_GET_DIRTY_LOG.
    case bitmap
    /// The per-vCPU dirty ring (KVM_CAP_DIRTY_LOG_RING_ACQ_REL) with this many entries (a power of two).
    case ring(entries: Int)
}

/// One VM with one memory slot: slot 0 maps a ``GuestMemory`` region (guest RAM) at guest-physical 0.
///
/// The guest runs as 64-bit code at CPL3 with IOPL=3: on this host's PVM-based KVM every other mode is
/// emulated about 4000 times slower (Docs/ARCHITECTURE.md, "FGBIExamples/KVM").
public final class KVMVirtualMachine: @unchecked Sendable {
    /// The system the VM belongs to.
    public let system: KVMSystem
    /// The VM's fd.
    public let fileDescriptor: Int32
    /// Guest RAM: slot 0, at guest-physical 0.
    public let memory: GuestMemory
    /// KVM's own dirty tracking of the slot.
    public let dirtyLogging: KVMDirtyLogging

    /// Creates the VM and maps `memory` as its RAM.
    ///
    /// - Throws: ``SystemError`` for a failing ioctl; ``FGBIError`` for RAM the identity map cannot cover.
    public init(system: KVMSystem, memory: GuestMemory, dirtyLogging: KVMDirtyLogging = .none) throws {
        guard memory.length >= KVMGuestLayout.minimumRAMBytes, memory.length <= KVMGuestLayout.maximumRAMBytes else {
            throw FGBIError.invalidArgument(
                """
                guest RAM must be \(KVMGuestLayout.minimumRAMBytes >> 20) MiB to \
                \(KVMGuestLayout.maximumRAMBytes >> 20) MiB, not \(memory.length) bytes
                """
            )
        }
        self.system = system
        self.memory = memory
        self.dirtyLogging = dirtyLogging
        let fd = try KVMCall.check("KVM_CREATE_VM") { CKVM_kvm_create_vm(system.fileDescriptor) }
        fileDescriptor = fd
        do {
            var flags: UInt32 = 0
            switch dirtyLogging {
            case .none:
                break
            case .bitmap:
                flags = UInt32(KVM_MEM_LOG_DIRTY_PAGES)
            case .ring(let entries):
                guard entries >= 16, entries & (entries - 1) == 0 else {
                    throw FGBIError.invalidArgument(
                        "a dirty ring needs a power-of-two number of entries, not \(entries)")
                }
                let maximum = try system.dirtyRingMaximumBytes()
                guard entries * MemoryLayout<CKVM_kvm_dirty_gfn>.stride <= maximum else {
                    throw SystemError(
                        operation: "KVM_ENABLE_CAP(DIRTY_LOG_RING_ACQ_REL)", errno: EINVAL,
                        hint: maximum == 0
                            ? "this KVM has no acquire/release dirty ring"
                            : "the ring may hold at most \(maximum / 16) entries")
                }
                try KVMCall.check("KVM_ENABLE_CAP(DIRTY_LOG_RING_ACQ_REL)") {
                    CKVM_kvm_enable_dirty_ring(fd, UInt32(entries))
                }
                flags = UInt32(KVM_MEM_LOG_DIRTY_PAGES) // the ring still needs dirty logging on the slot
            }
            try KVMCall.check("KVM_SET_USER_MEMORY_REGION") {
                CKVM_kvm_set_user_memory_region(fd, 0, flags, 0, UInt64(memory.length), memory.base)
            }
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fileDescriptor) }

    /// Creates vCPU `id` (its CPUID set to what KVM supports, its kvm_run mapped).
    public func makeVCPU(id: Int32 = 0) throws -> KVMVirtualCPU {
        try KVMVirtualCPU(machine: self, id: id)
    }

    /// KVM_GET_DIRTY_LOG of slot 0 into `bitmap` (one bit per page, at least `memory.pageCount` bits):
    /// the pages written since the last call, which are write-protected again.
    public func fetchDirtyLog(into bitmap: UnsafeMutablePointer<UInt64>) throws(SystemError) {
        try KVMCall.check("KVM_GET_DIRTY_LOG") { CKVM_kvm_get_dirty_log(fileDescriptor, 0, bitmap) }
    }

    /// KVM_RESET_DIRTY_RINGS: re-protects the pages of every harvested ring entry.
    public func resetDirtyRings() throws(SystemError) {
        try KVMCall.check("KVM_RESET_DIRTY_RINGS") { CKVM_kvm_reset_dirty_rings(fileDescriptor) }
    }

    /// Writes what a fresh guest needs before its first instruction: the GDT and the page tables (an
    /// identity map of RAM with 4 KiB user-accessible pages, the last-level tables at the top of RAM). A
    /// resumed guest finds them in its replicated RAM.
    public static func writeBootStructures(into memory: GuestMemory) {
        let base = memory.base
        let gdt: [UInt64] = [0, 0x00af_fb00_0000_ffff, 0x00cf_f300_0000_ffff] // null, code (L, DPL3), data (DPL3)
        for (index, entry) in gdt.enumerated() {
            base.storeBytes(of: entry, toByteOffset: KVMGuestLayout.gdtAddress + index * 8, as: UInt64.self)
        }
        let pml4 = KVMGuestLayout.pageTablesAddress
        let pdpt = pml4 + 0x1000
        let pd = pml4 + 0x2000
        let tableBytes = KVMGuestLayout.pageTableBytes(ramBytes: memory.length)
        let tables = memory.length - tableBytes
        memset(base + pml4, 0, 3 * 0x1000)
        memset(base + tables, 0, tableBytes)
        let present: UInt64 = 7 // P | RW | US
        base.storeBytes(of: UInt64(pdpt) | present, toByteOffset: pml4, as: UInt64.self)
        base.storeBytes(of: UInt64(pd) | present, toByteOffset: pdpt, as: UInt64.self)
        for index in 0..<(tableBytes / 4096) {
            base.storeBytes(of: UInt64(tables + index * 4096) | present, toByteOffset: pd + index * 8, as: UInt64.self)
        }
        for page in 0..<(memory.length / 4096) {
            base.storeBytes(of: UInt64(page) << 12 | present, toByteOffset: tables + page * 8, as: UInt64.self)
        }
    }
}
