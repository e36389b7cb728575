/// Whether the `fgbi` encoder reads a changed block's previous content (its location's stored copy) to weigh
/// a difference against it, decided epoch by epoch from the bytes the differences saved.
///
/// The stored copy lies at a random place in the index's store, so reading it is a cache miss for every
/// changed block whose location the index holds. Where locations are rewritten with unrelated content a
/// difference seldom beats the sparse or literal form, and by little when it does. Measured per previous
/// content offered (bytes saved over the form the block takes without it, per epoch): LMDB 0.4-2.5 bytes
/// (copy-on-write pages, nodes shifted within pages), the duplicate workload none (pages overwritten with
/// copies of others), against 3.9-9.1 in the demo's guest and 36-59 in the redis and memcached traces
/// (values updated in place). So after an epoch whose differences saved fewer than ``minimumSavingPerOffer``
/// bytes per previous content offered, the next epoch offers it only to a content-chosen sample
/// (``sampleMask``: one block in eight), which keeps measuring: at ``restoreSavingPerOffer`` or more, every
/// block again. A block not offered its previous content still retires it (the index stays exact); only its
/// bytes go unread, and the block is sent in sparse or literal form.
struct DifferenceAdmission {
    /// The sample of a thinned epoch: blocks whose new hash has these bits clear. Bits apart from those of
    /// the index's sample (``IndexAdmission``) and the anchors (``AnchorPolicy``), which are the low ones.
    static let sampleMask: UInt64 = 7 << 32
    /// Below this many bytes saved per previous content offered, the next epoch offers it to the sample.
    static let minimumSavingPerOffer = 3.0
    /// At or above this many (in the sample), the next epoch offers it to every block again.
    static let restoreSavingPerOffer = 3.5
    /// Epochs that offered fewer previous contents than this (an eighth of it in a thinned epoch) leave the
    /// choice as it is: too few to judge by.
    static let minimumOffered = 1024

    /// Every block or the sample, epoch by epoch.
    private var sample = SampleSwitch(
        sampleMask: sampleMask, sampleShare: 8, minimumWork: minimumOffered, thinBelow: minimumSavingPerOffer,
        restoreAt: restoreSavingPerOffer)

    /// The bits a block's new hash must have clear for it to be offered its previous content this epoch
    /// (stored: the encoder reads it for every block through the index).
    var mask: UInt64 { sample.mask }
    /// Previous contents offered this epoch, and the bytes their differences saved.
    private var offered = 0
    private var saved = 0

    /// Whether a block with new hash `hash` is offered its previous content this epoch.
    @inline(__always)
    func offers(_ hash: UInt64) -> Bool { hash & mask == 0 }

    /// Counts a previous content handed to the difference.
    @inline(__always)
    mutating func countOffered() { offered &+= 1 }

    /// Counts the bytes a difference saved over the form its block takes without a base.
    @inline(__always)
    mutating func countSaving(_ bytes: Int) { saved &+= max(bytes, 0) }

    /// Decides the next epoch from this one's offers and savings, and starts counting again.
    mutating func endEpoch() {
        defer { (offered, saved) = (0, 0) }
        guard sample.judges(work: offered) else { return }
        sample.decide(savingPerWork: Double(saved) / Double(offered))
    }

    /// The length of the form a block of `length` bytes at `bytes` takes without a base, operation included:
    /// the sparse form (a mask of a bit per byte, then the non-zero bytes) where allowed and shorter, else the
    /// bytes. Counts the non-zero bytes eight at a time.
    static func lengthWithoutBase(_ bytes: UnsafeRawPointer, length: Int, sparse: Bool) -> Int {
        guard sparse else { return 1 + length }
        var nonZero = 0
        for word in 0..<(length / 8) {
            let value = bytes.loadUnaligned(fromByteOffset: word * 8, as: UInt64.self)
            // A byte's top bit set when the byte is not zero: its low seven bits plus 0x7F carry into it.
            let low7 = value & 0x7F7F_7F7F_7F7F_7F7F
            nonZero += (((low7 &+ 0x7F7F_7F7F_7F7F_7F7F) | value) & 0x8080_8080_8080_8080).nonzeroBitCount
        }
        return 1 + min(length, length / 8 + nonZero)
    }
}
