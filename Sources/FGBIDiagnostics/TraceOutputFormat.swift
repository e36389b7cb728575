import FGBI

/// The formats `fgbi trace --output` writes (Docs/TRACE.md, "Output").
public enum TraceOutputFormat: String, CaseIterable, Sendable {
    /// One JSON object per line: a `trace` header, then per epoch an `epoch` record followed by its `fault`
    /// records (uffd-sync), then one `page` record per page written, then a `summary`.
    case jsonl
    /// Comma-separated values with a header line: `epoch`, `fault` and `page` rows in one column set
    /// (``TraceRecordWriter/csvColumns``); the header and summary records are JSONL-only.
    case csv

    /// Parses a CLI name, with an error that lists the valid ones.
    public static func parse(_ name: String) throws(FGBIError) -> TraceOutputFormat {
        guard let format = TraceOutputFormat(rawValue: name) else {
            throw .invalidArgument(
                "unknown format '\(name)'; choose one of \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return format
    }
}
