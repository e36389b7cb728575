/// Admission by measured use, for the `fgbi` encoders: after ``patience`` large epochs in a row whose index
/// lookups were almost never useful (fewer than ``usefulShare`` of the blocks looked up were found as copies
/// or sent as differences, as under writes of fresh content), the next epoch looks up and teaches the index
/// only a content-chosen sample of the blocks (``mask``), so the rest cost no random access to it; each
/// further useless epoch thins the sample, down to one block in 512 (``sampleShifts``: under random pages
/// each lookup and addition is a cache and TLB miss, and the one sampled block per page that 1 in 64 left
/// still cost 7-16% of the encoder's CPU on dense writes, Docs/BENCHMARKS.md). The sample's answers decide
/// again after each epoch, so a workload that starts sharing returns at once to looking up every block.
/// Retirements are never skipped and every match is still compared bitwise: the encoders' business.
///
/// Content a sampled epoch does not teach leaves no stored copy at its location, so a later small change
/// there goes as a literal instead of a difference: a burst of fresh content (redis loading values that it
/// then updates in place) must not start the sample, which is why one useless epoch is not enough.
struct IndexAdmission {
    /// The sample at each level: blocks whose new hash has its low `shift` bits clear (one in 2^shift),
    /// chosen by content, so a copy of a sampled block is sampled too. Level 0 looks up every block.
    static let sampleShifts = [0, 3, 6, 9]
    /// Epochs with fewer non-zero blocks looked up than this many times the sample's share (1/2^shift)
    /// leave the choice as it is: too few to judge by.
    static let minimumBlocks = 4096
    /// Below this share of useful answers per block looked up, an epoch is useless.
    static let usefulShare = 0.01
    /// Useless large epochs in a row, looking up every block, before the sample starts. On a redis trace two
    /// useless epochs (its values loaded) started it and cost 17% more bytes for the rest of the run, the
    /// values' later updates finding no previous copy to differ from (Docs/BENCHMARKS.md).
    static let patience = 3

    /// The current level, an index into ``sampleShifts``.
    private var level = 0
    /// Useless large epochs in a row at level 0.
    private var uselessEpochs = 0

    /// The bits a block's new hash must have clear for it to be looked up this epoch (stored: the encoders
    /// read it for every block).
    private(set) var mask: UInt64 = 0

    /// Decides the next epoch from this one's `consulted` lookups, of which `useful` paid.
    mutating func update(consulted: Int, useful: Int) {
        guard consulted >= Self.minimumBlocks >> Self.sampleShifts[level] else { return }
        if Double(useful) < Double(consulted) * Self.usefulShare {
            uselessEpochs += 1
            if level > 0 || uselessEpochs >= Self.patience { level = min(level + 1, Self.sampleShifts.count - 1) }
        } else {
            level = 0
            uselessEpochs = 0
        }
        mask = (1 << UInt64(Self.sampleShifts[level])) - 1
    }
}
