/// Anchors and copied runs: which blocks the encoder looks up in the table in an epoch on anchors only
/// (``AnchorPolicy``), and where it first looks for the next block of a copied run.
extension BlockDeltaEncoder {
    /// The location whose content a block at `location` is first compared with: the content at the distance
    /// of the last copied block's source, while within ``runHintReach`` blocks of it.
    /// Only in epochs on anchors only: when every block is looked up in the table, the table finds a run's
    /// blocks anyway, and a candidate tried first costs misses on its bit, slot number and bookkeeping
    /// whenever the run has ended (LMDB's epochs, every block looked up, encoded about a fifth slower with it).
    @inline(__always)
    func runCandidate(_ location: BlockLocation) -> BlockLocation? {
        guard anchors.anchorsOnly, location.packed &- runHint.from <= Self.runHintReach else { return nil }
        return BlockLocation(packed: location.packed &+ runHint.offset)
    }

    /// Whether a consulted block's content is looked up in the table (and entered into it when absent): always,
    /// unless this epoch looks up anchors only (``AnchorPolicy``).
    @inline(__always)
    func searchesTable(hash: UInt64, location: BlockLocation) -> Bool {
        !findsByLocation || !anchors.anchorsOnly || isAnchor(hash: hash, location: location)
    }

    /// One block in eight by content (``AnchorPolicy/mask``), and the first block of each page.
    @inline(__always)
    func isAnchor(hash: UInt64, location: BlockLocation) -> Bool {
        hash & AnchorPolicy.mask == 0 || location.block & (geometry.blocksPerPage - 1) == 0
    }
}
