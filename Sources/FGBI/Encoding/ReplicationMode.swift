/// What the primary sends for an epoch. `fgbi` is FGBI's block-level hybrid; the others are the baselines
/// it is measured against, produced by the same code path so comparisons are side by side.
public enum ReplicationMode: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Changed 64-byte (configurable) blocks: references for shared and zero content, a run-length
    /// difference against the cached previous version, or the bytes; then a general compressor.
    case fgbi
    /// Whole dirty pages, raw (Remus).
    case page
    /// Whole dirty pages, LZ4-compressed (Remus with compression, like QEMU multifd + compression).
    case pageLZ4 = "page-lz4"
    /// Dirty pages as a run-length difference against a cache of their previous version (QEMU's XBZRLE).
    case xbzrle

    public var description: String { rawValue }

    /// Parses a CLI name.
    public static func parse(_ name: String) throws(FGBIError) -> ReplicationMode {
        guard let mode = ReplicationMode(rawValue: name) else {
            throw .invalidArgument(
                "unknown mode '\(name)'; choose one of \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return mode
    }

    /// The compressor a mode uses unless told otherwise.
    public var defaultCompression: Compression {
        switch self {
        case .fgbi, .pageLZ4: return .lz4
        case .page, .xbzrle: return .none
        }
    }

    /// Whether the mode compares each captured page with what the backup holds, so that an unwritten page
    /// captured anyway costs a comparison and next to nothing on the wire (`fgbi`, `xbzrle`); `page` and
    /// `page-lz4` send every captured page whole, as Remus does.
    public var sendsOnlyChanges: Bool {
        switch self {
        case .fgbi, .xbzrle: return true
        case .page, .pageLZ4: return false
        }
    }

    var wireCode: UInt8 {
        switch self {
        case .fgbi: return 0
        case .page: return 1
        case .pageLZ4: return 2
        case .xbzrle: return 3
        }
    }

    init?(wireCode: UInt8) {
        guard let mode = Self.allCases.first(where: { $0.wireCode == wireCode }) else { return nil }
        self = mode
    }
}
