/// Whether the `fgbi` encoder reads a changed block's previous content (its location's stored copy) to weigh
/// a difference against it, decided epoch by epoch from how often a difference won.
///
/// The stored copy lies at a random place in the index's store, so reading it is a cache miss for every
/// changed block whose location the index holds. Where locations are rewritten with unrelated content a
/// difference almost never beats the sparse or literal form: measured on this project's workloads, 7% of
/// the blocks offered their previous content sent a difference under LMDB (copy-on-write pages, nodes
/// shifted within pages) and none under the duplicate workload (pages overwritten with copies of others),
/// against 99% in the redis and memcached traces (values updated in place). So after an epoch in which
/// fewer than ``thinBelow`` of the blocks offered their previous content sent a difference, the next epoch
/// offers it only to a content-chosen sample (``sampleMask``: one block in eight), which keeps measuring;
/// at ``restoreAt`` or more, every block again. A block not offered its previous content still retires it
/// (the index stays exact); only its bytes go unread, and the block is sent in sparse or literal form.
struct DifferenceAdmission {
    /// The sample of a thinned epoch: blocks whose new hash has these bits clear. Bits apart from those of
    /// the index's sample (``IndexAdmission``) and the anchors (``AnchorPolicy``), which are the low ones.
    static let sampleMask: UInt64 = 7 << 32
    /// Below this share of differences per previous content offered, the next epoch offers it to the sample.
    static let thinBelow = 0.2
    /// At or above this share (in the sample), the next epoch offers it to every block again.
    static let restoreAt = 0.3
    /// Epochs that offered fewer previous contents than this (an eighth of it in a thinned epoch) leave the
    /// choice as it is: too few to judge by.
    static let minimumOffered = 1024

    /// The bits a block's new hash must have clear for it to be offered its previous content this epoch
    /// (stored: the encoder reads it for every block through the index).
    private(set) var mask: UInt64 = 0
    /// Previous contents offered this epoch.
    private var offered = 0

    /// Whether a block with new hash `hash` is offered its previous content this epoch.
    @inline(__always)
    func offers(_ hash: UInt64) -> Bool { hash & mask == 0 }

    /// Counts a previous content handed to the difference.
    @inline(__always)
    mutating func countOffered() { offered &+= 1 }

    /// Decides the next epoch from this one's offers, of which `won` sent a difference, and starts counting
    /// again.
    mutating func endEpoch(won: Int) {
        defer { offered = 0 }
        let thinned = mask != 0
        guard offered >= (thinned ? Self.minimumOffered / 8 : Self.minimumOffered) else { return }
        let share = Double(won) / Double(offered)
        if thinned && share >= Self.restoreAt {
            mask = 0
        } else if !thinned && share < Self.thinBelow {
            mask = Self.sampleMask
        }
    }
}
