/// What the paused stage of an epoch captured, so the rest of the epoch's work can run while the guest runs
/// again: for the `fgbi` mode the changed blocks (location, old and new hash, bytes), for the page modes the
/// written pages (location, bytes). Owned by the caller and reused across epochs; allocates only to grow.
public final class EpochCapture: @unchecked Sendable {
    /// The epoch this capture belongs to.
    public internal(set) var epoch: UInt64 = 0
    /// Pages the tracker reported (or, for the first epoch, every page).
    public internal(set) var pagesWritten = 0
    /// Blocks rehashed to find the changed ones (`fgbi` mode).
    public internal(set) var blocksRehashed = 0
    /// Nanoseconds the capture took: the part of the epoch that needs the guest paused.
    public internal(set) var captureNanoseconds: UInt64 = 0

    /// Changed blocks (`fgbi`) or written pages (page modes), in increasing location order.
    var locations: [BlockLocation] = []
    /// For each changed block, its hash before and after this epoch (`fgbi` mode).
    var oldHashes: [UInt64] = []
    var newHashes: [UInt64] = []
    /// The captured bytes: item i at `i * itemSize`.
    private(set) var arena: UnsafeMutableRawPointer
    private var arenaCapacity: Int
    private(set) var itemSize = 0

    public init() {
        arenaCapacity = 1 << 16
        arena = .allocate(byteCount: arenaCapacity, alignment: 64)
    }

    deinit { arena.deallocate() }

    /// The number of captured items (blocks or pages).
    public var count: Int { locations.count }

    func reset(epoch: UInt64, itemSize: Int) {
        self.epoch = epoch
        self.itemSize = itemSize
        pagesWritten = 0
        blocksRehashed = 0
        locations.removeAll(keepingCapacity: true)
        oldHashes.removeAll(keepingCapacity: true)
        newHashes.removeAll(keepingCapacity: true)
    }

    /// Bytes of item `index`.
    @inline(__always)
    func item(_ index: Int) -> UnsafeMutableRawPointer { arena + index * itemSize }

    /// Appends an item copied from `source`.
    @inline(__always)
    func append(_ location: BlockLocation, from source: UnsafeRawPointer) {
        let needed = (locations.count + 1) * itemSize
        if needed > arenaCapacity { grow(to: needed) }
        (arena + locations.count * itemSize).copyMemory(from: source, byteCount: itemSize)
        locations.append(location)
    }

    private func grow(to needed: Int) {
        var capacity = arenaCapacity
        while capacity < needed { capacity *= 2 }
        let bigger = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
        bigger.copyMemory(from: arena, byteCount: locations.count * itemSize)
        arena.deallocate()
        arena = bigger
        arenaCapacity = capacity
    }
}
