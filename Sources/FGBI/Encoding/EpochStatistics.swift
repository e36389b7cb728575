/// What one epoch cost and produced, per stage.
public struct EpochStatistics: Sendable, Equatable, Codable {
    public var epoch: UInt64 = 0
    public var mode = ReplicationMode.fgbi.rawValue
    /// How the epoch was captured: `rehash` or `copy` (``CaptureStrategy``) in the `fgbi` mode, `pages` in the others.
    public var captureStrategy = ""
    /// Pages the tracker reported written.
    public var pagesWritten = 0
    /// Of those, pages the backup already held (a resynchronisation's first pass), not sent.
    public var pagesAlreadyHeld = 0
    /// Blocks rehashed to find changes (`fgbi`).
    public var blocksRehashed = 0
    /// Blocks whose content changed (`fgbi`), or pages sent (page modes).
    public var blocksDirty = 0
    /// Changed blocks sent as a reference to content the backup holds (earlier this epoch or before).
    public var sharedHits = 0
    /// Index hits whose bytes differed: hash (or key) collisions, never shared.
    public var collisions = 0
    /// Changed blocks (or pages) that became all zeros, sent as a one-byte operation.
    public var zeroBlocks = 0
    /// Blocks (or pages) sent as a run-length difference against their previous version.
    public var diffBlocks = 0
    /// Blocks sent in sparse form: a mask of their non-zero bytes, then those bytes (`fgbi` only).
    public var sparseBlocks = 0
    /// Epochs whose blocks with no usable previous content could go in sparse form (chosen by a sample,
    /// ``EngineConfiguration/compressionMinimumSaving``): 0 or 1 for one epoch.
    public var sparseChosen = 0
    /// Blocks sent as splices: pieces of content given earlier in the epoch or held by the backup, and literal bytes
    /// (``EngineConfiguration/splicing``).
    public var splicedBlocks = 0
    /// Epochs whose matcher of moved content took only a sample of the blocks because splices had not paid
    /// (``EngineConfiguration/splicing``): 0 or 1 for one epoch.
    public var spliceThinnedEpochs = 0
    /// Written pages sent whole as a copy of another page the backup holds (`fgbi`,
    /// ``EngineConfiguration/pageCopies``).
    public var pagesCopied = 0
    /// Pages with no previous content held and no copy found, encoded and stored in bulk (`fgbi` on one thread,
    /// 64-byte blocks, splicing off, in epochs on anchors only, pages with more than eight blocks looked up: a
    /// synchronisation's pages, pages written for the first time in a while).
    public var pagesEncodedFresh = 0
    /// Blocks (or pages) sent as their bytes.
    public var literalBlocks = 0
    /// Bytes of content sent as is (literals and raw pages).
    public var literalBytes = 0
    /// Entries the content index held for this backup once the epoch was encoded (`fgbi`): a level, not a count.
    public var indexEntries = 0
    /// Changed blocks looked up in the content index (`fgbi`): all of them, or a sample when the index had
    /// stopped paying (`BlockDeltaEncoder`'s admission by measured use).
    public var blocksConsulted = 0
    /// The encoded body before the general compressor.
    public var bodyBytes = 0
    /// What goes on the wire: header, compressed body, checksum.
    public var wireBytes = 0
    /// Epochs whose body was sent uncompressed because a sample of it did not compress enough
    /// (``EngineConfiguration/compressionMinimumSaving``): 0 or 1 for one epoch.
    public var bodiesStoredRaw = 0
    /// Time the guest must be paused for: collecting is the tracker's; capturing is this.
    public var captureNanoseconds: UInt64 = 0
    /// The guest's whole pause for this epoch (pause hook called to resume hook returned), and of it the
    /// time the pause hook took to stop the guest; only a ``Primary`` pauses, so zero elsewhere.
    public var pauseNanoseconds: UInt64 = 0
    public var stopNanoseconds: UInt64 = 0
    /// Index lookups, sharing and encoding (while the guest runs).
    public var encodeNanoseconds: UInt64 = 0
    /// Threads the epoch's blocks were encoded on (``EngineConfiguration/encodeThreads``; 1 for an epoch too
    /// small to split, and for the page modes).
    public var encodeThreads = 1
    /// Epochs encoded on several threads: 0 or 1 for one epoch (an engine with ``encodeThreads`` > 1 encodes an
    /// epoch on one when it is small, or when that measured faster:
    /// ``EngineConfiguration/choosesEncodeThreadsByTime``).
    public var epochsEncodedSplit = 0
    /// Of the encode time, the wait for a shared content index's lock (other guests encoding).
    public var indexWaitNanoseconds: UInt64 = 0
    /// The general compressor.
    public var compressNanoseconds: UInt64 = 0

    public init() {}

    /// Adds another epoch's counts and times to these.
    public mutating func accumulate(_ other: EpochStatistics) {
        pagesWritten += other.pagesWritten
        blocksRehashed += other.blocksRehashed
        blocksDirty += other.blocksDirty
        sharedHits += other.sharedHits
        collisions += other.collisions
        zeroBlocks += other.zeroBlocks
        diffBlocks += other.diffBlocks
        sparseBlocks += other.sparseBlocks
        sparseChosen += other.sparseChosen
        splicedBlocks += other.splicedBlocks
        pagesCopied += other.pagesCopied
        pagesEncodedFresh += other.pagesEncodedFresh
        spliceThinnedEpochs += other.spliceThinnedEpochs
        literalBlocks += other.literalBlocks
        literalBytes += other.literalBytes
        indexEntries = other.indexEntries
        blocksConsulted += other.blocksConsulted
        bodyBytes += other.bodyBytes
        wireBytes += other.wireBytes
        bodiesStoredRaw += other.bodiesStoredRaw
        captureNanoseconds += other.captureNanoseconds
        pauseNanoseconds += other.pauseNanoseconds
        stopNanoseconds += other.stopNanoseconds
        encodeNanoseconds += other.encodeNanoseconds
        indexWaitNanoseconds += other.indexWaitNanoseconds
        encodeThreads = max(encodeThreads, other.encodeThreads)
        epochsEncodedSplit += other.epochsEncodedSplit
        compressNanoseconds += other.compressNanoseconds
    }
}
