import CSupport

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
    /// Nanoseconds the guest stayed paused for this epoch (pause hook called to resume hook returned), and
    /// of them the time the pause hook took to stop the guest; set by ``Primary``, zero elsewhere.
    public internal(set) var pauseNanoseconds: UInt64 = 0
    public internal(set) var stopNanoseconds: UInt64 = 0
    /// The number of captured items (blocks or pages).
    public private(set) var count = 0
    /// For the `fgbi` mode: the items are whole written pages, to be rehashed after the guest resumes
    /// (``CaptureStrategy/copyPages``), not changed blocks.
    public internal(set) var holdsPages = false
    /// A step of a synchronisation (pre-copy round), taken while the guest ran: it brings the backup closer
    /// but is no consistent epoch, so it goes out as a `precopy` frame and is never acknowledged.
    public internal(set) var isPrecopy = false
    /// A pre-copy step of the session's first pass (every page once, less those a resynchronised backup
    /// already holds), not of a later round.
    public internal(set) var isFirstPass = false
    /// In a first pass (``isFirstPass``): how many of the pass's pages are captured after this capture's, which
    /// decides whether the encoders learn from it (their stores would keep its content past the pass); nil
    /// outside a first pass, in a resynchronisation's, or when the engine learns from all of it
    /// (``EngineConfiguration/learnsWholeFirstPass``). Shadow encoders of the capture follow the capturing engine.
    var firstPassPagesAfter: Int?
    /// The items are the changed blocks the `fgbi` rehash strategy found, not whole pages.
    public internal(set) var holdsBlocks = false
    /// The pages are in the first pass of a session whose backup holds content: each page whose hash equals
    /// the backup's (`ReplicaSummary`) is already there and is not sent.
    var comparesWithBaseline = false
    /// Pages left out because the backup already holds them (a resynchronisation's first pass).
    public internal(set) var pagesHeld = 0
    /// Whether whole pages are copied in with streaming stores (a capture larger than the engine's
    /// ``EngineConfiguration/cachedCaptureBytes``) or plain ones, which leave them in the caches for the
    /// encoder that reads them next (``copyItem(to:from:byteCount:streaming:)``). Set by the engine per capture.
    var streamsPages = true
    /// Per region, the collection count of its ``WrittenPageWitness`` when this epoch was captured (empty when
    /// the engine has none): what the encoder's page copies ask the witnesses about.
    var witnessCollections: [Int] = []
    /// Captured pages (as region and page index) whose content proved unchanged since the previous epoch:
    /// captured, yet not written (with hot pages, ``HotPagePolicy``). Filled, when ``recordsUnchangedPages``,
    /// as the pages are rehashed: during the capture, or for a capture of whole pages when it is encoded.
    /// Kept across epochs for its storage.
    package internal(set) var unchangedPages: [BlockLocation] = []
    /// Whether the engine fills `unchangedPages`: set by whoever listens (a primary whose tracker has hot
    /// pages); kept across epochs.
    public var recordsUnchangedPages = false

    /// Per item, in increasing location order: where it is, its hash before and after (`fgbi` only), and
    /// its bytes at `arena + index * itemSize`. Raw storage, so the hot loops pay no checks per access.
    private(set) var locations: UnsafeMutablePointer<BlockLocation>
    private(set) var oldHashes: UnsafeMutablePointer<UInt64>
    private(set) var newHashes: UnsafeMutablePointer<UInt64>
    private(set) var arena: UnsafeMutableRawPointer
    /// Bytes per item: a block, or a page when the items are whole pages.
    public private(set) var itemSize = 64
    private var capacity: Int
    private var arenaCapacity: Int
    /// The arena's first bytes known to be faulted in: written by a capture or touched by ``reserve``, as of
    /// the last ``reserve`` or ``reset(epoch:itemSize:)`` (``faultedBytes`` counts the items held since).
    private var touchedBytes = 0
    /// The arena's first bytes known to be faulted in now: the items held are written.
    private var faultedBytes: Int { max(touchedBytes, count * itemSize) }

    public init() {
        capacity = 1024
        arenaCapacity = 1 << 20
        locations = .allocate(capacity: capacity)
        oldHashes = .allocate(capacity: capacity)
        newHashes = .allocate(capacity: capacity)
        arena = .allocate(byteCount: arenaCapacity, alignment: 64)
    }

    deinit {
        locations.deallocate()
        oldHashes.deallocate()
        newHashes.deallocate()
        arena.deallocate()
    }

    /// Grows the capture, if it must, to hold `items` items of `itemSize` bytes without reallocating, and
    /// touches the new memory, so no capture pays for growing or first-touch page faults (about 0.4 GB/s)
    /// while the guest is paused. Call it while the guest runs: at set-up, or when a capture is released.
    public func reserve(items: Int, itemSize: Int) {
        reserve(items: items, arenaBytes: items * itemSize)
    }

    /// ``reserve(items:itemSize:)`` by index entries and arena bytes.
    func reserve(items: Int, arenaBytes: Int) {
        let oldCapacity = capacity
        while capacity < items { growIndex() }
        for index in oldCapacity..<capacity {
            locations[index] = BlockLocation(packed: 0)
            oldHashes[index] = 0
            newHashes[index] = 0
        }
        while arenaCapacity < arenaBytes { growArena() }
        touchedBytes = faultedBytes // the items held are written: keep them
        if touchedBytes < arenaCapacity {
            (arena + touchedBytes).initializeMemory(as: UInt8.self, repeating: 0, count: arenaCapacity - touchedBytes)
            touchedBytes = arenaCapacity
        }
    }

    /// Bytes of arena this capture's items use.
    var arenaBytesUsed: Int { count * itemSize }

    /// Whether the capture can hold `pages` whole pages of `pageSize` bytes without growing and in memory
    /// already faulted in (``reserve(items:itemSize:)``, or earlier captures): staging them costs no more than
    /// the copy.
    func canStage(pages: Int, pageSize: Int) -> Bool {
        capacity >= pages && faultedBytes >= pages * pageSize
    }

    /// Bytes this capture holds: its arena and the locations and hashes it has room for.
    var metadataBytes: Int { arenaCapacity + capacity * (MemoryLayout<BlockLocation>.stride + 16) }

    func reset(epoch: UInt64, itemSize: Int) {
        precondition(itemSize > 0 && itemSize <= 4096)
        touchedBytes = faultedBytes
        self.epoch = epoch
        self.itemSize = itemSize
        holdsPages = false
        isPrecopy = false
        isFirstPass = false
        firstPassPagesAfter = nil
        holdsBlocks = false
        comparesWithBaseline = false
        streamsPages = true
        pagesHeld = 0
        witnessCollections.removeAll(keepingCapacity: true)
        unchangedPages.removeAll(keepingCapacity: true)
        pagesWritten = 0
        blocksRehashed = 0
        pauseNanoseconds = 0
        stopNanoseconds = 0
        count = 0
    }

    /// The capture's storage as plain values, for hot loops: reading a class's `var`s costs an exclusivity
    /// check per access, a view's `let`s none. Valid until the capture next grows.
    struct View {
        let locations: UnsafeMutablePointer<BlockLocation>
        let oldHashes: UnsafeMutablePointer<UInt64>
        let newHashes: UnsafeMutablePointer<UInt64>
        let arena: UnsafeMutableRawPointer
        let itemSize: Int
        let count: Int
        /// The number, among the blocks the encoder takes this epoch, of the first item (a
        /// ``StagedPageReader``'s view of one page starts where the pages before it ended).
        let firstOrdinal: Int

        @inline(__always)
        func item(_ index: Int) -> UnsafeMutableRawPointer { arena + index * itemSize }
    }

    var view: View {
        View(
            locations: locations, oldHashes: oldHashes, newHashes: newHashes, arena: arena, itemSize: itemSize,
            count: count,
            firstOrdinal: 0)
    }

    /// Bytes of item `index`.
    @inline(__always)
    func item(_ index: Int) -> UnsafeMutableRawPointer { arena + index * itemSize }

    /// Makes the capture hold `total` items whose contents ``place(_:_:from:)`` fills (from several threads,
    /// each its own indices).
    func prepare(count total: Int) {
        while capacity < total { growIndex() }
        while arenaCapacity < total * itemSize { growArena() }
        count = total
    }

    /// Fills item `index` of a prepared capture (``copyItem(to:from:byteCount:streaming:)``): the thread must
    /// call ``finishStores()`` before others read the capture.
    @inline(__always)
    func place(_ index: Int, _ location: BlockLocation, from source: UnsafeRawPointer) {
        locations[index] = location
        oldHashes[index] = 0
        newHashes[index] = 0
        Self.copyItem(to: arena + index * itemSize, from: source, byteCount: itemSize, streaming: streamsPages)
    }

    /// Copies an item into the arena: pages, when `streaming`, with non-temporal stores, which neither read
    /// the arena's lines first nor fill the caches with them (a capture larger than the caches would only
    /// evict what the guest and the encoder use, the guest's working set first on a capture on its own core);
    /// blocks, and pages of a capture that fits in the caches, with a plain copy, so that the encoder reads
    /// them from there, not from memory (a demo epoch of 700 pages: 10-12% of the `fgbi` encode).
    @inline(__always)
    static func copyItem(
        to destination: UnsafeMutableRawPointer, from source: UnsafeRawPointer, byteCount: Int, streaming: Bool
    ) {
        if streaming && byteCount >= 4096 {
            CSupport_copy_streaming(destination, source, byteCount)
        } else {
            destination.copyMemory(from: source, byteCount: byteCount)
        }
    }

    /// Orders this thread's streaming stores into the capture before anything it does next (sfence): call
    /// it when done placing or appending pages, before the capture is handed to another thread.
    @inline(__always)
    static func finishStores() { CSupport_copy_streaming_fence() }

    /// Appends every item of `other` (same item size), in order.
    func append(contentsOf other: EpochCapture) {
        let total = count + other.count
        while capacity < total { growIndex() }
        while arenaCapacity < total * itemSize { growArena() }
        (locations + count).update(from: other.locations, count: other.count)
        (oldHashes + count).update(from: other.oldHashes, count: other.count)
        (newHashes + count).update(from: other.newHashes, count: other.count)
        (arena + count * itemSize).copyMemory(from: other.arena, byteCount: other.count * itemSize)
        count = total
        pagesWritten += other.pagesWritten
        blocksRehashed += other.blocksRehashed
        pagesHeld += other.pagesHeld
        unchangedPages += other.unchangedPages
    }

    /// Appends an item copied from `source`, with its hashes (zero for the page modes).
    @inline(__always)
    func append(_ location: BlockLocation, from source: UnsafeRawPointer, oldHash: UInt64 = 0, newHash: UInt64 = 0) {
        if count == capacity { growIndex() }
        if (count + 1) * itemSize > arenaCapacity { growArena() }
        locations[count] = location
        oldHashes[count] = oldHash
        newHashes[count] = newHash
        Self.copyItem(to: arena + count * itemSize, from: source, byteCount: itemSize, streaming: streamsPages)
        count += 1
    }

    /// Drops the last item appended.
    func dropLast() {
        precondition(count > 0)
        count -= 1
    }

    private func growIndex() {
        let bigger = capacity * 2
        func move<T>(_ old: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<T> {
            let new = UnsafeMutablePointer<T>.allocate(capacity: bigger)
            new.moveInitialize(from: old, count: count)
            old.deallocate()
            return new
        }
        locations = move(locations)
        oldHashes = move(oldHashes)
        newHashes = move(newHashes)
        capacity = bigger
    }

    private func growArena() {
        let bigger = arenaCapacity * 2
        let biggerArena = UnsafeMutableRawPointer.allocate(byteCount: bigger, alignment: 64)
        biggerArena.copyMemory(from: arena, byteCount: count * itemSize)
        touchedBytes = count * itemSize
        arena.deallocate()
        arena = biggerArena
        arenaCapacity = bigger
    }
}
