import CSupport
import Testing

@testable import FGBI

/// The content index's sweep asks the shim which of 64 table entries are live (``ContentIndex/sweep()``):
/// its answer, on the AVX-512 path and the portable one, must be the index's own, or the sweep would drop live
/// entries (lookups would miss copies) or keep stale ones (the table would fill).
@Suite("Content index sweep")
struct IndexSweepTests {
    @Test("the shim's live mask says what isLive says", arguments: [false, true])
    func liveMaskAgreesWithTheIndex(portable: Bool) {
        let was = CSupport_index_select_portable(portable ? 1 : 0)
        defer { _ = CSupport_index_select_portable(was) }
        let index = ContentIndex(blockSize: 64, budgetBytes: 64 * 1_000, keying: .fullHash)
        let slots = index.slotCount
        var random = SeededRandom(seed: 57)
        var entries = [ContentIndex.Entry](repeating: ContentIndex.Entry(fragment: 0, tag: 0), count: 64)
        var (live, dead) = (0, 0)
        for round in 0..<400 {
            let hand = Int(random.next() % UInt64(slots))
            let lap = UInt32(random.next() % 40)
            index.counters.pointee.hand = hand
            index.counters.pointee.lap = lap
            for item in 0..<64 {
                let fragment = UInt32(truncatingIfNeeded: random.next())
                switch random.next() % 8 {
                case 0: entries[item] = ContentIndex.Entry(fragment: 0, tag: 0)
                case 1: entries[item] = ContentIndex.Entry(fragment: fragment, tag: ContentIndex.Entry.tombstone)
                default:
                    // Slots on both sides of the hand and at the ring's ends; laps this one, the one before, others.
                    let candidates = [hand, hand + 1, hand + 2, 1, slots, 1 + Int(random.next() % UInt64(slots))]
                    let slotPlusOne = UInt32(min(max(candidates[Int(random.next() % 6)], 1), slots))
                    let entryLap = [lap, lap &- 1, UInt32(random.next() % 8)][Int(random.next() % 3)] & 7
                    entries[item] = ContentIndex.Entry(fragment: fragment, tag: entryLap << 29 | slotPlusOne)
                }
            }
            for count in [64, 8, 13, 1] {
                let mask = entries.withUnsafeBufferPointer { buffer in
                    buffer.withMemoryRebound(to: UInt64.self) { words in
                        CSupport_index_live_mask(words.baseAddress!, count, UInt64(hand), lap, UInt64(slots))
                    }
                }
                for item in 0..<count {
                    let expected = !entries[item].isEmpty && index.isLive(entries[item])
                    if expected { live += 1 } else { dead += 1 }
                    #expect(
                        mask >> UInt64(item) & 1 == (expected ? 1 : 0),
                        "round \(round), entry \(item) of \(count): tag \(entries[item].tag), hand \(hand), lap \(lap)")
                }
                #expect(count == 64 || mask >> UInt64(count) == 0, "no bit past the entries asked of")
            }
        }
        #expect(live > 1_000 && dead > 1_000, "both answers must be exercised: \(live) live, \(dead) dead")
    }
}
