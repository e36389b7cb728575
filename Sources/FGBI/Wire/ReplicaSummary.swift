import CSupport

/// What a backup that holds state tells a new primary session: the XXH3-64 of every page of its replica at
/// its last committed epoch. The primary compares its own pages against these and sends only the ones that
/// differ, so a reconnect or a backup restart costs the difference, not the memory.
///
/// On the wire: one or more `summary` frames, in order, each
///
///     region (u32)  first page (u64)  count (u32)  count x page hash (u64)
///
/// covering every page of every region exactly once, region by region.
package struct ReplicaSummary: Sendable, Equatable {
    /// Per region, one hash per page.
    public var pageHashes: [[UInt64]]
    /// Per region and page, whether several backups' summaries disagree on the page (``common(_:)``): such a
    /// page is held by none of them as far as the primary is concerned. Nil: a single backup's summary.
    var disagreed: [[Bool]]?

    public init(pageHashes: [[UInt64]]) { self.pageHashes = pageHashes }

    /// What several backups all hold: each page's hash where every summary agrees, and the page marked as
    /// held by none where any differs. A synchronisation against it sends each page every backup needs to
    /// all of them (a page that is current on one backup and stale on another goes to both).
    static func common(_ summaries: [ReplicaSummary]) -> ReplicaSummary {
        guard var combined = summaries.first else { return ReplicaSummary(pageHashes: []) }
        var disagreed = combined.pageHashes.map { Array(repeating: false, count: $0.count) }
        for other in summaries.dropFirst() {
            for region in combined.pageHashes.indices {
                for page in combined.pageHashes[region].indices
                where other.pageHashes[region][page] != combined.pageHashes[region][page] {
                    disagreed[region][page] = true
                }
            }
        }
        combined.disagreed = disagreed
        return combined
    }

    /// The summary of an empty (zero-filled) replica of regions of `pageCounts` pages.
    static func zeroFilled(pageCounts: [Int], pageSize: Int) -> ReplicaSummary {
        let zeroPage = [UInt8](repeating: 0, count: pageSize)
        let hash = zeroPage.withUnsafeBytes { CSupport_xxh3_64($0.baseAddress!, pageSize) }
        return ReplicaSummary(pageHashes: pageCounts.map { Array(repeating: hash, count: $0) })
    }

    /// Hashes per frame: the payload stays under the 64 KiB a primary accepts from its backup.
    static let hashesPerFrame = 8000

    /// The payloads of the frames that carry this summary.
    func framePayloads() -> [[UInt8]] {
        var payloads: [[UInt8]] = []
        for (region, hashes) in pageHashes.enumerated() {
            var first = 0
            while first < hashes.count {
                let count = min(Self.hashesPerFrame, hashes.count - first)
                var payload: [UInt8] = []
                payload.reserveCapacity(16 + 8 * count)
                appendLittleEndian(UInt32(region), to: &payload)
                appendLittleEndian(UInt64(first), to: &payload)
                appendLittleEndian(UInt32(count), to: &payload)
                for hash in hashes[first..<(first + count)] { appendLittleEndian(hash, to: &payload) }
                payloads.append(payload)
                first += count
            }
        }
        return payloads
    }

    /// Puts a summary back together from frames, checking each against the layout both ends agreed on.
    package struct Assembler {
        private let pageCounts: [Int]
        private var hashes: [[UInt64]]
        private var region = 0

        package init(pageCounts: [Int]) {
            self.pageCounts = pageCounts
            hashes = pageCounts.map { _ in [] }
            for (index, count) in pageCounts.enumerated() { hashes[index].reserveCapacity(count) }
            skipEmptyRegions()
        }

        /// Every page of every region has its hash.
        package var isComplete: Bool { region == pageCounts.count }

        /// The assembled summary (when ``isComplete``).
        package var summary: ReplicaSummary { ReplicaSummary(pageHashes: hashes) }

        /// Takes one frame's payload; throws ``WireError/malformed(_:)`` for anything out of order or range.
        package mutating func add(_ payload: [UInt8]) throws(WireError) {
            guard payload.count >= 16, (payload.count - 16) % 8 == 0 else {
                throw .malformed("summary frame of \(payload.count) bytes")
            }
            let (frameRegion, first, count) = payload.withUnsafeBytes { bytes in
                (
                    Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self))),
                    UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt64.self)),
                    Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
                )
            }
            guard !isComplete else { throw .malformed("summary frame after the summary was complete") }
            guard frameRegion == region, first == UInt64(hashes[region].count) else {
                throw .malformed(
                    """
                    summary frame for region \(frameRegion) page \(first); expected region \(region) page \
                    \(hashes[region].count)
                    """
                )
            }
            guard count == (payload.count - 16) / 8, count >= 1, count <= pageCounts[region] - hashes[region].count
            else {
                throw .malformed(
                    """
                    summary frame announces \(count) hashes in \(payload.count - 16) bytes for a region of \
                    \(pageCounts[region]) pages
                    """
                )
            }
            payload.withUnsafeBytes { bytes in
                for index in 0..<count {
                    hashes[region].append(
                        UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 16 + 8 * index, as: UInt64.self)))
                }
            }
            if hashes[region].count == pageCounts[region] {
                region += 1
                skipEmptyRegions()
            }
        }

        private mutating func skipEmptyRegions() {
            while region < pageCounts.count, pageCounts[region] == 0 { region += 1 }
        }
    }
}
