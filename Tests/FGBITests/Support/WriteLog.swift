import FGBI

/// Writes to a region that surely change the bytes they touch, recording which pages they touched: the
/// ground truth tracker tests compare against.
struct WriteLog {
    let memory: GuestMemory
    var random: SeededRandom
    /// A counter folded into every value written, so no write stores bytes that were already there.
    private var serial: UInt64 = 0
    private(set) var pages: Set<Int> = []

    init(memory: GuestMemory, seed: UInt64) {
        self.memory = memory
        random = SeededRandom(seed: seed)
    }

    mutating func reset() { pages.removeAll(keepingCapacity: true) }

    private mutating func unique() -> UInt64 {
        serial += 1
        return (serial << 8) | 0xA5
    }

    /// Stores a unique 8-byte value at an aligned slot of `page`.
    mutating func writeWord(page: Int) {
        let slot = Int(random.next() % UInt64(GuestMemory.pageSize / 8))
        memory.page(page).storeBytes(of: unique(), toByteOffset: slot * 8, as: UInt64.self)
        pages.insert(page)
    }

    /// Stores a unique 8-byte value at an unaligned random offset of `page` (a sub-word, odd-placed write).
    mutating func writeUnaligned(page: Int) {
        let offset = Int(random.next() % UInt64(GuestMemory.pageSize - 8))
        memory.page(page).storeBytes(of: unique(), toByteOffset: offset, as: UInt64.self)
        pages.insert(page)
    }

    /// Stores 16 unique bytes across the boundary between `page` and the next one: both are written.
    mutating func writeStraddling(page: Int) {
        precondition(page + 1 < memory.pageCount)
        let values = (unique(), unique())
        withUnsafeBytes(of: values) { source in
            UnsafeMutableRawPointer(memory.page(page + 1) - 8).copyMemory(from: source.baseAddress!, byteCount: 16)
        }
        pages.insert(page)
        pages.insert(page + 1)
    }

    /// Overwrites all of `page` with new content.
    mutating func writeWholePage(page: Int) {
        let words = memory.page(page).assumingMemoryBound(to: UInt64.self)
        // The top bit keeps these words distinct from every value `unique()` returns.
        let value = unique() | (1 << 63)
        for i in 0..<(GuestMemory.pageSize / 8) { words[i] = value ^ (UInt64(i) << 32) }
        pages.insert(page)
    }

    /// Reads a byte of `page`: trackers must not report reads.
    mutating func read(page: Int) -> UInt8 {
        memory.page(page).load(fromByteOffset: Int(random.next() % UInt64(GuestMemory.pageSize)), as: UInt8.self)
    }

    /// A random epoch's worth of writes of mixed kinds to at most `budget` pages, plus as many reads.
    mutating func randomEpoch(budget: Int) -> UInt8 {
        let count = Int(random.next() % UInt64(budget + 1))
        var sink: UInt8 = 0
        let pageCount = memory.pageCount
        for _ in 0..<count {
            let page = Int(random.next() % UInt64(pageCount))
            switch random.next() % 5 {
            case 0: writeUnaligned(page: page)
            case 1 where page + 1 < pageCount: writeStraddling(page: page)
            case 2 where random.next() % 8 == 0: writeWholePage(page: page)
            default: writeWord(page: page)
            }
            sink ^= read(page: Int(random.next() % UInt64(pageCount)))
        }
        return sink
    }
}
