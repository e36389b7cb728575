/// Which blocks the `fgbi` encoder's matcher of moved content (``SpliceMatcher``) takes this epoch, decided
/// epoch by epoch from the bytes its splices saved on the wire, so that memory rewritten in place pays little
/// for it.
///
/// The matcher's cost is per block: every block the index stores has its anchors found and entered into the
/// table (about 7 random accesses), every block whose form is long has them looked up. Where content does not
/// move it finds little, and what it finds a compressor would mostly have found too: per block recorded or
/// looked up, before compression, redis's splices saved 0.4 bytes and memcached's 3, against 8 for LMDB and 3.5
/// for sqlite, whose bodies the compressor leaves as they are (Docs/BENCHMARKS.md). So the saving is weighed
/// by the share of the last body that the compressor kept (``noteStoredShare(_:)``), and after an epoch that
/// saved under ``minimumSaving`` bytes per operation the next is *thinned*: only blocks whose new hash has the
/// ``sampleMask`` bits clear (one in 16, chosen by content) are recorded and looked up, which keeps measuring.
/// A match then needs both its block and its source in the sample, so a thinned epoch finds a sixteenth of
/// what a full one would per operation: its saving is scaled up by 16 before it is judged, against
/// ``restoreSaving`` (at or above it, the next epoch takes every block again).
struct SpliceAdmission {
    /// The sample of a thinned epoch: blocks whose new hash has these bits clear. Bits apart from those of
    /// the index's sample and the anchors (the low ones) and of the differences' sample (32-34).
    static let sampleMask: UInt64 = 15 << 40
    /// One block in this many is in the sample.
    static let sampleShare = 16.0
    /// Below this many bytes saved on the wire per block recorded or looked up, the next epoch is thinned.
    static let minimumSaving = 1.0
    /// At or above this many (a thinned epoch's saving scaled by ``sampleShare``), it takes every block again.
    static let restoreSaving = 1.5
    /// Epochs with fewer operations than this (a sixteenth of it in a thinned epoch) leave the choice as it
    /// is: too few to judge by.
    static let minimumOperations = 4096

    /// Every block or the sample, epoch by epoch.
    private var sample = SampleSwitch(
        sampleMask: sampleMask, sampleShare: Int(sampleShare), minimumWork: minimumOperations,
        thinBelow: minimumSaving, restoreAt: restoreSaving)

    /// The bits a block's new hash must have clear for the matcher to take it this epoch.
    var mask: UInt64 { sample.mask }
    /// Blocks recorded or looked up this epoch, and the bytes the splices saved (before compression).
    private var operations = 0
    private var saved = 0
    /// The share of its bytes the last delta body kept through the compressor (1: stored as it is).
    private var storedShare = 1.0

    /// Whether this epoch takes only the sample.
    var thinned: Bool { sample.thinned }

    /// Whether the matcher takes a block with new hash `hash` this epoch.
    @inline(__always)
    func admits(_ hash: UInt64) -> Bool { hash & mask == 0 }

    /// Counts a block recorded.
    @inline(__always)
    mutating func countRecord() { operations &+= 1 }

    /// Counts a block looked up, and the bytes its splice saved (0: none).
    @inline(__always)
    mutating func countLookup(saving: Int) {
        operations &+= 1
        saved &+= saving
    }

    /// Notes the share of its bytes (stored over body) that the last delta body kept through the compressor.
    mutating func noteStoredShare(_ share: Double) { storedShare = min(max(share, 0), 1) }

    /// Decides the next epoch from this one's operations and savings, and starts counting again.
    mutating func endEpoch() {
        defer { (operations, saved) = (0, 0) }
        guard sample.judges(work: operations) else { return }
        sample.decide(
            savingPerWork: Double(saved) * storedShare / Double(operations) * (thinned ? Self.sampleShare : 1))
    }
}
