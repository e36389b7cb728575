import CSupport

#if canImport(Glibc)
    import Glibc
#endif

extension SharedContentIndex {
    /// One engine's view of the shared index: its own entries (what its backup holds), the shared copies.
    /// Every call but ``exclusively(_:)`` must be made inside ``exclusively(_:)``.
    final class Member: BlockIndex {
        let group: SharedContentIndex
        let id: Int
        private let bit: UInt64
        private let table: UnsafeMutablePointer<Table>
        private let entries: UnsafeMutablePointer<Entry>
        private let mask: Int
        let keying: IndexKeying
        private let blockSize: Int

        init(group: SharedContentIndex, id: Int) {
            self.group = group
            self.id = id
            bit = 1 << UInt64(id)
            table = group.tables + id
            entries = table.pointee.entries!
            mask = table.pointee.mask
            keying = group.keying
            blockSize = group.blockSize
        }

        deinit { group.leave(id) }

        /// Runs `body` holding the index's lock: one encode call at a time across all members.
        @inline(__always)
        func exclusively<Result>(_ body: () throws -> Result) rethrows -> Result {
            try group.lock.withLock { _ in try body() }
        }

        var entryCount: Int { table.pointee.count }
        var copyCapacity: Int { group.slotCount }

        /// Bytes of this member's entry table.
        var metadataBytes: Int { (mask + 1) * MemoryLayout<Entry>.stride }

        @inline(__always)
        private func position(of key: UInt64) -> Int? { SharedContentIndex.position(of: key, in: entries, mask: mask) }

        func beginEpoch(_ number: UInt64) { table.pointee.epoch = number &+ 1 } // stored + 1 so 0 never matches

        /// Also starts loading the key-to-copy line an addition of this content would probe (the encoder
        /// prefetches new and old hashes alike; the extra line for an old one is cheap).
        @inline(__always)
        func prefetch(hash: UInt64) {
            let key = keying.key(hash)
            CSupport_prefetch(entries + SharedContentIndex.home(key, mask))
            group.prefetchCopy(key: key)
        }

        @inline(__always)
        func prefetchPrevious(at location: BlockLocation, hash: UInt64) { prefetch(hash: hash) }

        /// Nothing kept per location.
        func prefetchLocation(_ location: BlockLocation) {}

        /// Nothing more: the shared table's entries hold the location and epoch themselves.
        @inline(__always)
        func prefetchPreviousContent(at location: BlockLocation, hash: UInt64, bytes: Bool) {}

        /// Nothing more: the shared table's entries hold what a lookup compares first.
        @inline(__always)
        func prefetchMatch(hash: UInt64) {}

        /// A member does not find copies by location.
        @inline(__always)
        func prefetchCandidate(_ candidate: BlockLocation, content: Bool) {}

        /// A member keeps no per-location bits: every location is probed.
        var keepsLocationBits: Bool { false }

        func heldBits(ofPageAt location: BlockLocation) -> UInt64 { ~0 }

        func prefetchHeldBits(ofPageAt location: BlockLocation) {}

        @inline(__always)
        func prefetchEviction(ahead: Int) { group.prefetchEviction(ahead: ahead) }

        @inline(__always)
        func match(hash: UInt64, bytes: UnsafeRawPointer) -> ContentIndex.Match {
            match(hash: hash, bytes: bytes, likelyAt: nil, probing: true).match
        }

        /// Every copy has a table entry.
        var findsByLocation: Bool { false }

        /// Not used: every copy has a table entry (``findsByLocation`` is false).
        func store(hash: UInt64, at location: BlockLocation, bytes: UnsafeRawPointer, ordinal: Int) {
            add(hash: hash, at: location, bytes: bytes, ordinal: ordinal)
        }

        /// Finds content through the table only: `candidate` is ignored, and it always probes.
        @inline(__always)
        func match(
            hash: UInt64, bytes: UnsafeRawPointer, likelyAt candidate: BlockLocation?,
            probing: Bool
        ) -> (match: ContentIndex.Match, source: BlockLocation?) {
            guard let index = position(of: keying.key(hash)) else { return (.none, nil) }
            let entry = entries[index]
            guard memcmp(group.slotBytes(Int(entry.slotPlusOne) - 1), bytes, blockSize) == 0 else {
                return (.collision, nil)
            }
            let source = BlockLocation(packed: entry.location)
            return (entry.epoch == table.pointee.epoch ? .copyEpoch(Int(entry.ordinal)) : .copy(source), source)
        }

        @inline(__always)
        func takePrevious(at location: BlockLocation, hash: UInt64) -> UnsafeRawPointer? {
            guard let index = position(of: keying.key(hash)), entries[index].location == location.packed,
                entries[index].epoch != table.pointee.epoch
            else { return nil }
            let slot = Int(entries[index].slotPlusOne) - 1
            group.delete(at: index, in: table)
            // Freed when no other member uses it; either way the bytes stay until the next addition.
            group.disown(slot: slot, bit: bit)
            return UnsafeRawPointer(group.slotBytes(slot))
        }

        /// The shared table is probed anyway (another member's addition may have taken the key since).
        @inline(__always)
        func addAbsent(hash: UInt64, at location: BlockLocation, bytes: UnsafeRawPointer, ordinal: Int) {
            add(hash: hash, at: location, bytes: bytes, ordinal: ordinal)
        }

        @inline(__always)
        func add(hash: UInt64, at location: BlockLocation, bytes: UnsafeRawPointer, ordinal: Int) {
            let key = keying.key(hash)
            // The table is at most half full by construction (one entry per location, one copy per entry);
            // an empty place is kept anyway, so probes always end (an entry left out costs only a reference).
            guard table.pointee.count < mask, position(of: key) == nil else { return }
            let slot = group.slot(for: key, bytes: bytes, bit: bit)
            // Taking a slot may have evicted one of this member's entries: probe afresh.
            var index = SharedContentIndex.home(key, mask)
            while entries[index].slotPlusOne != 0 { index = (index + 1) & mask }
            entries[index] = Entry(
                key: key, location: location.packed, epoch: table.pointee.epoch,
                slotPlusOne: UInt32(slot + 1), ordinal: UInt32(ordinal))
            table.pointee.count += 1
            group.addEntry()
        }
    }
}
