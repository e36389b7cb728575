import FGBI
import Testing

/// A primary engine and a replica over matching regions, stepped epoch by epoch: after each epoch the
/// replica must equal the primary bit for bit.
final class EngineHarness {
    let primary: [GuestMemory]
    let backup: [GuestMemory]
    let engine: PrimaryEngine
    let replica: Replica
    let capture = EpochCapture()
    var totals = EpochStatistics()

    init(configuration: EngineConfiguration, regions: Int = 2, pagesPerRegion: Int = 128) throws {
        let length = pagesPerRegion * GuestMemory.pageSize
        primary = try (0..<regions).map { _ in try GuestMemory.anonymous(length: length) }
        backup = try (0..<regions).map { _ in try GuestMemory.anonymous(length: length) }
        engine = try PrimaryEngine(regions: primary, configuration: configuration)
        replica = Replica(regions: backup, geometry: engine.geometry)
    }

    /// Runs one epoch for `dirty` (one page set per region), applies it, and returns the delta and stats.
    @discardableResult
    func step(_ dirty: [DirtyPageSet]) throws -> (delta: [UInt8], statistics: EpochStatistics) {
        try engine.capture(dirty, into: capture)
        let result = try engine.encode(capture)
        try replica.apply(result.delta)
        totals.accumulate(result.statistics)
        return result
    }

    /// Whether every backup region equals its primary region.
    var identical: Bool {
        zip(primary, backup).allSatisfy { memcmp($0.base, $1.base, $0.length) == 0 }
    }

    /// The first differing byte, for failure messages.
    var firstDifference: String {
        for (r, (a, b)) in zip(primary, backup).enumerated() {
            for offset in 0..<a.length
            where a.base.load(fromByteOffset: offset, as: UInt8.self)
                != b.base.load(fromByteOffset: offset, as: UInt8.self)
            {
                return
                    """
                    region \(r) byte \(offset) (page \(offset / GuestMemory.pageSize), block \
                    \(offset / engine.geometry.blockSize))
                    """
            }
        }
        return "none"
    }
}

#if canImport(Glibc)
    import Glibc
#endif
