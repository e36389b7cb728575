import CSupport

/// The `fgbi` encoder on several threads: the same records as ``BlockDeltaEncoder`` (the same forms, chosen
/// by the same rules), for one epoch split across a crew.
///
/// The content index is split by key into one ``ContentIndex`` per thread, each with its share of the
/// budget, so that a thread owns its partition and touches no other: no locks on the hot path. An epoch
/// takes three steps, each on every thread at once, with the crew's join between them:
/// 1. **Retire** (partition of the old hash): each thread retires, for the changed blocks whose previous
///    content its partition holds, that entry (the location is changing), and copies the content out as the
///    block's difference base, in item order into its own list.
/// 2. **Match and learn** (partition of the new hash): each thread checks its blocks for zeros, matches them
///    against its partition (bitwise comparison, as always) and adds the new contents, in item order. A
///    match on an entry of this epoch is a copy of that earlier block of the epoch: the same content means the
///    same key and so the same partition and thread, taken in order, so the earlier block is earlier in the
///    delta. A match on an older entry names a location the backup held before this epoch, which the replica
///    reads as it was before this epoch, whatever this epoch does to it; and step 1 has retired every entry
///    whose location changes now, so none is matched. Decisions go, in item order, to the thread's own list.
/// 3. **Write** (contiguous shards of the capture, cut at page boundaries): each shard writes its records
///    from the decisions and the bases (the next entry of the lists of the block's partitions) into a segment
///    of its own; the segments are then copied into the body in order, in parallel.
///
/// Steps 1 and 2 have each thread scan the hashes of every block to find its own (8 bytes a block, read in
/// order): with many threads that scan, not the index, bounds the speed-up (see Docs/ARCHITECTURE.md).
/// Small epochs run the same steps on the calling thread alone. Allocates only when an epoch outgrows the
/// lists of every earlier one.
final class ParallelBlockDeltaEncoder {
    /// Epochs with fewer changed blocks are encoded on the calling thread alone (the same steps).
    private let parallelMinimumBlocks: Int
    /// Blocks ahead whose index lines are prefetched.
    static let prefetchDistance = 8
    /// Shards of the writing step per thread: a thread whose CPU is busy takes fewer of them.
    static let shardsPerThread = 4

    private let geometry: BlockGeometry
    private let keying: IndexKeying
    /// The hash of a block of zeros: only blocks with it are checked for zeros byte by byte.
    private let zeroHash: UInt64
    private let partitions: [Partition]
    private let crew: CaptureCrew
    private var lanes: [Lane] = []
    /// Whether this epoch looks up every block or a sample (``IndexAdmission``), decided from the whole
    /// epoch's answers.
    private var admission = IndexAdmission()

    /// One shard of the writing step: its segment of the body and its counters.
    private final class Lane {
        @exclusivity(unchecked) var body = ByteWriter(reservingCapacity: 1 << 16)
        @exclusivity(unchecked) var stats = EpochStatistics()
        var records = 0
        let scratch: UnsafeMutablePointer<UInt8>

        init(blockSize: Int) { scratch = .allocate(capacity: 2 * (blockSize + 16)) }
        deinit { scratch.deallocate() }
    }

    /// An encoder on the threads of `crew` (the calling one and its helpers), its index of `budgetBytes`
    /// split evenly between them.
    init(geometry: BlockGeometry, crew: CaptureCrew, budgetBytes: Int, keying: IndexKeying, regionBlocks: [Int],
         parallelMinimumBlocks: Int) {
        let threads = crew.participants
        self.geometry = geometry
        self.parallelMinimumBlocks = parallelMinimumBlocks
        self.keying = keying
        zeroHash = geometry.zeroBlockHash
        partitions = (0..<threads).map { _ in
            Partition(index: ContentIndex(blockSize: geometry.blockSize, budgetBytes: budgetBytes / threads, keying: keying,
                                          regionBlocks: regionBlocks))
        }
        self.crew = crew
    }

    /// Threads an epoch is encoded on.
    var threads: Int { partitions.count }

    /// Entries held by every partition.
    var entryCount: Int { partitions.reduce(0) { $0 + $1.index.entryCount } }

    /// Bytes held: the partitions' indexes (the decision and base lists are working memory, sized by epochs).
    var metadataBytes: Int { partitions.reduce(0) { $0 + $1.index.metadataBytes } }

    /// The partition (and thread) of a block hash.
    @inline(__always)
    private func partitionNumber(of hash: UInt64) -> Int {
        let key = keying.key(hash)
        return Int((UInt64(UInt32(truncatingIfNeeded: key >> 32)) &* UInt64(partitions.count)) >> 32)
    }

    /// Encodes `capture` into `body`; returns the record count and fills the block counters of `stats`.
    /// `sparse` as for ``BlockDeltaEncoder/encode(_:sparse:into:stats:)``.
    func encode(_ epochCapture: EpochCapture, sparse: Bool, into body: inout ByteWriter, stats: inout EpochStatistics) -> Int {
        let capture = epochCapture.view
        let count = capture.count
        let parallel = partitions.count > 1 && count >= parallelMinimumBlocks
        let run = { (chunks: Int, step: (Int) -> Void) in self.run(chunks: chunks, parallel: parallel, step) }
        for partition in partitions { partition.index.beginEpoch(epochCapture.epoch) }
        run(partitions.count) { self.retire(capture, partition: $0) }
        run(partitions.count) { self.decide(capture, partition: $0) }
        let shards = Self.shards(of: capture, count: parallel ? partitions.count * Self.shardsPerThread : 1,
                                 blocksPerPageShift: geometry.blocksPerPage.trailingZeroBitCount)
        while lanes.count < shards.count { lanes.append(Lane(blockSize: geometry.blockSize)) }
        run(shards.count) { self.write(capture, items: shards[$0], sparse: sparse, into: self.lanes[$0]) }
        // The segments, in order, into the body.
        var offsets: [Int] = []
        var total = 0
        for lane in lanes.prefix(shards.count) {
            offsets.append(total)
            total += lane.body.count
        }
        let destination = body.extend(by: total)
        run(shards.count) { shard in
            let segment = self.lanes[shard].body.bytes
            if let source = segment.baseAddress { (destination + offsets[shard]).copyMemory(from: source, byteCount: segment.count) }
        }
        var records = 0
        let usefulBefore = stats.sharedHits + stats.diffBlocks
        for lane in lanes.prefix(shards.count) {
            records += lane.records
            stats.diffBlocks += lane.stats.diffBlocks
            stats.sparseBlocks += lane.stats.sparseBlocks
            stats.literalBlocks += lane.stats.literalBlocks
            stats.literalBytes += lane.stats.literalBytes
        }
        for partition in partitions {
            stats.zeroBlocks += partition.zeroBlocks
            stats.sharedHits += partition.sharedHits
            stats.collisions += partition.collisions
        }
        stats.blocksDirty = count
        let consulted = partitions.reduce(0) { $0 + $1.consulted }
        stats.blocksConsulted += consulted
        admission.update(consulted: consulted, useful: stats.sharedHits + stats.diffBlocks - usefulBefore)
        stats.indexEntries = entryCount
        stats.encodeThreads = parallel ? partitions.count : 1
        return records
    }

    /// Calls `step` for every chunk in `0..<chunks`: on the crew, or on this thread in order.
    private func run(chunks: Int, parallel: Bool, _ step: (Int) -> Void) {
        if parallel {
            crew.perform(chunks: chunks) { chunk, _ in step(chunk) }
        } else {
            for chunk in 0..<chunks { step(chunk) }
        }
    }

    /// Step 1 for one partition: retires the entries of the changing locations it holds, keeping their
    /// contents as bases.
    private func retire(_ capture: EpochCapture.View, partition number: Int) {
        let partition = partitions[number]
        let index = partition.index
        let hashes = capture.oldHashes
        let blockSize = geometry.blockSize
        let ahead = Self.prefetchDistance
        let owned = partition.collect(capture.count, hashes, ahead: ahead) { self.partitionNumber(of: $0) == number }
        let items = partition.items
        // Counters in locals: a class's stored property costs an exclusivity check per access.
        partition.reserveBases(owned, blockSize: blockSize)
        let baseItems = partition.baseItems
        let baseBytes = partition.baseBytes
        var bases = 0
        for position in 0..<owned {
            if position + ahead < owned {
                let next = Int(items[position + ahead])
                index.prefetchPrevious(at: capture.locations[next], hash: hashes[next])
            }
            let item = Int(items[position])
            guard let base = index.takePrevious(at: capture.locations[item], hash: hashes[item]) else { continue }
            baseItems[bases] = UInt32(item)
            (baseBytes + bases * blockSize).copyMemory(from: base, byteCount: blockSize)
            bases += 1
        }
        partition.baseCount = bases
    }

    /// Step 2 for one partition: zero check, match, and the new content learnt, for the blocks whose new hash
    /// it owns.
    private func decide(_ capture: EpochCapture.View, partition number: Int) {
        let partition = partitions[number]
        let index = partition.index
        let blockSize = geometry.blockSize
        let hashes = capture.newHashes
        let ahead = Self.prefetchDistance
        let owned = partition.collect(capture.count, hashes, ahead: ahead) { self.partitionNumber(of: $0) == number }
        let items = partition.items
        partition.reserveDecisions(owned)
        let decisions = partition.decisions
        var zeroBlocks = 0
        var sharedHits = 0
        var collisions = 0
        var consulted = 0
        let sampleMask = admission.mask
        for position in 0..<owned {
            if position + ahead < owned {
                // Only blocks of the sample are looked up: the others' lines would be loaded for nothing.
                let next = hashes[Int(items[position + ahead])]
                if next & sampleMask == 0 { index.prefetch(hash: next) }
                index.prefetchEviction(ahead: ahead / 2)
            }
            let item = Int(items[position])
            let bytes = UnsafeRawPointer(capture.item(item))
            var decision = Decision(item: UInt32(item), kind: .unshared, payload: 0)
            if hashes[item] == zeroHash, CSupport_is_zero(bytes, blockSize) != 0 {
                decision.kind = .zero
                zeroBlocks += 1
            } else if hashes[item] & sampleMask == 0 {
                let hash = hashes[item]
                consulted += 1
                switch index.match(hash: hash, bytes: bytes) {
                case .copy(let source):
                    decision = Decision(item: UInt32(item), kind: .copy, payload: source.packed)
                    sharedHits += 1
                case .copyEpoch(let ordinal):
                    decision = Decision(item: UInt32(item), kind: .copyEpoch, payload: UInt64(ordinal))
                    sharedHits += 1
                case .collision:
                    decision.kind = .collision
                    collisions += 1
                case .none:
                    index.addAbsent(hash: hash, at: capture.locations[item], bytes: bytes, ordinal: item)
                }
            }
            decisions[position] = decision
        }
        partition.decisionCount = owned
        partition.zeroBlocks = zeroBlocks
        partition.sharedHits = sharedHits
        partition.collisions = collisions
        partition.consulted = consulted
    }

    /// Step 3 for one shard: the records of `items` (whole pages) into its lane.
    private func write(_ capture: EpochCapture.View, items: Range<Int>, sparse: Bool, into lane: Lane) {
        let blockSize = geometry.blockSize
        let blocksPerPageShift = geometry.blocksPerPage.trailingZeroBitCount
        let maskBytes = (geometry.blocksPerPage + 7) / 8
        let sparseCode: UInt8? = sparse ? DeltaFormat.BlockOp.sparse.rawValue : nil
        let locations = capture.locations
        lane.body.removeAll()
        lane.stats = EpochStatistics()
        lane.records = 0
        // Each partition's lists, as plain pointers (no reference counting per block), and where this shard's
        // blocks start in them.
        var lists = partitions.map { partition in
            Lists(decisions: partition.decisions, baseItems: partition.baseItems, baseBytes: partition.baseBytes,
                  baseCount: partition.baseCount,
                  nextDecision: Partition.firstIndex(in: { partition.decisions[$0].item }, count: partition.decisionCount,
                                                     from: items.lowerBound),
                  nextBase: Partition.firstIndex(in: { partition.baseItems[$0] }, count: partition.baseCount, from: items.lowerBound))
        }
        var positions = RecordPositionWriter()
        if items.lowerBound > 0 {
            let previous = locations[items.lowerBound - 1]
            positions.resume(afterRegion: previous.region, page: previous.block >> blocksPerPageShift)
        }
        var i = items.lowerBound
        while i < items.upperBound {
            let end = BlockDeltaEncoder<ContentIndex>.writeRecordHeader(
                locations, from: i, limit: items.upperBound, blocksPerPageShift: blocksPerPageShift, maskBytes: maskBytes,
                positions: &positions, into: &lane.body)
            for item in i..<end {
                let decision = lists[partitionNumber(of: capture.newHashes[item])].takeDecision()
                precondition(Int(decision.item) == item, "decisions out of step with the capture")
                // Every block's base is passed over, used or not, to keep the lists in step.
                let base = lists[partitionNumber(of: capture.oldHashes[item])].takeBase(of: item, blockSize: blockSize)
                switch decision.kind {
                case .zero:
                    lane.body.byte(DeltaFormat.BlockOp.zero.rawValue)
                case .copy:
                    let source = BlockLocation(packed: decision.payload)
                    lane.body.byte(DeltaFormat.BlockOp.copy.rawValue)
                    lane.body.uleb(source.region)
                    lane.body.uleb(source.block)
                case .copyEpoch:
                    lane.body.byte(DeltaFormat.BlockOp.copyEpoch.rawValue)
                    lane.body.uleb(decision.payload)
                case .unshared, .collision:
                    writeDifferenceOrLiteral(capture.item(item), length: blockSize, base: base, scratch: lane.scratch,
                                             differenceCode: DeltaFormat.BlockOp.diff.rawValue, sparseCode: sparseCode,
                                             literalCode: DeltaFormat.BlockOp.literal.rawValue, into: &lane.body, stats: &lane.stats)
                }
            }
            lane.records += 1
            i = end
        }
    }

    /// About `count` ranges of the capture's items, each of whole pages, in order.
    static func shards(of capture: EpochCapture.View, count: Int, blocksPerPageShift: Int) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var start = 0
        for shard in 1...max(count, 1) {
            var end = shard == count ? capture.count : max(start, capture.count * shard / count)
            while end > start, end < capture.count,
                  BlockDeltaEncoder<ContentIndex>.samePage(capture.locations[end], capture.locations[end - 1],
                                                           blocksPerPageShift: blocksPerPageShift) {
                end += 1
            }
            if end > start { ranges.append(start..<end) }
            start = end
        }
        if start < capture.count { ranges.append(start..<capture.count) }
        return ranges
    }
}
