/// Admission by measured use, for the `fgbi` encoders: after a large epoch whose index lookups were almost
/// never useful (fewer than ``usefulShare`` of the blocks looked up were found as copies or sent as
/// differences, as under writes of fresh content), the next epoch looks up and teaches the index only a
/// content-chosen sample of the blocks (``mask``), so the rest cost no random access to it; each further
/// useless epoch thins the sample, down to one block in 512 (``sampleShifts``: under random pages each
/// lookup and addition is a cache and TLB miss, and the one sampled block per page that 1 in 64 left still
/// cost 7-16% of the encoder's CPU on dense writes, Docs/BENCHMARKS.md). The sample's answers decide again
/// after each epoch, so a workload that starts sharing returns at once to looking up every block.
/// Retirements are never skipped and every match is still compared bitwise: the encoders' business.
struct IndexAdmission {
    /// The sample at each level: blocks whose new hash has its low `shift` bits clear (one in 2^shift),
    /// chosen by content, so a copy of a sampled block is sampled too. Level 0 looks up every block.
    static let sampleShifts = [0, 3, 6, 9]
    /// Epochs with fewer non-zero blocks looked up than this many times the sample's share (1/2^shift)
    /// leave the choice as it is: too few to judge by.
    static let minimumBlocks = 4096
    /// Below this share of useful answers per block looked up, the next epoch thins the sample.
    static let usefulShare = 0.01

    /// The current level, an index into ``sampleShifts``.
    private var level = 0

    /// The bits a block's new hash must have clear for it to be looked up this epoch (stored: the encoders
    /// read it for every block).
    private(set) var mask: UInt64 = 0

    /// Decides the next epoch from this one's `consulted` lookups, of which `useful` paid.
    mutating func update(consulted: Int, useful: Int) {
        guard consulted >= Self.minimumBlocks >> Self.sampleShifts[level] else { return }
        if Double(useful) < Double(consulted) * Self.usefulShare {
            level = min(level + 1, Self.sampleShifts.count - 1)
        } else {
            level = 0
        }
        mask = (1 << UInt64(Self.sampleShifts[level])) - 1
    }
}
