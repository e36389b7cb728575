import FGBI

/// KVM's own record of the pages the guest wrote to its RAM slot, read as a ``DirtyPageSet``: the dirty
/// bitmap (KVM_GET_DIRTY_LOG, which also re-protects) or the vCPU's dirty ring (harvest, then
/// KVM_RESET_DIRTY_RINGS). Only the guest's writes through KVM appear; the VMM's own writes to guest RAM
/// do not (unlike FGBI's userfaultfd tracker, which sees every write to the mapping).
public final class KVMDirtyLog: @unchecked Sendable {
    /// The guest's VM (made with ``KVMDirtyLogging/bitmap`` or ``KVMDirtyLogging/ring(entries:)``).
    public let machine: KVMVirtualMachine
    /// Its vCPU (holds the ring).
    public let vcpu: KVMVirtualCPU
    private let bitmap: UnsafeMutablePointer<UInt64>
    private let words: Int
    private let pages: Int
    /// Ring entries harvested since the log was made (each a write KVM logged after the page was last
    /// re-armed); 0 with the bitmap.
    public private(set) var ringEntriesHarvested = 0

    public init(guest: KVMGuest) throws {
        guard guest.machine.dirtyLogging != .none else {
            throw FGBIError.invalidArgument("the VM was made without KVM dirty logging")
        }
        machine = guest.machine
        vcpu = guest.vcpu
        pages = guest.machine.memory.pageCount
        words = (pages + 63) / 64
        bitmap = .allocate(capacity: words)
        bitmap.initialize(repeating: 0, count: words)
    }

    deinit { bitmap.deallocate() }

    /// Moves ring entries into the bitmap and re-arms their pages. Called at collection, and on the vCPU
    /// thread when the ring is full; never both at once (collections run with the vCPU paused).
    public func harvestRing() throws {
        ringEntriesHarvested += vcpu.harvestDirtyRing(into: bitmap, pages: pages)
        try machine.resetDirtyRings()
    }

    /// Replaces `set` with the pages written since the last collection, and re-arms them.
    public func collect(into set: inout DirtyPageSet) throws {
        set.removeAll()
        if case .ring = machine.dirtyLogging {
            try harvestRing()
        } else {
            try machine.fetchDirtyLog(into: bitmap)
        }
        for word in 0..<words {
            var bits = bitmap[word]
            guard bits != 0 else { continue }
            bitmap[word] = 0
            while bits != 0 {
                let bit = bits.trailingZeroBitCount
                set.append(word * 64 + bit)
                bits &= bits - 1
            }
        }
    }
}
