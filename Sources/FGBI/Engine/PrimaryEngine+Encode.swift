import Synchronization

/// The engine's second stage, run while the guest runs: a capture encoded into an epoch delta, for this
/// engine or as a shadow of another.
extension PrimaryEngine {
    /// The stage that may run with the guest running: encodes a capture into an epoch delta (the bytes
    /// to send) with its statistics. Captures must be encoded in the order they were made.
    public func encode(_ capture: EpochCapture) throws -> (delta: [UInt8], statistics: EpochStatistics) {
        let statistics = try encode(capture, shadow: false)
        return (output.array, statistics)
    }

    /// Encodes a capture as ``encode(_:)`` does, handing `deliver` the delta in the engine's own buffer
    /// instead of a copy: valid only during the call, overwritten by the next encode. What the primary's
    /// sender uses, so an epoch of tens of MiB costs no fresh allocation (its first touch runs at ~0.4 GB/s
    /// here) and no copy.
    public func encode<Result>(
        _ capture: EpochCapture,
        deliver: (_ delta: UnsafeRawBufferPointer, _ statistics: EpochStatistics) throws -> Result
    ) throws -> Result {
        let statistics = try encode(capture, shadow: false)
        return try deliver(output.bytes, statistics)
    }

    /// Encodes another engine's capture of whole pages (its pre-copy steps, its copy-strategy epochs, or any
    /// capture of a page mode) as this engine's mode would have: what the demo and benchmarks use to show
    /// what each mode would send for the very same epochs. A shadow engine must see every capture of the
    /// session in order, and never captures itself.
    ///
    /// - Throws: ``FGBIError/invalidArgument(_:)`` when the capture holds blocks, not pages.
    public func encodeShadow(of capture: EpochCapture) throws -> (delta: [UInt8], statistics: EpochStatistics) {
        guard capture.itemSize == geometry.pageSize, !capture.holdsBlocks else {
            throw FGBIError.invalidArgument("a shadow encoder needs a capture of whole pages")
        }
        let statistics = try encode(capture, shadow: true)
        return (output.array, statistics)
    }

    /// Encodes `capture` into ``output``; returns its statistics.
    func encode(_ capture: EpochCapture, shadow: Bool) throws -> EpochStatistics {
        let start = MonotonicClock.nanoseconds()
        // A capture of whole pages for the `fgbi` mode (or a shadow encode of any capture): rehashed against the
        // block table as it is encoded. Only this engine's own captures are pending, and list unchanged pages
        // (a shadow encode must not report its host engine's pages twice).
        let staged = shadow ? !tables.isEmpty : capture.holdsPages
        let pending = staged && !shadow
        defer { if pending { pendingPageCaptures.subtract(1, ordering: .releasing) } }
        let recordUnchanged = pending && capture.recordsUnchangedPages && !capture.isPrecopy
        var stats = EpochStatistics()
        stats.epoch = capture.epoch
        stats.captureStrategy =
            tables.isEmpty ? "pages" : staged ? CaptureStrategy.copyPages.rawValue : CaptureStrategy.rehash.rawValue
        stats.mode = configuration.mode.rawValue
        stats.pagesWritten = capture.pagesWritten
        stats.pagesAlreadyHeld = capture.pagesHeld
        stats.blocksRehashed = staged ? capture.count * geometry.blocksPerPage : capture.blocksRehashed
        stats.captureNanoseconds = capture.captureNanoseconds
        stats.pauseNanoseconds = capture.pauseNanoseconds
        stats.stopNanoseconds = capture.stopNanoseconds
        DeltaAssembler.start(&output)
        let records: Int
        if let blockEncoder {
            // Sampled from what was captured: for staged pages, the pages whole.
            let sparse = try literalForms.prefersSparse(capture.view)
            stats.sparseChosen = sparse ? 1 : 0
            let encoded = blockEncoder.encode(
                capture, staged: staged, recordUnchanged: recordUnchanged, sparse: sparse,
                into: &output, stats: &stats)
            records = encoded.records
            stats.pagesAlreadyHeld = encoded.pagesHeld
        } else {
            records = pageEncoder!.encode(capture, into: &output, stats: &stats)
        }
        stats.bodyBytes = output.count - DeltaFormat.headerLength
        let assembled = try assembler.finish(
            epoch: capture.epoch, records: records, delta: &output, scratch: &compressed)
        stats.compressNanoseconds = assembled.nanoseconds
        if !shadow, stats.bodyBytes > 0 {
            blockEncoder?.noteStoredShare(
                Double(output.count - DeltaFormat.headerLength - DeltaFormat.checksumLength) / Double(stats.bodyBytes))
        }
        stats.bodiesStoredRaw = assembled.storedRaw ? 1 : 0
        stats.wireBytes = output.count
        stats.encodeNanoseconds = MonotonicClock.nanoseconds() - start - stats.compressNanoseconds
        return stats
    }
}
