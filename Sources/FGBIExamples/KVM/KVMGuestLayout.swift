import FGBI

/// Where the example guest's pieces live in guest-physical memory (identity-mapped, so also its virtual
/// addresses), and its I/O ports. Mirrors Examples/kvm-guest/guest.h, which the guest is compiled against.
public enum KVMGuestLayout {
    /// The GDT: null, a 64-bit DPL3 code segment, a DPL3 data segment.
    public static let gdtAddress = 0x500
    /// The ``KVMGuestParameters`` block.
    public static let parametersAddress = 0x1000
    /// PML4, PDPT and PD, one page each. RAM is identity-mapped with 4 KiB pages; the page tables (one per
    /// 2 MiB of RAM) sit at the top of RAM, after the data area (``pageTableBytes(ramBytes:)``).
    ///
    /// 4 KiB rather than 2 MiB guest pages: under shadow paging KVM maps a page writable on a read when the
    /// guest's PTE is already dirty, and marks it dirty in its logs; with 2 MiB guest pages one write makes
    /// every later read in those 2 MiB a "dirty" page in KVM's dirty log and ring (measured here).
    public static let pageTablesAddress = 0x10000

    /// Bytes of last-level page tables at the top of `ramBytes` of RAM.
    public static func pageTableBytes(ramBytes: Int) -> Int { (ramBytes + (2 << 20) - 1) / (2 << 20) * 4096 }
    /// The initial stack pointer (the stack grows down from here).
    public static let stackTop = 0x80000
    /// Where the guest image is loaded; its first byte is the entry point.
    public static let codeAddress = 0x100000
    /// The largest image that fits below ``dataAddress``.
    public static let maximumImageBytes = dataAddress - codeAddress
    /// The guest's data area (table and log) starts here and runs to the page tables at the top of RAM.
    public static let dataAddress = 0x200000
    /// The smallest guest RAM: code, data and one page of table.
    public static let minimumRAMBytes = 4 << 20
    /// The largest guest RAM the identity map covers.
    public static let maximumRAMBytes = 1 << 30

    /// OUT: operations completed so far (low 32 bits).
    public static let progressPort: UInt16 = 0x10
    /// OUT: the run finished; the checksum is in the parameter block.
    public static let donePort: UInt16 = 0x11
    /// OUT: the guest refused its parameters; the value says which.
    public static let errorPort: UInt16 = 0x12
}

/// What the guest program does.
public enum KVMGuestMode: UInt64, Sendable {
    /// An open-addressing table of 64-byte records under random inserts and updates, plus an append-only log.
    case keyValue = 0
    /// `operations` passes of: read every page of the data area, report progress, write one byte to every
    /// `stridePages`-th page, report progress; then stops. Known page sets per phase, for comparing trackers.
    case pageWalk = 1
}

/// The guest's parameter block at ``KVMGuestLayout/parametersAddress``: what the VMM asks for, and the
/// results the guest writes back. Eight-byte fields in the order of `struct guest_parameters`.
public struct KVMGuestParameters: Sendable, Equatable {
    static let magic: UInt64 = 0x314d_564b_4942_4746 // "FGBIKVM1"

    public var mode = KVMGuestMode.keyValue
    /// Seeds the guest's xorshift generator; the same seed gives the same memory and checksum.
    public var seed: UInt64 = 1
    /// Key-value operations to run; for a page walk, passes over the data area.
    public var operations: UInt64 = 1_000_000
    /// Table slots (64-byte records, a power of two).
    public var tableSlots: UInt64 = 1 << 16
    /// Bytes of data area, from ``KVMGuestLayout/dataAddress``; the checksum covers all of it.
    public var dataLength: UInt64 = 0
    /// Operations between progress reports (each is an exit to the VMM, ~20 us here).
    public var progressEvery: UInt64 = 100_000
    /// Page walk: distance between written pages.
    public var stridePages: UInt64 = 1

    public init() {}

    /// Parameters sized for `ramBytes` of guest RAM: the data area fills RAM between the code and the page
    /// tables, and the table
    /// takes about half of it (the largest power of two that fits), the log the rest.
    public init(mode: KVMGuestMode = .keyValue, seed: UInt64, operations: UInt64, ramBytes: Int) {
        self.mode = mode
        self.seed = seed
        self.operations = operations
        dataLength = UInt64(
            max(0, ramBytes - KVMGuestLayout.dataAddress - KVMGuestLayout.pageTableBytes(ramBytes: ramBytes)))
        var slots: UInt64 = 16
        while slots * 2 * 64 <= dataLength / 2 { slots *= 2 }
        tableSlots = slots
    }

    /// Writes the block into guest RAM, results cleared.
    public func write(to memory: GuestMemory) {
        let fields: [UInt64] = [
            Self.magic, mode.rawValue, seed, operations, tableSlots, dataLength, progressEvery,
            stridePages, 0, 0, 0, 0,
        ]
        let base = memory.base + KVMGuestLayout.parametersAddress
        for (index, value) in fields.enumerated() {
            base.storeBytes(of: value, toByteOffset: index * 8, as: UInt64.self)
        }
    }
}

/// The results part of the parameter block, as the guest left it.
public struct KVMGuestResults: Sendable, Equatable {
    /// Operations done so far.
    public var completed: UInt64
    /// Log entries appended (the log wraps).
    public var logEntries: UInt64
    /// The guest's checksum over its data area (valid once `status` is 1).
    public var checksum: UInt64
    /// 0 running, 1 done, 2 refused.
    public var status: UInt64

    /// Reads the results from guest RAM.
    public init(memory: GuestMemory) {
        let base = memory.base + KVMGuestLayout.parametersAddress
        completed = base.load(fromByteOffset: 8 * 8, as: UInt64.self)
        logEntries = base.load(fromByteOffset: 9 * 8, as: UInt64.self)
        checksum = base.load(fromByteOffset: 10 * 8, as: UInt64.self)
        status = base.load(fromByteOffset: 11 * 8, as: UInt64.self)
    }
}
