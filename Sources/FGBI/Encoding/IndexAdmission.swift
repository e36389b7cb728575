/// Admission by measured use, for the `fgbi` encoders: after a large epoch whose index lookups were almost
/// never useful (fewer than ``usefulShare`` of the blocks looked up were found as copies or sent as
/// differences, as under writes of fresh content), the next epoch looks up and teaches the index only a
/// content-chosen sample of the blocks (``mask``), so the rest cost no random access to it. The sample's
/// answers decide again after each epoch, so a workload that starts sharing returns to looking up every
/// block. Retirements are never skipped and every match is still compared bitwise: the encoders' business.
struct IndexAdmission {
    /// Whether this epoch looks up only the sample.
    private(set) var sampling = false
    /// Blocks whose new hash has these bits clear are the sample: one in eight (2^sampleShift), chosen by
    /// content, so a copy of a sampled block is sampled too.
    static let sampleShift = 3
    static let sampleMask: UInt64 = (1 << UInt64(sampleShift)) - 1
    /// Epochs with fewer non-zero blocks looked up (an eighth of this while sampling, as only the sample is
    /// looked up) leave the choice as it is: too few to judge by.
    static let minimumBlocks = 4096
    /// Below this share of useful answers per block looked up, the next epoch samples.
    static let usefulShare = 0.01

    /// The bits a block's new hash must have clear for it to be looked up this epoch.
    var mask: UInt64 { sampling ? Self.sampleMask : 0 }

    /// Decides the next epoch from this one's `consulted` lookups, of which `useful` paid.
    mutating func update(consulted: Int, useful: Int) {
        guard consulted >= Self.minimumBlocks >> (sampling ? Self.sampleShift : 0) else { return }
        sampling = Double(useful) < Double(consulted) * Self.usefulShare
    }
}
