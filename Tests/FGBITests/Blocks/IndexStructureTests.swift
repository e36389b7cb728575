import Testing

@testable import FGBI

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
            block.withUnsafeBytes {
                index.add(
                    hash: UInt64(i) &* 0x9E37_79B9_7F4A_7C15, at: BlockLocation(region: 0, block: i),
                    bytes: $0.baseAddress!, ordinal: i)
            }
        }
        #expect(index.entryCount == 16 && index.evictions == 84)
        index.beginEpoch(1)
        for i in 0..<100 {
            let expected: ContentIndex.Match = i >= 84 ? .copy(BlockLocation(region: 0, block: i)) : .none
            blocks[i].withUnsafeBytes {
                #expect(index.match(hash: UInt64(i) &* 0x9E37_79B9_7F4A_7C15, bytes: $0.baseAddress!) == expected)
            }
        }
    }

    /// The content index as the encoder drives it (match, retire the location's previous content, add), over
    /// hundreds of laps of its slot ring, against a model of its contract: a FIFO ring of stored copies, one
    /// entry per key, an entry gone as soon as its slot is reused or its location retired. Lazy eviction
    /// (stale entries, tombstone reuse, sweeps) must never change an answer. Few contents and, with
    /// `lowBits`, few keys make hits, collisions and long probe runs frequent.
    @Test(arguments: [IndexKeying.fullHash, .lowBits(3)])
    func contentIndexMatchesItsModelAcrossLapsOfLazyEviction(keying: IndexKeying) {
        struct Copy {
            var key: UInt64
            var location: BlockLocation
            var content: Int
            var epoch: UInt64
            var ordinal: Int
        }
        let slotCount = 8
        let locations = 24
        let index = ContentIndex(blockSize: 64, budgetBytes: 64 * slotCount, keying: keying, regionBlocks: [locations])
        let contents = (0..<20).map { content in (0..<64).map { UInt8(truncatingIfNeeded: content &* 37 &+ $0) } }
        let hashes = (0..<20).map { UInt64($0 + 1) &* 0xD6E8_FEB8_6659_FD93 }
        var ring = [Copy?](repeating: nil, count: slotCount)
        var hand = 0
        var memory = [Int](repeating: -1, count: locations) // content id per location; -1: never written
        var random = SeededRandom(seed: 77)
        func live(_ key: UInt64) -> Int? { ring.firstIndex { $0?.key == key } }
        var retiredCopies = 0
        for epoch in UInt64(0)..<1_200 {
            index.beginEpoch(epoch)
            // A capture holds each location at most once per epoch.
            var written = Set<Int>()
            var retired: [Copy] = []
            for ordinal in 0..<Int(random.next() % 6) {
                let block = Int(random.next() % UInt64(locations))
                guard written.insert(block).inserted else { continue }
                let location = BlockLocation(region: 0, block: block)
                let content = Int(random.next() % UInt64(contents.count))
                let key = keying.key(hashes[content])
                let expected: ContentIndex.Match
                if let slot = live(key), let copy = ring[slot] {
                    expected =
                        copy.content != content
                        ? .collision
                        : copy.epoch == epoch ? .copyEpoch(copy.ordinal) : .copy(copy.location)
                } else {
                    expected = .none
                }
                let got = contents[content].withUnsafeBytes {
                    index.match(hash: hashes[content], bytes: $0.baseAddress!)
                }
                // Where the model finds nothing, the index may find the same content retired earlier in this
                // epoch (the backup still holds it there until the epoch is applied).
                if case .copy(let from) = got, expected == .none {
                    #expect(
                        retired.contains { $0.key == key && $0.location == from && $0.content == content },
                        "epoch \(epoch), block \(block): a copy from \(from), not retired in this epoch")
                    retiredCopies += 1
                } else {
                    #expect(got == expected, "epoch \(epoch), block \(block), content \(content)")
                }
                // The location's previous content, retired whatever the match (as the encoder does).
                let old = memory[block]
                var expectedPrevious: Int?
                if old >= 0, let slot = live(keying.key(hashes[old])), let copy = ring[slot], copy.location == location,
                    copy.epoch != epoch
                {
                    expectedPrevious = copy.content
                    retired.append(copy)
                    ring[slot] = nil
                }
                let previous = old < 0 ? nil : index.takePrevious(at: location, hash: hashes[old])
                #expect(
                    previous.map { Array(UnsafeRawBufferPointer(start: $0, count: 64)) }
                        == expectedPrevious.map { contents[$0] },
                    "epoch \(epoch), block \(block): previous content")
                if got == .none {
                    contents[content].withUnsafeBytes {
                        index.add(hash: hashes[content], at: location, bytes: $0.baseAddress!, ordinal: ordinal)
                    }
                    ring[hand] = Copy(key: key, location: location, content: content, epoch: epoch, ordinal: ordinal)
                    hand = (hand + 1) % slotCount
                }
                memory[block] = content
            }
            #expect(index.entryCount == ring.compactMap { $0 }.count, "epoch \(epoch)")
            expectBoundedOccupancy(index, "epoch \(epoch)")
        }
        #expect(index.sweeps > 10, "the run must go through sweeps of stale entries")
        #expect(
            retiredCopies > 10 && retiredCopies == index.retiredCopies, "\(retiredCopies) copies of retired content")
    }

    /// Copies found by location (``ContentIndex/store(hash:at:bytes:ordinal:)``: no table entry; the
    /// `likelyAt` candidate of a match; retirement through the location's slot) against a model of what the
    /// backup holds: whatever the candidate (anywhere, past a region's end, a retired or refilled slot's
    /// location), whether the table is probed, and under forced key collisions, a `copy` names a location
    /// whose content before the epoch is the block's, a `copyEpoch` an earlier block of the epoch with the
    /// same content, and a previous content handed out is the location's own. Several hundred laps of a
    /// small ring, two regions.
    @Test(arguments: [IndexKeying.fullHash, .lowBits(2)])
    func copiesFoundByLocationAreExact(keying: IndexKeying) {
        let regionBlocks = [24, 20]
        let index = ContentIndex(blockSize: 64, budgetBytes: 64 * 10, keying: keying, regionBlocks: regionBlocks)
        #expect(index.findsByLocation)
        let contents = (0..<14).map { content in (0..<64).map { UInt8(truncatingIfNeeded: content &* 53 &+ $0 &* 7) } }
        let hashes = (0..<14).map { UInt64($0 + 1) &* 0x9E37_79B9_7F4A_7C15 }
        let locations = regionBlocks.enumerated().flatMap { region, blocks in
            (0..<blocks).map { BlockLocation(region: region, block: $0) }
        }
        // Content id per location as the backup holds it (-1: never written), at the epoch's start and staged.
        var backup = [BlockLocation: Int]()
        var random = SeededRandom(seed: 4242)
        var answers = (copies: 0, epochCopies: 0, collisions: 0, previous: 0)
        for epoch in UInt64(0)..<600 {
            index.beginEpoch(epoch)
            var staged = backup
            var written = Set<BlockLocation>()
            var epochContents: [Int: Int] = [:] // ordinal -> content
            for ordinal in 0..<Int(random.next() % 8) {
                let location = locations[Int(random.next() % UInt64(locations.count))]
                guard written.insert(location).inserted else { continue }
                let content = Int(random.next() % UInt64(contents.count))
                // A candidate anywhere: a real location, or one past a region's end.
                let candidate: BlockLocation? =
                    switch random.next() % 4 {
                    case 0: nil
                    case 1: BlockLocation(region: Int(random.next() % 2), block: 18 + Int(random.next() % 10))
                    default: locations[Int(random.next() % UInt64(locations.count))]
                    }
                let probing = random.next() % 2 == 0
                let (match, source) = contents[content].withUnsafeBytes {
                    index.match(hash: hashes[content], bytes: $0.baseAddress!, likelyAt: candidate, probing: probing)
                }
                switch match {
                case .copy(let from):
                    answers.copies += 1
                    #expect(
                        backup[from] == content,
                        "epoch \(epoch): copy from \(from) holding \(backup[from] ?? -1), not \(content)")
                    #expect(source == from)
                case .copyEpoch(let earlier):
                    answers.epochCopies += 1
                    #expect(epochContents[earlier] == content, "epoch \(epoch): copy of this epoch's block \(earlier)")
                case .collision:
                    answers.collisions += 1
                case .none:
                    break
                }
                // The location's previous content, retired whatever the match (as the encoder does).
                if let old = backup[location] {
                    let previous = index.takePrevious(at: location, hash: hashes[old])
                    if let previous {
                        answers.previous += 1
                        #expect(
                            Array(UnsafeRawBufferPointer(start: previous, count: 64)) == contents[old],
                            "epoch \(epoch), \(location): previous content")
                    }
                }
                if match == .none {
                    contents[content].withUnsafeBytes {
                        if probing {
                            index.addAbsent(
                                hash: hashes[content], at: location, bytes: $0.baseAddress!, ordinal: ordinal)
                        } else {
                            index.store(hash: hashes[content], at: location, bytes: $0.baseAddress!, ordinal: ordinal)
                        }
                    }
                }
                epochContents[ordinal] = content
                staged[location] = content
            }
            backup = staged
            #expect(index.entryCount <= 10)
            expectBoundedOccupancy(index, "epoch \(epoch)")
        }
        // Not vacuous: each kind of answer happened.
        #expect(answers.copies > 50 && answers.epochCopies > 5 && answers.previous > 50, "\(answers)")
        if keying != .fullHash { #expect(answers.collisions > 20, "\(answers)") }
        #expect(index.sweeps > 5, "the run must go through sweeps of stale entries")
        #expect(index.deadEntriesReused > 5, "the run must replace dead entries in place")
        #expect(index.retiredCopies > 5, "and find copies in content retired in the same epoch")
    }

    /// A copy retired by location leaves its entry dead in place. In the epoch that retired it, a lookup of its
    /// content finds it as a copy from its location (the backup holds it there until the epoch is applied); in
    /// a later epoch, not. The next entry of its key (the same content stored again elsewhere, after a lookup
    /// that met the dead entry) takes that position instead of a new one, and the slot it named is no longer
    /// counted as having an entry: when the hand refills it, no stale entry is counted for it.
    @Test func aDeadEntryIsReplacedByTheNextEntryOfItsKey() {
        let index = ContentIndex(blockSize: 64, budgetBytes: 64 * 16, keying: .fullHash, regionBlocks: [64])
        let occupied = { (0...index.mask).count { !index.entries[$0].isEmpty } }
        let hash: UInt64 = 0x1234_5678_9ABC_DEF1
        let (first, second) = (BlockLocation(region: 0, block: 3), BlockLocation(region: 0, block: 40))
        let content = [UInt8](repeating: 9, count: 64)
        content.withUnsafeBytes { content in
            let bytes = content.baseAddress!
            index.beginEpoch(0)
            index.addAbsent(hash: hash, at: first, bytes: bytes, ordinal: 0)
            index.beginEpoch(1)
            #expect(index.takePrevious(at: first, hash: hash) != nil)
            #expect(index.match(hash: hash, bytes: bytes) == .copy(first), "retired this epoch: still at the backup")
            #expect(index.retiredCopies == 1)
            index.beginEpoch(2)
            #expect(index.match(hash: hash, bytes: bytes) == .none, "retired in an earlier epoch: no match")
            index.addAbsent(hash: hash, at: second, bytes: bytes, ordinal: 0)
            #expect(index.deadEntriesReused == 1)
            #expect(occupied() == 1, "the new entry took the dead one's position")
            index.beginEpoch(3)
            #expect(index.match(hash: hash, bytes: bytes) == .copy(second))
            // The hand goes round: 14 more slots, then the first slot again (retired, its entry gone).
            for block in 0..<15 {
                let other = UInt64(block + 100) &* 0x9E37_79B9_7F4A_7C15
                index.store(hash: other, at: BlockLocation(region: 0, block: 8 + block), bytes: bytes, ordinal: 0)
            }
            #expect(index.counters.pointee.stale == 0, "no stale entry counted for the retired slot")
            #expect(index.match(hash: hash, bytes: bytes) == .copy(second))
        }
    }

    /// Stale entries are swept within ``ContentIndex/Entry/lapCount`` - 1 laps of the slot ring even when too
    /// few go stale to reach the sweep by count (one table entry per lap, the other copies stored by location
    /// only, as in epochs on anchors): an entry kept longer would, its lap wrapping round, look live again
    /// and never leave the table.
    @Test func staleEntriesAreSweptBeforeTheirLapWrapsRound() {
        let slotCount = 8
        let laps = 400
        let index = ContentIndex(
            blockSize: 64, budgetBytes: 64 * slotCount, keying: .fullHash, regionBlocks: [laps * slotCount])
        let bytes = [UInt8](repeating: 7, count: 64)
        bytes.withUnsafeBytes { content in
            for lap in 0..<laps {
                for item in 0..<slotCount {
                    let number = lap * slotCount + item
                    let hash = UInt64(number + 1) &* 0x9E37_79B9_7F4A_7C15
                    let location = BlockLocation(region: 0, block: number)
                    if item == 0 {
                        index.addAbsent(hash: hash, at: location, bytes: content.baseAddress!, ordinal: item)
                    } else {
                        index.store(hash: hash, at: location, bytes: content.baseAddress!, ordinal: item)
                    }
                }
                expectBoundedOccupancy(index, "lap \(lap)")
                // Every entry that looks live names a slot that still holds its key (each key is stored once).
                let aliased = (0...index.mask).count { position in
                    let entry = index.entries[position]
                    guard !entry.isEmpty, index.isLive(entry) else { return false }
                    return index.fragment(index.slots[Int(entry.slotPlusOne) - 1].key) != entry.fragment
                }
                #expect(aliased == 0, "lap \(lap): \(aliased) entries of refilled slots look live")
            }
        }
        #expect(index.sweeps >= laps / (Int(ContentIndex.Entry.lapCount) - 1) - 1, "sweeps by lap")
    }

    /// The table never fills, so every probe ends at an empty position: entries that look live (at most one per
    /// slot, at most an eighth of the table: ``ContentIndex/positionsPerCopy``) and stale ones (swept once they
    /// pass half of it; one more may be counted before the next insertion sweeps) stay within five eighths.
    /// (Aliased laps are what ``staleEntriesAreSweptBeforeTheirLapWrapsRound()`` checks: a sweep at the wrong
    /// lap keeps such entries a while, without filling the table.)
    private func expectBoundedOccupancy(_ index: ContentIndex, _ comment: Comment) {
        let capacity = index.mask + 1
        let occupied = (0..<capacity).count { !index.entries[$0].isEmpty }
        #expect(capacity >= index.copyCapacity * ContentIndex.positionsPerCopy, "\(capacity) positions: \(comment)")
        #expect(
            occupied <= index.copyCapacity + capacity / 2 + 1, "\(occupied) of \(capacity) positions taken: \(comment)")
    }
}
