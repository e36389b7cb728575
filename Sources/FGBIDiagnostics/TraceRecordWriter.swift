import FGBI
import Foundation

/// Writes trace records to a file as JSONL or CSV (Docs/TRACE.md documents both schemas).
///
/// Records are written as they come, so a long `uffd-sync` trace with millions of faults never sits in
/// memory; ``close()`` completes the file.
public final class TraceRecordWriter {
    /// The CSV columns, in order. Each row fills the columns its record type has and leaves the rest empty:
    /// `epoch` rows the epoch fields (lists `;`-separated), `fault` rows `epoch`, `page`, `time_ns` and
    /// `thread`, `page` rows `page`, `epochs_written` and `dirty_blocks` (summed over the run).
    public static let csvColumns = [
        "record", "epoch", "end_ms", "duration_ms", "written_pages", "dirty_blocks", "changed_pages", "new_pages",
        "zero_pages", "zero_blocks", "duplicate_page_groups", "duplicate_pages", "duplicate_block_groups",
        "duplicate_blocks", "faults",
        "dirty_block_histogram", "duplicate_page_group_sizes", "duplicate_block_group_sizes",
        "page", "epochs_written", "time_ns", "thread",
    ]

    /// The format written.
    public let format: TraceOutputFormat
    private let file: OutputFile
    private let encoder: JSONEncoder

    /// Creates (or truncates) `path`; a CSV file starts with its header line.
    public init(path: String, format: TraceOutputFormat) throws(SystemError) {
        self.format = format
        file = try OutputFile(path: path, ownerOnly: true)
        encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        if format == .csv { try file.write(Self.csvColumns.joined(separator: ",") + "\n") }
    }

    /// The opening `trace` record (JSONL only).
    public func write(_ header: TraceHeader) throws {
        if format == .jsonl { try line(header) }
    }

    /// One epoch.
    public func write(_ epoch: EpochTrace) throws {
        switch format {
        case .jsonl: try line(epoch)
        case .csv:
            try row(
                "epoch",
                [
                    "epoch": String(epoch.epoch), "end_ms": Self.decimal(epoch.endMs),
                    "duration_ms": Self.decimal(epoch.durationMs),
                    "written_pages": String(epoch.writtenPages), "dirty_blocks": String(epoch.dirtyBlocks),
                    "changed_pages": String(epoch.changedPages), "new_pages": String(epoch.newPages),
                    "zero_pages": String(epoch.zeroPages),
                    "zero_blocks": String(epoch.zeroBlocks),
                    "duplicate_page_groups": String(epoch.duplicatePageGroups),
                    "duplicate_pages": String(epoch.duplicatePages),
                    "duplicate_block_groups": String(epoch.duplicateBlockGroups),
                    "duplicate_blocks": String(epoch.duplicateBlocks),
                    "faults": epoch.faults.map(String.init) ?? "",
                    "dirty_block_histogram": Self.list(epoch.dirtyBlockHistogram),
                    "duplicate_page_group_sizes": Self.list(epoch.duplicatePageGroupSizes),
                    "duplicate_block_group_sizes": Self.list(epoch.duplicateBlockGroupSizes),
                ])
        }
    }

    /// One fault.
    public func write(_ fault: FaultTrace) throws {
        switch format {
        case .jsonl: try line(fault)
        case .csv:
            try row(
                "fault",
                [
                    "epoch": String(fault.epoch), "page": String(fault.page), "time_ns": String(fault.timeNs),
                    "thread": String(fault.thread),
                ])
        }
    }

    /// One written page's totals.
    public func write(_ page: PageActivity) throws {
        switch format {
        case .jsonl: try line(page)
        case .csv:
            try row(
                "page",
                [
                    "page": String(page.page), "epochs_written": String(page.epochsWritten),
                    "dirty_blocks": String(page.dirtyBlocks),
                ])
        }
    }

    /// The closing `summary` record (JSONL only).
    public func write(_ summary: TraceSummary) throws {
        if format == .jsonl { try line(summary) }
    }

    /// Writes what is buffered and closes the file.
    public func close() throws(SystemError) {
        try file.close()
    }

    private func line<T: Encodable>(_ value: T) throws {
        try file.write(String(decoding: try encoder.encode(value), as: UTF8.self) + "\n")
    }

    private func row(_ record: String, _ fields: [String: String]) throws(SystemError) {
        var cells = Self.csvColumns.map { fields[$0] ?? "" }
        cells[0] = record
        try file.write(cells.joined(separator: ",") + "\n")
    }

    private static func list(_ values: [Int]) -> String { values.map(String.init).joined(separator: ";") }

    private static func decimal(_ value: Double) -> String { String(format: "%.3f", value) }
}
