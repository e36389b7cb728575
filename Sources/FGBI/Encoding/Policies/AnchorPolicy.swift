/// Whether the `fgbi` encoder looks up every block in the content index's table or only anchors, decided
/// epoch by epoch from what the anchors find, for an index that finds copies by location
/// (``BlockIndex/findsByLocation``).
///
/// *Anchors* are the blocks whose new hash has its low bits clear (``mask``: one in eight, chosen by
/// content, so identical content is chosen alike) and the first block of each page. With anchors only, the
/// other blocks are stored by location with no table entry, and a copy of them is found only when it
/// continues a copied run (the block at the distance of the last copy's source): copied pages and objects
/// cost one table access per anchor instead of one per block. What that loses is sharing of *isolated*
/// blocks, equal to content elsewhere but not in a run (the redis and memcached traces have many).
///
/// The anchors measure it in either mode: they are looked up and entered in both, and they are a sample of
/// the content chosen by hash, so the share of anchor lookups that find an isolated copy (found in the
/// table, and the next block is not found as a copy) estimates how many of the other blocks would find
/// one. When that estimate is over ``leaveShare`` of the blocks looked at, the next epoch looks up every
/// block; under ``enterShare``, anchors only. Every match is bitwise either way: the choice moves bytes and
/// CPU, never exactness. Encoders start looking up every block (the bytes of an index without it).
struct AnchorPolicy {
    /// The low bits of a block's new hash that make it an anchor when clear.
    static let mask: UInt64 = 7
    /// Estimated isolated copies, as a share of the blocks looked at, above which every block is looked up.
    /// Chosen from measurements (Docs/BENCHMARKS.md, "The anchor policy's thresholds"): the real programs'
    /// traces (redis, memcached) sit above it and keep their bytes; copied pages (about 0.5-0.9%, from content
    /// the index holds in pieces) stay on anchors, where 0.4% sent them back to looking up every block.
    static let leaveShare = 0.01
    /// ... and below which anchors only.
    static let enterShare = 0.005
    /// Epochs with fewer anchor lookups than this leave the choice as it is: too few to judge by.
    static let minimumAnchors = 128

    /// Whether this epoch looks up only anchors.
    private(set) var anchorsOnly = false

    private var consulted = 0
    private var anchorLookups = 0
    private var isolatedHits = 0
    /// The location of the last anchor found in the table, until the next block says whether a run goes on.
    private var openHit: UInt64?

    /// Counts a block looked at (in the sample of ``IndexAdmission``, not zero): `anchor` whether it is
    /// one, `fromTable` whether it was found as a copy through the table, `continuesRun` whether it was found
    /// as a copy at the distance of the last copy's source (`location`: where it is). An anchor found in the
    /// table is isolated unless the next block is found as a copy too (by its run, or through the table
    /// where the run's source changes).
    @inline(__always)
    mutating func count(location: UInt64, anchor: Bool, fromTable: Bool, continuesRun: Bool) {
        consulted += 1
        if let open = openHit {
            if !((continuesRun || fromTable) && location == open &+ 1) { isolatedHits += 1 }
            openHit = nil
        }
        guard anchor else { return }
        anchorLookups += 1
        if fromTable { openHit = location }
    }

    /// Counts `blocks` blocks looked at in a row, `anchors` of them anchors, none found as a copy: ``count(location:
    /// anchor:fromTable:continuesRun:)`` for each (``BlockDeltaEncoder/encodeFresh``).
    @inline(__always)
    mutating func countUnfound(blocks: Int, anchors: Int) {
        guard blocks > 0 else { return }
        consulted += blocks
        anchorLookups += anchors
        if openHit != nil { isolatedHits += 1 }
        openHit = nil
    }

    /// Decides the next epoch from this one's counts, and starts counting again.
    mutating func endEpoch() {
        if openHit != nil { isolatedHits += 1 }
        defer { (consulted, anchorLookups, isolatedHits, openHit) = (0, 0, 0, nil) }
        guard anchorLookups >= Self.minimumAnchors, consulted > 0 else { return }
        let estimated = Double(isolatedHits) / Double(anchorLookups) * Double(consulted - anchorLookups)
        let share = estimated / Double(consulted)
        if anchorsOnly && share > Self.leaveShare {
            anchorsOnly = false
        } else if !anchorsOnly && share < Self.enterShare {
            anchorsOnly = true
        }
    }
}
