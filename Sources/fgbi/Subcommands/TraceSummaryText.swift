import FGBI
import FGBIBench
import FGBIDiagnostics

/// `fgbi trace --summary` as text: the headline facts, then the block-size cost table.
struct TraceSummaryText {
    var header: TraceHeader
    var summary: TraceSummary

    var rendered: String {
        let s = summary
        let percent = { (part: Double, whole: Double) in whole > 0 ? formatted(100 * part / whole, 1) + "%" : "-" }
        var lines = [
            """
            trace: \(header.source), \(byteText(s.regionBytes)) region, \(header.tracker) tracker, \
            \(s.blockSize)-byte blocks,\u{20}
            """
                + "\(s.epochs) epochs in \(formatted(s.elapsedSeconds, 2)) s",
            """
            working set:       \(s.workingSetPages) pages written at least once = \
            \(formatted(s.workingSetMiB, 1)) MiB\u{20}
            """
                + "(\(percent(Double(s.workingSetBytes), Double(s.regionBytes))) of the region)",
            """
            write spread:      the most-written tenth of the working set took \
            \(formatted(100 * s.busiestTenthShare, 1))% of the page writes;\u{20}
            """
                + """
                the median page was written in \(s.medianEpochsWritten) of \(s.epochs) epochs, the busiest in \
                \(s.maxEpochsWritten)
                """,
            """
            write rate:        \(formatted(s.writtenPagesPerSecond, 0)) written pages/s (a page counts once per \
            epoch),\u{20}
            """
                + "\(formatted(s.dirtyBlocksPerSecond, 0)) changed blocks/s",
            """
            really changed:    \(formatted(s.meanDirtyBlocksPerWrittenPage, 2)) of \(s.blocksPerPage) blocks per \
            written page\u{20}
            """
                + """
                = \(formatted(100 * s.changedFraction, 1))% of each written page; \(s.unchangedWrittenPages) \
                written pages\u{20}
                """
                + "(\(percent(Double(s.unchangedWrittenPages), Double(s.writtenPages)))) did not change at all",
            "shared content:    per epoch, \(formatted(s.meanDuplicatePagesPerEpoch, 1)) written pages and "
                + "\(formatted(s.meanDuplicateBlocksPerEpoch, 1)) changed blocks had the same content as another; "
                + "\(formatted(s.meanZeroBlocksPerEpoch, 1)) changed blocks became zeros",
        ]
        if let faults = s.faults {
            lines.append(
                """
                faults (uffd-sync): \(faults.faults) write-protect faults from \(faults.threads) threads, \
                \(faults.dropped) not recorded
                """
            )
        }
        lines.append("")
        lines.append("bytes per block size (changed blocks + record headers + an 8-byte hash per block of the region):")
        var table = TextTable(["block", "changed blocks", "changed MB", "records MB", "hashes MB", "total MB", ""])
        for cost in s.blockSizes {
            table.add([
                String(cost.blockSize), String(cost.changedBlocks), mb(cost.changedBytes), mb(cost.recordBytes),
                mb(cost.hashBytes),
                mb(cost.totalBytes),
                cost.blockSize == s.cheapestBlockSize ? "<- cheapest" : cost.supported ? "" : "(not a --block-size)",
            ])
        }
        lines.append(table.rendered)
        if let best = s.cheapestBlockSize, let cost = s.blockSizes.first(where: { $0.blockSize == best }) {
            lines.append("cheapest block size: \(best) bytes (\(mb(cost.totalBytes)) MB for this run)")
        }
        return lines.joined(separator: "\n")
    }

    private func mb(_ bytes: Int) -> String { formatted(Double(bytes) / 1e6, 2) }
}
