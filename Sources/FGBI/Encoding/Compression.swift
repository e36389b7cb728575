import CSupport

/// The general-purpose compressor run over an epoch's encoded body.
public enum Compression: Sendable, Equatable, CustomStringConvertible {
    case none
    /// LZ4 (fast).
    case lz4
    /// Zstandard at `level` (1 to 19; negative levels are faster still).
    case zstd(level: Int)

    public var description: String {
        switch self {
        case .none: return "none"
        case .lz4: return "lz4"
        case .zstd(let level): return "zstd:\(level)"
        }
    }

    /// Parses "none", "lz4", "zstd" (level 1) or "zstd:N".
    public static func parse(_ text: String) throws(FGBIError) -> Compression {
        switch text {
        case "none": return .none
        case "lz4": return .lz4
        case "zstd": return .zstd(level: 1)
        default:
            if text.hasPrefix("zstd:"), let level = Int(text.dropFirst(5)), (-7...19).contains(level) {
                return .zstd(level: level)
            }
            throw .invalidArgument("unknown compression '\(text)'; choose none, lz4, zstd or zstd:LEVEL (-7...19)")
        }
    }

    var wireCode: UInt8 {
        switch self {
        case .none: return 0
        case .lz4: return 1
        case .zstd: return 2
        }
    }

    /// Worst-case compressed size of `length` bytes.
    func bound(_ length: Int) -> Int {
        switch self {
        case .none: return length
        case .lz4: return Int(LZ4_compressBound(Int32(clamping: length)))
        case .zstd: return ZSTD_compressBound(length)
        }
    }

    /// Compresses `source` into `destination` (at least ``bound(_:)`` bytes); returns the compressed length.
    func compress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawPointer, capacity: Int)
        throws(FGBIError) -> Int
    {
        switch self {
        case .none:
            destination.copyMemory(from: source.baseAddress!, byteCount: source.count)
            return source.count
        case .lz4:
            guard source.count <= Int(LZ4_MAX_INPUT_SIZE) else {
                throw .invalidArgument("epoch body of \(source.count) bytes exceeds LZ4's limit; use zstd")
            }
            let written = LZ4_compress_default(
                source.baseAddress, destination, Int32(source.count), Int32(clamping: capacity))
            guard written > 0 || source.isEmpty else { throw .invalidState("LZ4 compression failed") }
            return Int(written)
        case .zstd(let level):
            let written = ZSTD_compress(destination, capacity, source.baseAddress, source.count, Int32(level))
            guard ZSTD_isError(written) == 0 else {
                throw .invalidState("zstd compression failed: \(String(cString: ZSTD_getErrorName(written)))")
            }
            return written
        }
    }
}
