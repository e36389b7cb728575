/// Whether ``ParallelBlockDeltaEncoder`` encodes an epoch it could split on its crew or on the calling thread
/// alone, chosen epoch by epoch from the measured time per block of each way.
///
/// Both ways write the same bytes (one content index, consulted in the same order), so the choice moves only
/// time. Splitting pays when the work that needs no index is most of the epoch and the threads have memory
/// bandwidth to share: on a host whose second core adds little bandwidth (the project's 2-vCPU hosts: the
/// floor's memcpy on two threads is 1.27x one), each thread's reading and writing slows as the other streams,
/// and the split's own steps (the blocks set aside, the join's copy of the body) make it slower than one
/// thread; on small epochs waking the helpers costs more than it saves. So the encoder measures: each way's
/// nanoseconds per block, averaged over its recent epochs (``weight``), and takes the split only when it is
/// faster by ``splitMargin`` (it spends the helpers' CPU too, and an epoch's time swings by about 10% from one
/// epoch to the next here, so two ways closer than that would be taken in turn on noise), trying the other
/// way again every ``exploreEvery`` epochs so that a change of workload or of load on the helpers' cores is
/// seen. An epoch of a way not yet measured takes that way, the split first; each way's first epoch is not
/// counted (its buffers grow and their memory is first touched then), and a way not measured for
/// ``exploreEvery`` epochs or more (the way not chosen, at its next try) starts its average afresh: an old
/// figure (another phase of the workload, a busy helper core) would otherwise hold that way back for many
/// epochs after.
struct ParallelEncodeChoice {
    enum Way: Equatable {
        case split
        case alone
    }

    /// Epochs (that could be split) between tries of the way not chosen.
    static let exploreEvery = 16
    /// Weight of the newest epoch in a way's average time per block.
    static let weight = 0.25
    /// How much less time per block the split must take to be chosen.
    static let splitMargin = 0.10

    /// Whether the choice is measured; otherwise every epoch that can be split is (tests of the helpers).
    let measures: Bool
    /// Each way's average nanoseconds per block, once measured.
    private(set) var splitNanosecondsPerBlock: Double?
    private(set) var aloneNanosecondsPerBlock: Double?
    /// Epochs recorded, and the number of each way's last.
    private var recorded = 0
    private var splitLast: Int?
    private var aloneLast: Int?
    private var sinceTried = 0

    init(measures: Bool) { self.measures = measures }

    /// The way for the next epoch that could be split.
    mutating func next() -> Way {
        guard measures else { return .split }
        guard let split = splitNanosecondsPerBlock else { return .split }
        guard let alone = aloneNanosecondsPerBlock else { return .alone }
        let faster: Way = split < alone * (1 - Self.splitMargin) ? .split : .alone
        sinceTried += 1
        guard sinceTried >= Self.exploreEvery else { return faster }
        sinceTried = 0
        return faster == .split ? .alone : .split
    }

    /// Records that an epoch of `blocks` blocks took `nanoseconds` the `way` it went.
    mutating func record(_ way: Way, nanoseconds: UInt64, blocks: Int) {
        guard measures, blocks > 0 else { return }
        let perBlock = Double(nanoseconds) / Double(blocks)
        recorded += 1
        switch way {
        case .split:
            splitNanosecondsPerBlock = average(splitNanosecondsPerBlock, perBlock, last: splitLast)
            splitLast = recorded
        case .alone:
            aloneNanosecondsPerBlock = average(aloneNanosecondsPerBlock, perBlock, last: aloneLast)
            aloneLast = recorded
        }
    }

    /// A way's average after an epoch of `new` nanoseconds per block (its last recorded epoch `last`): none
    /// after its first epoch, `new` alone after a gap of ``exploreEvery`` epochs or more, else weighted in.
    private func average(_ old: Double?, _ new: Double, last: Int?) -> Double? {
        guard let last else { return nil }
        guard let old, recorded - last < Self.exploreEvery else { return new }
        return old + Self.weight * (new - old)
    }
}
