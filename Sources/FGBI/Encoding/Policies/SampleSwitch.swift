/// The epoch-by-epoch choice two of the `fgbi` encoder's policies share (``DifferenceAdmission``,
/// ``SpliceAdmission``): every block, or a content-chosen sample of them (``mask``). After an epoch whose
/// saving per unit of work fell below ``thinBelow`` the next takes the sample; after a thinned epoch that
/// saved at least ``restoreAt`` every block again. An epoch with less work than ``minimumWork`` (its share of
/// it when thinned) is too little to judge by and leaves the choice as it is. What a unit of work is, and how
/// a thinned epoch's saving compares with a full one's, is each policy's.
struct SampleSwitch {
    /// The sample of a thinned epoch: blocks whose new hash has these bits clear.
    let sampleMask: UInt64
    /// One block in this many is in the sample.
    let sampleShare: Int
    let minimumWork: Int
    let thinBelow: Double
    let restoreAt: Double

    /// The bits a block's new hash must have clear for it to be taken this epoch.
    private(set) var mask: UInt64 = 0

    init(sampleMask: UInt64, sampleShare: Int, minimumWork: Int, thinBelow: Double, restoreAt: Double) {
        self.sampleMask = sampleMask
        self.sampleShare = sampleShare
        self.minimumWork = minimumWork
        self.thinBelow = thinBelow
        self.restoreAt = restoreAt
    }

    /// Whether this epoch takes only the sample.
    var thinned: Bool { mask != 0 }

    /// Whether an epoch that did `work` units is enough to judge by.
    func judges(work: Int) -> Bool { work >= (thinned ? minimumWork / sampleShare : minimumWork) }

    /// Decides the next epoch from this one's saving per unit of work.
    mutating func decide(savingPerWork saving: Double) {
        if thinned && saving >= restoreAt {
            mask = 0
        } else if !thinned && saving < thinBelow {
            mask = sampleMask
        }
    }
}
