@testable import FGBI
import Testing

/// The hash tables under the content index and the page cache, checked against a model under random
/// operations (insertions, lookups and backward-shift deletions in long probe runs).
@Suite("Index structures")
struct IndexStructureTests {
    @Test func slotTableMatchesADictionary() {
        let table = SlotTable(maximumCount: 512)
        var model: [UInt64: UInt32] = [:]
        var random = SeededRandom(seed: 21)
        // Few distinct keys with clustered homes make long probe runs, where deletion bugs hide.
        for step in 0..<20_000 {
            let key = (random.next() % 700) << 40
            switch random.next() % 3 {
            case 0 where model.count < 512 || model[key] != nil:
                let value = UInt32(step)
                table.set(key, value)
                model[key] = value
            case 1:
                table.remove(key)
                model[key] = nil
            default:
                #expect(table.find(key) == model[key], "step \(step)")
            }
        }
        #expect(table.count == model.count)
        for (key, value) in model { #expect(table.find(key) == value) }
    }

    @Test func copyStoreEvictsOldestFirstAndKeepsTags() {
        let store = CopyStore(slotSize: 8, budgetBytes: 8 * 4)
        var bytes: UInt64 = 0
        for key in UInt64(1)...6 {
            bytes = key * 11
            _ = withUnsafeBytes(of: &bytes) { store.store(key << 33, tag: key, from: $0.baseAddress!) }
        }
        #expect(store.count == 4 && store.evictions == 2)
        #expect(store.find(1 << 33) == nil && store.find(2 << 33) == nil)
        for key in UInt64(3)...6 {
            let slot = try! #require(store.find(key << 33))
            #expect(store.tag(slot) == key)
            #expect(store.bytes(slot).load(as: UInt64.self) == key * 11)
        }
        store.remove(4 << 33, ifTag: 99)
        #expect(store.find(4 << 33) != nil, "a different tag must not remove")
        store.remove(4 << 33, ifTag: 4)
        #expect(store.find(4 << 33) == nil && store.count == 3)
    }

    @Test func contentIndexSemantics() {
        let index = ContentIndex(blockSize: 64, budgetBytes: 64 * 8, keying: .fullHash)
        let a = [UInt8](repeating: 1, count: 64)
        let b = [UInt8](repeating: 2, count: 64)
        let at5 = BlockLocation(region: 0, block: 5)
        let at9 = BlockLocation(region: 1, block: 9)
        a.withUnsafeBytes { a in
            b.withUnsafeBytes { b in
                index.beginEpoch(0)
                #expect(index.match(hash: 100, bytes: a.baseAddress!) == .none)
                index.add(hash: 100, at: at5, bytes: a.baseAddress!, ordinal: 3)
                // Same epoch: the content exists only in this epoch's staging.
                #expect(index.match(hash: 100, bytes: a.baseAddress!) == .copyEpoch(3))
                index.beginEpoch(1)
                #expect(index.match(hash: 100, bytes: a.baseAddress!) == .copy(at5))
                // Same key, other bytes: a collision, never a match.
                #expect(index.match(hash: 100, bytes: b.baseAddress!) == .collision)
                // The previous content is handed out only for its own location, once.
                #expect(index.takePrevious(at: at9, hash: 100) == nil)
                let previous = index.takePrevious(at: at5, hash: 100)
                #expect(previous.map { $0.load(as: UInt8.self) } == 1)
                #expect(index.takePrevious(at: at5, hash: 100) == nil)
                #expect(index.match(hash: 100, bytes: a.baseAddress!) == .none)
                #expect(index.entryCount == 0)
            }
        }
    }

    @Test func contentIndexEvictsWithinItsBudget() {
        let index = ContentIndex(blockSize: 64, budgetBytes: 64 * 16, keying: .fullHash)
        var random = SeededRandom(seed: 8)
        index.beginEpoch(0)
        var blocks: [[UInt8]] = []
        for i in 0..<100 {
            let block = (0..<64).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            blocks.append(block)
            block.withUnsafeBytes { index.add(hash: UInt64(i) &* 0x9E37_79B9_7F4A_7C15, at: BlockLocation(region: 0, block: i), bytes: $0.baseAddress!, ordinal: i) }
        }
        #expect(index.entryCount == 16 && index.evictions == 84)
        index.beginEpoch(1)
        for i in 0..<100 {
            let expected: ContentIndex.Match = i >= 84 ? .copy(BlockLocation(region: 0, block: i)) : .none
            blocks[i].withUnsafeBytes { #expect(index.match(hash: UInt64(i) &* 0x9E37_79B9_7F4A_7C15, bytes: $0.baseAddress!) == expected) }
        }
    }
}
