/// The parts of a ``ParallelBlockDeltaEncoder``'s epoch that its steps hand each other: what each thread's
/// partition decided and kept, and how the writing step reads it.
extension ParallelBlockDeltaEncoder {
    /// What step 2 decided for one block.
    struct Decision {
        enum Kind: UInt8 { case zero, copy, copyEpoch, unshared, collision }
        var item: UInt32
        var kind: Kind
        /// The packed source location of a copy, or the ordinal of a copy-epoch.
        var payload: UInt64
    }

    /// One thread's partition of the index and what steps 1 and 2 left for step 3.
    final class Partition {
        let index: ContentIndex
        var decisions: UnsafeMutablePointer<Decision>
        var decisionCapacity = 0
        var decisionCount = 0
        /// Items that have a base, in order, and their bases (`blockSize` bytes each, same order).
        var baseItems: UnsafeMutablePointer<UInt32>
        var baseBytes: UnsafeMutableRawPointer
        var baseCapacity = 0
        var baseCount = 0
        var zeroBlocks = 0
        var sharedHits = 0
        var collisions = 0
        /// Non-zero blocks looked up in the index this epoch (all, or the sample).
        var consulted = 0
        /// The items of the step in progress that this partition owns, in order.
        var items: UnsafeMutablePointer<UInt32>
        var itemCapacity = 0

        init(index: ContentIndex) {
            self.index = index
            items = .allocate(capacity: 1)
            decisions = .allocate(capacity: 1)
            baseItems = .allocate(capacity: 1)
            baseBytes = .allocate(byteCount: 64, alignment: 64)
        }

        deinit {
            items.deallocate()
            decisions.deallocate()
            baseItems.deallocate()
            baseBytes.deallocate()
        }

        /// Lists in ``items`` the first `count` items whose hash in `hashes` this partition owns, starts
        /// loading the index lines of the first `ahead` of them, and returns how many it owns.
        func collect(_ count: Int, _ hashes: UnsafeMutablePointer<UInt64>, ahead: Int, owned: (UInt64) -> Bool) -> Int {
            if itemCapacity < count {
                items.deallocate()
                itemCapacity = count + count / 2
                items = .allocate(capacity: itemCapacity)
            }
            var found = 0
            // Without a branch: which partition owns a block is random, so a branch would mispredict half the
            // time. Every item is written; only the owned ones are kept. (`items` has room for `count`.)
            for item in 0..<count {
                items[found] = UInt32(item)
                found += owned(hashes[item]) ? 1 : 0
            }
            for next in 0..<min(ahead, found) { index.prefetch(hash: hashes[Int(items[next])]) }
            return found
        }

        /// Makes room for `count` decisions (dropping the last epoch's), with room to grow: fresh memory's
        /// first touch is slow, so lists are not reallocated at every slightly larger epoch.
        func reserveDecisions(_ count: Int) {
            guard decisionCapacity < count else { return }
            decisions.deallocate()
            decisionCapacity = count + count / 2
            decisions = .allocate(capacity: decisionCapacity)
            decisionCount = 0
        }

        /// Makes room for `count` bases (dropping the last epoch's), likewise.
        func reserveBases(_ count: Int, blockSize: Int) {
            guard baseCapacity < count else { return }
            baseItems.deallocate()
            baseBytes.deallocate()
            baseCapacity = count + count / 2
            baseItems = .allocate(capacity: baseCapacity)
            baseBytes = .allocate(byteCount: baseCapacity * blockSize, alignment: 64)
            baseCount = 0
        }

        /// The first of `count` sorted items at or after `item` (a binary search).
        static func firstIndex(in items: (Int) -> UInt32, count: Int, from item: Int) -> Int {
            var low = 0
            var high = count
            while low < high {
                let middle = (low + high) / 2
                if Int(items(middle)) < item { low = middle + 1 } else { high = middle }
            }
            return low
        }
    }

    /// One partition's lists as the writing step of one shard reads them.
    struct Lists {
        let decisions: UnsafeMutablePointer<Decision>
        let baseItems: UnsafeMutablePointer<UInt32>
        let baseBytes: UnsafeMutableRawPointer
        let baseCount: Int
        var nextDecision: Int
        var nextBase: Int

        @inline(__always)
        mutating func takeDecision() -> Decision {
            defer { nextDecision += 1 }
            return decisions[nextDecision]
        }

        /// The base of `item`, if this partition kept one.
        @inline(__always)
        mutating func takeBase(of item: Int, blockSize: Int) -> UnsafeRawPointer? {
            guard nextBase < baseCount, Int(baseItems[nextBase]) == item else { return nil }
            defer { nextBase += 1 }
            return UnsafeRawPointer(baseBytes + nextBase * blockSize)
        }
    }
}
