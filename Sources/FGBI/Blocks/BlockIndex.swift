/// What the `fgbi` encoder asks of a content index, for one backup: ``ContentIndex`` (an engine's own) or a
/// ``SharedContentIndex/Member`` (one guest's view of an index several guests share). The encoder is
/// generic over it, so each is compiled into its own loop with no dynamic dispatch per block.
///
/// Every operation concerns the content that one backup holds; the contract is ``ContentIndex``'s: a
/// ``ContentIndex/Match/copy(_:)`` names a location in that backup's replica only, an entry is retired
/// (``takePrevious(at:hash:)``) as soon as its location changes, and an entry added during epoch E yields
/// ``ContentIndex/Match/copyEpoch(_:)`` during E.
protocol BlockIndex: AnyObject {
    /// How block hashes become the index's keys.
    var keying: IndexKeying { get }
    /// Starts epoch `number`: entries added from now on are this epoch's.
    func beginEpoch(_ number: UInt64)
    /// Starts loading the table line `hash` will probe first.
    func prefetch(hash: UInt64)
    /// Starts loading what ``takePrevious(at:hash:)`` will probe for `location`, if the index may hold its
    /// content (a location known to hold none costs no memory access).
    func prefetchPrevious(at location: BlockLocation, hash: UInt64)
    /// Starts loading what the index keeps for `location` itself (where ``findsByLocation``: its bit and
    /// slot number), read or written when a block there is encoded through the index.
    func prefetchLocation(_ location: BlockLocation)
    /// Whether the index keeps a bit per block location, so that ``heldBits(ofPageAt:)`` answers.
    var keepsLocationBits: Bool { get }
    /// For 64 blocks per page, the page's word of per-location bits: bit k set when the index may hold the
    /// content of the page's block k (a clear bit: ``takePrevious(at:hash:)`` finds nothing there).
    func heldBits(ofPageAt location: BlockLocation) -> UInt64
    /// Starts loading the word ``heldBits(ofPageAt:)`` reads.
    func prefetchHeldBits(ofPageAt location: BlockLocation)
    /// The second stage of ``prefetchPrevious(at:hash:)``, a few blocks later, once its table line has
    /// arrived: starts loading the entry's bookkeeping, which ``takePrevious(at:hash:)`` reads next, and
    /// with `bytes` its stored copy, which a difference against it reads.
    func prefetchPreviousContent(at location: BlockLocation, hash: UInt64, bytes: Bool)
    /// The second stage of ``prefetch(hash:)``, a few blocks later, once its table line has arrived: starts
    /// loading the bookkeeping and stored copy of the entry a lookup of `hash` would compare (a hit then
    /// waits for no miss), if the line names one.
    func prefetchMatch(hash: UInt64)
    /// Starts loading what a lookup with `candidate` as its likely location reads of it: first (`content`
    /// false) its per-location bit and slot number, then, a few blocks later, the slot's bookkeeping and
    /// stored copy. Nothing for an index that does not find copies by location.
    func prefetchCandidate(_ candidate: BlockLocation, content: Bool)
    /// Starts loading what the `ahead`-th next addition will evict.
    func prefetchEviction(ahead: Int)
    /// Looks up a changed block's new content and compares it bitwise with the stored copy.
    func match(hash: UInt64, bytes: UnsafeRawPointer) -> ContentIndex.Match
    /// ``match(hash:bytes:)`` that may try `candidate`'s stored content first (an index that finds content by
    /// location, ``findsByLocation``; others ignore it) and, unless `probing` is false, the table; also where
    /// the matched content is held.
    func match(
        hash: UInt64, bytes: UnsafeRawPointer, likelyAt candidate: BlockLocation?,
        probing: Bool
    ) -> (match: ContentIndex.Match, source: BlockLocation?)
    /// Whether content can be stored without a table entry (``store(hash:at:bytes:ordinal:)``), found by its
    /// location only.
    var findsByLocation: Bool { get }
    /// Records that the backup will hold `bytes` at `location`, with no table entry (only where
    /// ``findsByLocation``).
    func store(hash: UInt64, at location: BlockLocation, bytes: UnsafeRawPointer, ordinal: Int)
    /// Retires the entry holding `location`'s content before this epoch and returns that content (valid
    /// until the next ``add(hash:at:bytes:ordinal:)``), or nil.
    func takePrevious(at location: BlockLocation, hash: UInt64) -> UnsafeRawPointer?
    /// Records that, once this epoch is applied, the backup holds `bytes` at `location`.
    func add(hash: UInt64, at location: BlockLocation, bytes: UnsafeRawPointer, ordinal: Int)
    /// ``add(hash:at:bytes:ordinal:)`` for content that ``match(hash:bytes:)`` has just answered
    /// ``ContentIndex/Match/none`` for, with no addition since: the key is known absent, so it is not
    /// looked up again.
    func addAbsent(hash: UInt64, at location: BlockLocation, bytes: UnsafeRawPointer, ordinal: Int)
    /// Entries held now (for this backup).
    var entryCount: Int { get }
    /// Stored copies held at most (for a shared index, by all its members together).
    var copyCapacity: Int { get }
    /// The slot + 1 of the stored copy that the last addition or store filled, for ``SpliceMatcher``
    /// (0: the index does not offer its stored copies to splices).
    var slotFilledLast: UInt32 { get }
    /// What a splice may name as the source of the stored copy in slot `slotPlusOne` - 1
    /// (``ContentIndex/spliceSource(_:)``); nil when it names none.
    func spliceSource(_ slotPlusOne: UInt32) -> ContentIndex.SpliceSource?
    /// The stored copy that continues a splice source across its block's edge
    /// (``ContentIndex/spliceNeighbour(of:forward:)``), if any.
    func spliceNeighbour(of source: ContentIndex.SpliceSource, forward: Bool) -> UnsafeRawPointer?
    /// Stores content the backup held before this epoch at `location` (a page it shares with the primary at a
    /// resynchronisation: ``ContentIndex/learnHeld(hash:at:bytes:)``); false once it takes no more.
    func learnHeld(hash: UInt64, at location: BlockLocation, bytes: UnsafeRawPointer) -> Bool
}

extension BlockIndex {
    /// None: an index that does not offer its stored copies to splices (``SharedContentIndex/Member``).
    var slotFilledLast: UInt32 { 0 }
    func spliceSource(_ slotPlusOne: UInt32) -> ContentIndex.SpliceSource? { nil }
    func spliceNeighbour(of source: ContentIndex.SpliceSource, forward: Bool) -> UnsafeRawPointer? { nil }
    /// Nothing: an index several guests share learns only what it is sent.
    func learnHeld(hash: UInt64, at location: BlockLocation, bytes: UnsafeRawPointer) -> Bool { false }
}

extension ContentIndex: BlockIndex {}
