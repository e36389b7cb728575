import FGBI

/// Adversarial writes for engine tests, recording which pages each epoch touched (the tracker's answer).
struct Mutator {
    let regions: [GuestMemory]
    let blockSize: Int
    var random: SeededRandom
    private(set) var touched: [Set<Int>]

    init(regions: [GuestMemory], blockSize: Int, seed: UInt64) {
        self.regions = regions
        self.blockSize = blockSize
        random = SeededRandom(seed: seed)
        touched = Array(repeating: [], count: regions.count)
    }

    /// The pages touched since the last call, as dirty sets, and a fresh start.
    mutating func takeDirty() -> [DirtyPageSet] {
        defer { touched = Array(repeating: [], count: regions.count) }
        return touched.map { DirtyPageSet(pages: $0) }
    }

    private mutating func pick(_ bound: Int) -> Int { Int(random.next() % UInt64(bound)) }

    private mutating func write(_ region: Int, at offset: Int, _ bytes: UnsafeRawBufferPointer) {
        (regions[region].base + offset).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        let page = GuestMemory.pageSize
        for p in (offset / page)...((offset + bytes.count - 1) / page) { touched[region].insert(p) }
    }

    /// One random adversarial action.
    mutating func act() {
        let region = pick(regions.count)
        let memory = regions[region]
        let length = memory.length
        switch pick(10) {
        case 0: // single byte
            var byte = UInt8(truncatingIfNeeded: random.next())
            withUnsafeBytes(of: &byte) { write(region, at: pick(length), $0) }
        case 1: // 8-byte write (the sparse case)
            var word = random.next()
            withUnsafeBytes(of: &word) { write(region, at: pick(length / 8) * 8, $0) }
        case 2: // straddles a block (and sometimes a page) boundary
            let boundary = max(pick(length / blockSize), 1) * blockSize
            let bytes = (0..<16).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            bytes.withUnsafeBytes { write(region, at: boundary - 8, $0) }
        case 3: // whole page of new content
            let bytes = (0..<GuestMemory.pageSize).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            bytes.withUnsafeBytes { write(region, at: pick(memory.pageCount) * GuestMemory.pageSize, $0) }
        case 4: // copy a page from another place, maybe another region (duplicates)
            let source = regions[pick(regions.count)]
            let from = source.page(pick(source.pageCount))
            write(
                region, at: pick(memory.pageCount) * GuestMemory.pageSize,
                UnsafeRawBufferPointer(start: from, count: GuestMemory.pageSize))
        case 5: // zero a page or a block
            let size = random.next() % 2 == 0 ? GuestMemory.pageSize : blockSize
            let zeros = [UInt8](repeating: 0, count: size)
            zeros.withUnsafeBytes { write(region, at: pick(length / size) * size, $0) }
        case 6: // swap two blocks (identical or not)
            let a = pick(length / blockSize) * blockSize
            let b = pick(length / blockSize) * blockSize
            let first = Array(UnsafeRawBufferPointer(start: memory.base + a, count: blockSize))
            let second = Array(UnsafeRawBufferPointer(start: memory.base + b, count: blockSize))
            second.withUnsafeBytes { write(region, at: a, $0) }
            first.withUnsafeBytes { write(region, at: b, $0) }
        case 7: // write, then restore: the page is dirty but its content is what the backup has
            let offset = pick(length / 8) * 8
            let old = memory.base.load(fromByteOffset: offset, as: UInt64.self)
            var scribble = old ^ 0xFFFF
            withUnsafeBytes(of: &scribble) { write(region, at: offset, $0) }
            var restored = old
            withUnsafeBytes(of: &restored) { write(region, at: offset, $0) }
        case 8: // fill a block with a small repeating pattern, so many blocks share content
            let pattern = UInt8(pick(4))
            let bytes = [UInt8](repeating: pattern, count: blockSize)
            bytes.withUnsafeBytes { write(region, at: pick(length / blockSize) * blockSize, $0) }
        default: // a short run of bytes at an odd place
            let count = 1 + pick(40)
            let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            bytes.withUnsafeBytes { write(region, at: pick(length - count), $0) }
        }
    }
}
