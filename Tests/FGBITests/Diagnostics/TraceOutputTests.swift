import FGBI
import FGBIBench
import FGBIDiagnostics
import Foundation
import Testing

/// Trace records written as JSONL or CSV read back to the same values, and uffd-sync fault records agree
/// with the epochs they belong to.
@Suite("Trace output", .serialized)
struct TraceOutputTests {
    /// A small replayed trace, its result, and the records written in `format` to a file in `directory`.
    private func traced(_ format: TraceOutputFormat, tracker: TrackerKind, in directory: String)
        throws -> (result: TraceRun.Result, faults: [FaultTrace], path: String)
    {
        let traceDirectory = "\(directory)/trace"
        try TraceFixtures.writeTrace(TraceFixtures.images(pages: 48, count: 6, seed: 3), to: traceDirectory)
        var run = TraceRun(source: .directory(try TraceDirectory.open(traceDirectory)))
        run.tracker = tracker
        let path = "\(directory)/records.\(format.rawValue)"
        let writer = try TraceRecordWriter(path: path, format: format)
        try writer.write(try run.header())
        var faults: [FaultTrace] = []
        let result = try run.run(epoch: { epoch, epochFaults in
            try writer.write(epoch)
            for fault in epochFaults { try writer.write(fault) }
            faults += epochFaults
        })
        for page in result.pages { try writer.write(page) }
        try writer.write(result.summary)
        try writer.close()
        return (result, faults, path)
    }

    @Test func jsonlReadsBackRecordForRecord() throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        let (result, _, path) = try traced(.jsonl, tracker: .scan, in: directory)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.count == 1 + result.epochs.count + result.pages.count + 1)
        let objects = try lines.map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(
            objects.map { $0["record"] as? String } == ["trace"] + Array(repeating: "epoch", count: result.epochs.count)
                + Array(repeating: "page", count: result.pages.count) + ["summary"])
        #expect(objects[0]["tracker"] as? String == "scan")
        #expect(objects[0]["region_bytes"] as? Int == 48 * GuestMemory.pageSize)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let epochs = try lines[1...result.epochs.count].map { try decoder.decode(EpochTrace.self, from: Data($0.utf8)) }
        #expect(epochs == result.epochs)
        let pages = try lines[(1 + result.epochs.count)..<(lines.count - 1)].map {
            try decoder.decode(PageActivity.self, from: Data($0.utf8))
        }
        #expect(pages == result.pages)
        #expect(try decoder.decode(TraceSummary.self, from: Data(lines.last!.utf8)) == result.summary)
        #expect(objects[1]["faults"] == nil, "faults are only reported by uffd-sync")
    }

    @Test func csvReadsBackRowForRow() throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        let (result, _, path) = try traced(.csv, tracker: .scan, in: directory)
        let rows = try String(contentsOfFile: path, encoding: .utf8).split(
            separator: "\n", omittingEmptySubsequences: false
        )
        .dropLast().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        #expect(rows[0] == TraceRecordWriter.csvColumns)
        #expect(rows.allSatisfy { $0.count == TraceRecordWriter.csvColumns.count })
        let records = rows.dropFirst().map { Dictionary(uniqueKeysWithValues: zip(TraceRecordWriter.csvColumns, $0)) }
        let epochRows = records.filter { $0["record"] == "epoch" }
        let pageRows = records.filter { $0["record"] == "page" }
        #expect(epochRows.count == result.epochs.count)
        #expect(pageRows.count == result.pages.count)
        for (row, epoch) in zip(epochRows, result.epochs) {
            #expect(Int(row["epoch"]!) == epoch.epoch)
            #expect(Int(row["written_pages"]!) == epoch.writtenPages)
            #expect(Int(row["dirty_blocks"]!) == epoch.dirtyBlocks)
            #expect(Int(row["zero_blocks"]!) == epoch.zeroBlocks)
            #expect(Int(row["duplicate_pages"]!) == epoch.duplicatePages)
            #expect(Double(row["duration_ms"]!) == epoch.durationMs)
            #expect(row["dirty_block_histogram"]!.split(separator: ";").map { Int($0)! } == epoch.dirtyBlockHistogram)
            #expect(row["faults"] == "")
        }
        for (row, page) in zip(pageRows, result.pages) {
            #expect(Int(row["page"]!) == page.page)
            #expect(Int(row["epochs_written"]!) == page.epochsWritten)
            #expect(Int(row["dirty_blocks"]!) == page.dirtyBlocks)
        }
    }

    @Test(
        .requiring(.uffdSync, because: "fault records come from the uffd-sync tracker"),
        arguments: TraceOutputFormat.allCases)
    func faultRecordsMatchTheirEpochs(format: TraceOutputFormat) throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        let (result, faults, path) = try traced(format, tracker: .uffdSync, in: directory)
        #expect(!faults.isEmpty)
        for epoch in result.epochs {
            let own = faults.filter { $0.epoch == epoch.epoch }
            // The replayer writes each differing page once, so each written page faults exactly once.
            #expect(epoch.faults == own.count && own.count == epoch.writtenPages, "epoch \(epoch.epoch)")
            #expect(own.allSatisfy { $0.thread != 0 })
        }
        #expect(faults.map(\.timeNs) == faults.map(\.timeNs).sorted())
        #expect(result.summary.faults == FaultTally(faults: faults.count, threads: 1, dropped: 0))
        let text = try String(contentsOfFile: path, encoding: .utf8)
        switch format {
        case .jsonl:
            let records = try text.split(separator: "\n").map {
                try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
            }
            let faultRecords = records.filter { $0["record"] as? String == "fault" }
            #expect(faultRecords.count == faults.count)
            #expect(faultRecords.map { $0["page"] as? Int } == faults.map(\.page))
            #expect(faultRecords.map { ($0["time_ns"] as? NSNumber)?.uint64Value } == faults.map(\.timeNs))
        case .csv:
            let rows = text.split(separator: "\n").dropFirst().map {
                $0.split(separator: ",", omittingEmptySubsequences: false)
            }
            let faultRows = rows.filter { $0[0] == "fault" }
            let column = { (name: String) in TraceRecordWriter.csvColumns.firstIndex(of: name)! }
            #expect(faultRows.count == faults.count)
            #expect(faultRows.map { Int($0[column("page")]) } == faults.map(\.page))
            #expect(faultRows.map { UInt32($0[column("thread")]) } == faults.map(\.thread))
        }
    }
}
