/// A memory-budgeted store of fixed-size byte copies found by a 64-bit key, evicting the oldest copy first
/// when full. Each copy also carries a tag (the location it was copied from).
///
/// The content index keeps block contents in one (keyed by content hash); the `xbzrle` mode keeps its page
/// cache in another (keyed by page location). Allocates only at creation.
final class CopyStore {
    /// Bytes per copy.
    let slotSize: Int
    /// Copies held at most.
    let capacity: Int
    private let table: SlotTable
    private let slotKeys: UnsafeMutablePointer<UInt64>
    private let slotTags: UnsafeMutablePointer<UInt64>
    private let slotUsed: UnsafeMutablePointer<Bool>
    private let storage: UnsafeMutableRawPointer
    private var hand = 0
    private(set) var count = 0
    /// Copies evicted to make room, since creation.
    private(set) var evictions = 0

    /// A store of `budgetBytes / slotSize` copies (at least one).
    init(slotSize: Int, budgetBytes: Int) {
        self.slotSize = slotSize
        capacity = max(budgetBytes / slotSize, 1)
        table = SlotTable(maximumCount: capacity)
        slotKeys = .allocate(capacity: capacity)
        slotKeys.initialize(repeating: 0, count: capacity)
        slotTags = .allocate(capacity: capacity)
        slotTags.initialize(repeating: 0, count: capacity)
        slotUsed = .allocate(capacity: capacity)
        slotUsed.initialize(repeating: false, count: capacity)
        storage = HugePageMemory.allocatePrefaulted(byteCount: capacity * slotSize)
    }

    deinit {
        slotKeys.deallocate()
        slotTags.deallocate()
        slotUsed.deallocate()
        storage.deallocate()
    }

    /// Bytes of copies plus bookkeeping.
    var totalBytes: Int { capacity * (slotSize + 17) + table.metadataBytes }

    /// The slot holding the copy for `key`.
    @inline(__always)
    func find(_ key: UInt64) -> Int? { table.find(key).map(Int.init) }

    @inline(__always)
    func bytes(_ slot: Int) -> UnsafeMutableRawPointer { storage + slot * slotSize }

    @inline(__always)
    func tag(_ slot: Int) -> UInt64 { slotTags[slot] }

    /// Stores a copy of `slotSize` bytes from `source` for `key` with `tag`, replacing the copy already held
    /// for `key` or else evicting the oldest. Returns the slot.
    @discardableResult
    func store(_ key: UInt64, tag: UInt64, from source: UnsafeRawPointer) -> Int {
        let slot: Int
        if let existing = find(key) {
            slot = existing
        } else {
            slot = hand
            hand = hand + 1 == capacity ? 0 : hand + 1
            if slotUsed[slot] {
                table.remove(slotKeys[slot], ifValue: UInt32(slot))
                evictions += 1
            } else {
                count += 1
            }
            slotUsed[slot] = true
            slotKeys[slot] = key
            table.set(key, UInt32(slot))
        }
        slotTags[slot] = tag
        bytes(slot).copyMemory(from: source, byteCount: slotSize)
        return slot
    }

    /// Forgets the copy for `key` when its tag is `tag`.
    func remove(_ key: UInt64, ifTag tag: UInt64) {
        guard let slot = find(key), slotTags[slot] == tag else { return }
        table.remove(key, ifValue: UInt32(slot))
        slotUsed[slot] = false
        count -= 1
    }
}
