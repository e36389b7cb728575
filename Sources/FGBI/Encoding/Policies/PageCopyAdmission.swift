/// Whether the `fgbi` encoder looks for page copies (``PageCopyFinder``) among every wholly rewritten page of
/// an epoch or among a sample, decided epoch by epoch from what the pages tried found.
///
/// Trying a page costs a pass over its staged bytes (its blocks hashed a first time, then its key looked up)
/// and, for a lead, a bitwise comparison with the live page: worth it where pages are copied whole (a page
/// cache filled from another file's pages, a heap compacted page by page, fork-like duplication), a waste
/// under fresh writes. So after an epoch in which fewer than ``leaveShare`` of the pages tried were copies,
/// only one page in ``sampleSpacing`` is tried (by page number, a different residue each epoch); once the
/// sample finds at least ``enterShare``, every page is tried again. A page found to be zeros, as it was before
/// or not, counts as found: the reader need not hash it. The sample's copies are sent as copies too: the choice
/// moves CPU, never exactness.
struct PageCopyAdmission {
    /// One page in this many is tried while sampling.
    static let sampleSpacing = 64
    /// Below this share of the pages tried found as copies, the next epoch samples.
    static let leaveShare = 0.02
    /// At or above this share of the sampled pages found as copies, the next epoch tries every page.
    static let enterShare = 0.05
    /// Epochs with fewer pages tried than this leave the choice as it is.
    static let minimumTried = 16

    /// Whether this epoch tries a sample only.
    private(set) var sampling = false
    private var epoch = 0

    /// Whether page `page` (of any region) is tried this epoch.
    @inline(__always)
    func tries(page: Int) -> Bool {
        !sampling || (page &+ epoch) % Self.sampleSpacing == 0
    }

    /// Decides the next epoch from this one's `tried` pages, `found` of them copies.
    mutating func update(tried: Int, found: Int) {
        epoch &+= 1
        guard tried >= Self.minimumTried else { return }
        let share = Double(found) / Double(tried)
        if sampling && share >= Self.enterShare {
            sampling = false
        } else if !sampling && share < Self.leaveShare {
            sampling = true
        }
    }
}
