/// The sample of lookups, and a first pass's captures the index does not learn from (``FirstPassLearning``).
extension BlockDeltaEncoder {
    /// The sample of this epoch's lookups (``IndexAdmission``), until the epoch is encoded: blocks whose new
    /// hash has these bits clear. In a first-pass capture the index does not learn from, none (all bits set:
    /// only a hash of 0 would be in it, and looked up as usual).
    var sampleMask: UInt64 { learnsCapture ? admission.mask : .max }

    /// Decides whether the index learns from `capture` (``FirstPassLearning``), until ``endCapture(_:stats:)``;
    /// returns the sample of its lookups (``sampleMask``).
    @discardableResult
    func beginCapture(_ capture: EpochCapture) -> UInt64 {
        learnsCapture = firstPass.learns(pagesAfter: capture.firstPassPagesAfter, capacity: index.copyCapacity)
        return sampleMask
    }

    /// Counts `capture`, encoded with `stats`, towards its first pass (its non-zero blocks: the copies it led
    /// to, or would have); from now on the index learns from every capture until the next is begun.
    func endCapture(_ capture: EpochCapture, stats: EpochStatistics) {
        learnsCapture = true
        guard capture.firstPassPagesAfter != nil else { return }
        firstPass.record(pages: capture.pagesWritten, copies: max(stats.blocksDirty - stats.zeroBlocks, 0))
    }
}
