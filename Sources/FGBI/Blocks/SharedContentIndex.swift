import CSupport

#if canImport(Glibc)
    import Glibc
#endif

/// One content index for several guests, each replicating to its own backup with its own key and epochs:
/// the FGBI paper's sharing across VMs, kept exact.
///
/// A reference on the wire names a location in one backup's replica, so what a guest may reference is only
/// what its own backup holds. The index is therefore split in two:
/// - **per guest** (a `Member`, one per ``PrimaryEngine``): an entry table like `ContentIndex`'s, content
///   key to the location where that guest's backup holds the content, with that guest's epoch tag. Matches,
///   retirements (a location changed) and additions of one guest look only at its own table, so a match can
///   only ever become a reference into its own backup, and `ContentIndex`'s invariants hold per guest;
/// - **shared**: the stored copies, in one memory budget. When a guest adds content that another guest's
///   entry already stores (found through a table from key to stored copy, then compared bitwise), its entry
///   points at that copy instead of storing another: N guests booted from one image keep one copy of it, and
///   under a fixed budget each guest's entries (its references and difference bases) live longer.
///
/// A stored copy records which members use it (a 64-bit mask, hence at most ``maximumMembers`` engines at
/// once). It is immutable while used, and freed when its last user retires its entry; a new copy takes a
/// freed slot first (with N guests rewriting their own content, many are), and only when none is free
/// evicts the copy under a clock hand (oldest first when nothing was freed), dropping every member's entry
/// that uses it: an entry missing only costs a reference or a difference, never exactness.
///
/// Across guests nothing travels on the wire: another guest's content says nothing about what this guest's
/// backup holds, and blocks are already found unchanged by each guest's own block hashes.
///
/// Locking: one lock guards everything here; an engine holds it for a whole `encode` call (`Member/exclusively(_:)`)
/// and for joining and leaving, never per block. It is a leaf: nothing else is acquired while it is held,
/// and a ``Primary`` takes it (through its engine) while holding none of its own locks. Hot paths allocate
/// nothing; a member's entry table (32 bytes per entry, kept at most half full, sized for the fewer of its
/// blocks and the stored copies) is allocated when it joins.
public final class SharedContentIndex: @unchecked Sendable, Hashable {
    /// Engines that may use one index at once (a guest's engine is replaced at each new session, the old one
    /// leaving as the new one joins).
    public static let maximumMembers = 64

    /// What the index holds now.
    public struct Statistics: Sendable, Equatable, Codable {
        /// Engines using the index now (one per replicating guest).
        public var members = 0
        /// Entries of all members: block contents each backup is known to hold, and where.
        public var entries = 0
        /// Stored copies: one per distinct content held, whichever guests hold it.
        public var storedCopies = 0
        /// Bytes of those copies.
        public var storedBytes = 0
        /// Bytes of the copies separate indexes would hold on top for the same entries.
        public var bytesSavedBySharing = 0
        /// Additions that found their content already stored for another guest (bitwise equal).
        public var attachments = 0
        /// Stored copies evicted to make room, and the entries (of any guest) that went with them.
        public var evictions = 0
        public var entriesEvicted = 0
        /// Stored copies, their bookkeeping and the key-to-copy table (members' entry tables are counted by
        /// their engines).
        public var metadataBytes = 0
    }

    public let blockSize: Int
    public let budgetBytes: Int
    public let keying: IndexKeying

    struct Entry {
        var key: UInt64
        var location: UInt64
        var epoch: UInt64
        /// Store slot + 1; 0 marks an empty entry.
        var slotPlusOne: UInt32
        var ordinal: UInt32
    }

    /// One member's entries (nil when the member number is free), its size and its epoch tag.
    struct Table {
        var entries: UnsafeMutablePointer<Entry>?
        /// Capacity - 1: a power of two, at least twice the entries the member can hold (the slots, or its
        /// blocks if fewer: its entries name distinct locations and use distinct copies).
        var mask = 0
        var count = 0
        var epoch: UInt64 = 0
    }

    private struct Counters {
        var hand = 0
        var freeSlots = 0
        var storedCopies = 0
        var entries = 0
        var attachments = 0
        var evictions = 0
        var entriesEvicted = 0
    }

    let slotCount: Int
    let storage: UnsafeMutableRawPointer
    /// What a slot holds, in one place (one cache line to touch, not three).
    struct Slot {
        var key: UInt64 = 0
        /// Bit m: member m has an entry using the slot; 0: the slot is free.
        var owners: UInt64 = 0
        /// The key-to-copy table maps the key to this slot (a collision's copy is stored, not registered).
        var registered = false
    }
    let slots: UnsafeMutablePointer<Slot>
    /// Slots freed since the hand last passed them (a stack): reused before anything is evicted. A slot is
    /// here only once used, so the hand, which moves only when this is empty, never takes one from it.
    let freeSlots: UnsafeMutablePointer<UInt32>
    let copies: SlotTable
    let tables: UnsafeMutablePointer<Table>
    private let counters: UnsafeMutablePointer<Counters>
    /// Guards everything here; its value is the number of members (a lock over an empty value would make
    /// ThreadSanitizer mistake the empty value's accesses for the object's header).
    let lock = PthreadLock(0)

    /// An index whose stored copies take `budgetBytes` (blocks of `blockSize` bytes), shared by every engine
    /// it is given to (``EngineConfiguration/sharedIndex``) with the same block size.
    ///
    /// - Throws: ``FGBIError/invalidArgument(_:)`` for an unsupported block size.
    public init(blockSize: Int = 64, budgetBytes: Int = 64 << 20, keying: IndexKeying = .fullHash) throws(FGBIError) {
        _ = try BlockGeometry(blockSize: blockSize)
        self.blockSize = blockSize
        self.budgetBytes = budgetBytes
        self.keying = keying
        slotCount = max(budgetBytes / blockSize, 1)
        storage = HugePageMemory.allocatePrefaulted(byteCount: slotCount * blockSize)
        slots = .allocate(capacity: slotCount)
        slots.initialize(repeating: Slot(), count: slotCount)
        freeSlots = .allocate(capacity: slotCount)
        copies = SlotTable(maximumCount: slotCount)
        tables = .allocate(capacity: Self.maximumMembers)
        tables.initialize(repeating: Table(), count: Self.maximumMembers)
        counters = .allocate(capacity: 1)
        counters.initialize(to: Counters())
    }

    deinit {
        // Members hold the index strongly: none is left.
        storage.deallocate()
        slots.deallocate()
        freeSlots.deallocate()
        tables.deallocate()
        counters.deallocate()
    }

    public static func == (lhs: SharedContentIndex, rhs: SharedContentIndex) -> Bool { lhs === rhs }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }

    /// Bytes of the stored copies, their bookkeeping and the key-to-copy table.
    public var metadataBytes: Int {
        slotCount * (blockSize + MemoryLayout<Slot>.stride + MemoryLayout<UInt32>.stride) + copies.metadataBytes
    }

    /// What the index holds now.
    public var statistics: Statistics {
        lock.withLock { members in
            let c = counters.pointee
            return Statistics(
                members: members, entries: c.entries, storedCopies: c.storedCopies,
                storedBytes: c.storedCopies * blockSize,
                bytesSavedBySharing: (c.entries - c.storedCopies) * blockSize, attachments: c.attachments,
                evictions: c.evictions, entriesEvicted: c.entriesEvicted, metadataBytes: metadataBytes)
        }
    }

    // MARK: - Members

    /// A new member (an engine's view) for regions of `blocks` blocks in all, with an empty entry table
    /// sized for the fewer of those blocks and the stored copies.
    ///
    /// - Throws: ``FGBIError/invalidArgument(_:)`` when ``maximumMembers`` engines use the index already.
    func join(blocks: Int) throws(FGBIError) -> Member {
        let limit = max(min(blocks, slotCount), 1)
        var capacity = 16
        while capacity < limit * 2 { capacity <<= 1 }
        // Allocated and cleared outside the lock: it may be tens of MiB.
        let entries = UnsafeMutablePointer<Entry>.allocate(capacity: capacity)
        entries.initialize(repeating: Entry(key: 0, location: 0, epoch: 0, slotPlusOne: 0, ordinal: 0), count: capacity)
        let id = lock.withLock { members -> Int? in
            guard let free = (0..<Self.maximumMembers).first(where: { tables[$0].entries == nil }) else { return nil }
            tables[free] = Table(entries: entries, mask: capacity - 1, count: 0, epoch: 0)
            members += 1
            return free
        }
        guard let id else {
            entries.deallocate()
            throw .invalidArgument("a shared content index serves at most \(Self.maximumMembers) engines at once")
        }
        return Member(group: self, id: id)
    }

    /// Member `id` leaves: its entries stop using their copies (freed when no other member uses them).
    func leave(_ id: Int) {
        let entries = lock.withLock { members -> UnsafeMutablePointer<Entry> in
            let table = tables + id
            let entries = table.pointee.entries!
            let bit: UInt64 = 1 << UInt64(id)
            for index in 0...table.pointee.mask where entries[index].slotPlusOne != 0 {
                disown(slot: Int(entries[index].slotPlusOne) - 1, bit: bit)
            }
            counters.pointee.entries -= table.pointee.count
            members -= 1
            table.pointee = Table()
            return entries
        }
        entries.deallocate()
    }

    // MARK: - Shared slots (the lock held)

    @inline(__always)
    static func home(_ key: UInt64, _ mask: Int) -> Int { Int(truncatingIfNeeded: key ^ (key >> 29)) & mask }

    @inline(__always)
    func slotBytes(_ slot: Int) -> UnsafeMutableRawPointer { storage + slot * blockSize }

    /// The position of `key` in a member's `entries` (capacity `mask` + 1), if present.
    @inline(__always)
    static func position(of key: UInt64, in entries: UnsafeMutablePointer<Entry>, mask: Int) -> Int? {
        var index = home(key, mask)
        while entries[index].slotPlusOne != 0 {
            if entries[index].key == key { return index }
            index = (index + 1) & mask
        }
        return nil
    }

    /// Backward-shift deletion from a member's table.
    func delete(at start: Int, in table: UnsafeMutablePointer<Table>) {
        let entries = table.pointee.entries!
        let mask = table.pointee.mask
        var hole = start
        var index = (start + 1) & mask
        while entries[index].slotPlusOne != 0 {
            let wanted = Self.home(entries[index].key, mask)
            if (index - wanted) & mask >= (index - hole) & mask {
                entries[hole] = entries[index]
                hole = index
            }
            index = (index + 1) & mask
        }
        entries[hole].slotPlusOne = 0
        table.pointee.count -= 1
        counters.pointee.entries -= 1
    }

    /// A member's entry stops using `slot`; the slot is freed when no member uses it any more.
    @inline(__always)
    func disown(slot: Int, bit: UInt64) {
        slots[slot].owners &= ~bit
        if slots[slot].owners == 0 { free(slot) }
    }

    /// `slot` holds no copy any more: unregistered, and reusable before anything is evicted.
    private func free(_ slot: Int) {
        if slots[slot].registered {
            copies.remove(slots[slot].key, ifValue: UInt32(slot))
            slots[slot].registered = false
        }
        counters.pointee.storedCopies -= 1
        freeSlots[counters.pointee.freeSlots] = UInt32(slot)
        counters.pointee.freeSlots += 1
    }

    /// A slot for a new copy: a freed one, or the one under the hand, evicting the copy there with every
    /// member's entry using it.
    @inline(__always)
    func takeSlot() -> Int {
        if counters.pointee.freeSlots > 0 {
            counters.pointee.freeSlots -= 1
            return Int(freeSlots[counters.pointee.freeSlots])
        }
        let slot = counters.pointee.hand
        counters.pointee.hand = slot + 1 == slotCount ? 0 : slot + 1
        var owners = slots[slot].owners
        guard owners != 0 else { return slot }
        let key = slots[slot].key
        while owners != 0 {
            let member = owners.trailingZeroBitCount
            owners &= owners - 1
            let table = tables + member
            let found = Self.position(of: key, in: table.pointee.entries!, mask: table.pointee.mask)
            assert(
                found != nil && table.pointee.entries![found!].slotPlusOne == UInt32(slot + 1),
                "slot owner without its entry")
            if let found { delete(at: found, in: table) }
            counters.pointee.entriesEvicted += 1
        }
        slots[slot].owners = 0
        if slots[slot].registered {
            copies.remove(key, ifValue: UInt32(slot))
            slots[slot].registered = false
        }
        counters.pointee.storedCopies -= 1
        counters.pointee.evictions += 1
        return slot
    }

    /// The slot to use for `bytes` (key `key`) for the member with `bit`: a copy already stored for another
    /// member when bitwise equal, else a new copy.
    @inline(__always)
    func slot(for key: UInt64, bytes: UnsafeRawPointer, bit: UInt64) -> Int {
        if let stored = copies.find(key).map(Int.init), memcmp(slotBytes(stored), bytes, blockSize) == 0 {
            slots[stored].owners |= bit
            counters.pointee.attachments += 1
            return stored
        }
        let slot = takeSlot()
        slots[slot] = Slot(key: key, owners: bit, registered: false)
        slotBytes(slot).copyMemory(from: bytes, byteCount: blockSize)
        counters.pointee.storedCopies += 1
        // The first copy with a key is the one others find; a collision's copy (same key, other bytes,
        // only with forced keys) is kept for its member alone.
        if copies.find(key) == nil {
            copies.set(key, UInt32(slot))
            slots[slot].registered = true
        }
        return slot
    }

    @inline(__always)
    func prefetchEviction(ahead: Int) {
        guard counters.pointee.freeSlots == 0 else { return }
        let slot = (counters.pointee.hand + ahead) % slotCount
        let owners = slots[slot].owners
        if owners != 0, let entries = tables[owners.trailingZeroBitCount].entries {
            CSupport_prefetch(entries + Self.home(slots[slot].key, tables[owners.trailingZeroBitCount].mask))
        }
    }

    @inline(__always)
    func addEntry() { counters.pointee.entries += 1 }

    /// Starts loading the key-to-copy line a lookup of `key` probes first (called on the index itself, whose
    /// table needs no reference counting then).
    @inline(__always)
    func prefetchCopy(key: UInt64) { copies.prefetch(key) }
}
