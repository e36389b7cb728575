import CKVM
import FGBI

/// A vCPU's registers (general purpose and special) and whether its guest has finished, stored in a small
/// memory region that is replicated with guest RAM, so the registers of each epoch travel atomically with
/// its memory.
///
/// Layout of the region (native byte order; primary and backup are the same architecture): magic, format
/// version, status, the sizes of the two register structs, then `struct kvm_regs` at 64 and
/// `struct kvm_sregs` after it.
public struct VCPUState: Sendable {
    /// Whether the guest was still running when the state was saved.
    public enum Status: UInt64, Sendable {
        case running = 1
        case finished = 2
    }

    static let magic: UInt64 = 0x5453_5550_4356_4746 // "FGVCPUST"
    static let version: UInt64 = 1
    static let regsOffset = 64
    static var sregsOffset: Int { regsOffset + (MemoryLayout<CKVM_kvm_regs>.size + 63) / 64 * 64 }
    /// Bytes the state needs in its region.
    public static var byteCount: Int { sregsOffset + MemoryLayout<CKVM_kvm_sregs>.size }

    public var regs: CKVM_kvm_regs
    public var sregs: CKVM_kvm_sregs
    public var status: Status

    /// Reads the vCPU's registers.
    public init(of vcpu: KVMVirtualCPU, status: Status) throws(SystemError) {
        regs = try vcpu.registers()
        sregs = try vcpu.specialRegisters()
        self.status = status
    }

    /// Reads a saved state.
    ///
    /// - Throws: ``FGBIError/invalidState(_:)`` when the region holds no state (never saved, or another format).
    public init(from region: GuestMemory) throws {
        let base = region.base
        guard region.length >= Self.byteCount,
            base.load(as: UInt64.self) == Self.magic,
            base.load(fromByteOffset: 8, as: UInt64.self) == Self.version,
            base.load(fromByteOffset: 24, as: UInt64.self) == UInt64(MemoryLayout<CKVM_kvm_regs>.size),
            base.load(fromByteOffset: 32, as: UInt64.self) == UInt64(MemoryLayout<CKVM_kvm_sregs>.size),
            let status = Status(rawValue: base.load(fromByteOffset: 16, as: UInt64.self))
        else { throw FGBIError.invalidState("the vCPU state region holds no saved registers") }
        self.status = status
        regs = base.loadUnaligned(fromByteOffset: Self.regsOffset, as: CKVM_kvm_regs.self)
        sregs = base.loadUnaligned(fromByteOffset: Self.sregsOffset, as: CKVM_kvm_sregs.self)
    }

    /// Writes the state into `region` (at least ``byteCount`` bytes).
    public func write(to region: GuestMemory) {
        let base = region.base
        base.storeBytes(of: Self.magic, as: UInt64.self)
        base.storeBytes(of: Self.version, toByteOffset: 8, as: UInt64.self)
        base.storeBytes(of: status.rawValue, toByteOffset: 16, as: UInt64.self)
        base.storeBytes(of: UInt64(MemoryLayout<CKVM_kvm_regs>.size), toByteOffset: 24, as: UInt64.self)
        base.storeBytes(of: UInt64(MemoryLayout<CKVM_kvm_sregs>.size), toByteOffset: 32, as: UInt64.self)
        base.storeBytes(of: regs, toByteOffset: Self.regsOffset, as: CKVM_kvm_regs.self)
        base.storeBytes(of: sregs, toByteOffset: Self.sregsOffset, as: CKVM_kvm_sregs.self)
    }

    /// Loads the state into a vCPU.
    public func apply(to vcpu: KVMVirtualCPU) throws(SystemError) {
        try vcpu.setSpecialRegisters(sregs)
        try vcpu.setRegisters(regs)
    }
}
