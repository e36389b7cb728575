import CSupport

/// A resynchronisation at block granularity: after the backup's ``ReplicaSummary``, the primary asks for the
/// block hashes of the pages whose page hash differs from its own, so that it sends only the blocks of
/// those pages that differ, not the pages whole.
///
/// On the wire, both in order and covering the same pages:
///
///     blockHashRequest (primary to backup):  one or more runs of  region (u32)  first page (u64)  count (u32)
///     blockHashes (backup to primary):       region (u32)  first page (u64)  count (u32)  count x blocks-per-page x
///     block hash (u64)
///
/// The request's runs are ascending and disjoint; the answers cover them in order, at most
/// ``pagesPerAnswer`` pages each (a payload under the 64 KiB a primary accepts from its backup).
package enum BlockHashExchange {
    /// A run of pages of one region.
    package typealias Run = PrimaryEngine.PageSpan

    /// Runs per request frame.
    static let runsPerRequest = 4096

    /// Pages per answer frame at `blocksPerPage` blocks a page.
    static func pagesPerAnswer(blocksPerPage: Int) -> Int { max(1, (60 << 10) / (8 * blocksPerPage)) }

    /// The request frames' payloads for `runs`.
    static func requestPayloads(_ runs: [Run]) -> [[UInt8]] {
        stride(from: 0, to: runs.count, by: runsPerRequest).map { start in
            var payload: [UInt8] = []
            for run in runs[start..<min(start + runsPerRequest, runs.count)] {
                appendLittleEndian(UInt32(run.region), to: &payload)
                appendLittleEndian(UInt64(run.start), to: &payload)
                appendLittleEndian(UInt32(run.count), to: &payload)
            }
            return payload
        }
    }

    /// The runs of one request frame, checked against the layout (`pageCounts`) and to follow `after`.
    package static func decodeRequest(_ payload: [UInt8], pageCounts: [Int], after previous: Run?) throws(WireError)
        -> [Run]
    {
        guard !payload.isEmpty, payload.count % 16 == 0 else {
            throw .malformed("block hash request of \(payload.count) bytes")
        }
        var runs: [Run] = []
        var last = previous
        var reader = PayloadReader(payload)
        for _ in 0..<(payload.count / 16) {
            let region = Int(try reader.u32())
            let first = try reader.u64()
            let count = Int(try reader.u32())
            guard region < pageCounts.count, count >= 1, first < UInt64(pageCounts[region]),
                Int(first) + count <= pageCounts[region]
            else {
                throw .malformed("block hash request for \(count) pages from page \(first) of region \(region)")
            }
            let run = Run(region: region, start: Int(first), count: count)
            if let last, (run.region, run.start) < (last.region, last.start + last.count) {
                throw .malformed("block hash request runs out of order")
            }
            runs.append(run)
            last = run
        }
        return runs
    }

    /// The answer frames' payloads for `runs` of `regions` (the backup's replica), hashed as the primary's
    /// block table hashes (XXH3-64 of each block).
    static func answerPayloads(_ runs: [Run], regions: [GuestMemory], geometry: BlockGeometry) -> [[UInt8]] {
        let blocksPerPage = geometry.blocksPerPage
        let perFrame = pagesPerAnswer(blocksPerPage: blocksPerPage)
        var payloads: [[UInt8]] = []
        var hasher = PageBlockHasher(geometry: geometry)
        for run in runs {
            var page = run.start
            while page < run.start + run.count {
                let count = min(perFrame, run.start + run.count - page)
                var payload: [UInt8] = []
                payload.reserveCapacity(16 + 8 * count * blocksPerPage)
                appendLittleEndian(UInt32(run.region), to: &payload)
                appendLittleEndian(UInt64(page), to: &payload)
                appendLittleEndian(UInt32(count), to: &payload)
                for offset in 0..<count {
                    for hash in hasher.hashes(of: regions[run.region].page(page + offset)) {
                        appendLittleEndian(hash, to: &payload)
                    }
                }
                payloads.append(payload)
                page += count
            }
        }
        return payloads
    }

    /// Reads an answer frame that must cover the next `count` pages at most of `run` from `page` on: the
    /// pages it covers and their hashes (`blocksPerPage` per page, in order).
    package static func decodeAnswer(_ payload: [UInt8], expecting run: Run, from page: Int, blocksPerPage: Int)
        throws(WireError) -> (pages: Int, hashes: [UInt64])
    {
        guard payload.count >= 16 else { throw .malformed("block hashes frame of \(payload.count) bytes") }
        var reader = PayloadReader(payload)
        let region = Int(try reader.u32())
        let first = try reader.u64()
        let count = Int(try reader.u32())
        guard region == run.region, first == UInt64(page), count >= 1, page + count <= run.start + run.count,
            payload.count == 16 + 8 * count * blocksPerPage
        else {
            throw .malformed(
                """
                block hashes for \(count) pages from page \(first) of region \(region); expected page \(page) of \
                region \(run.region)
                """
            )
        }
        let hashes = payload.withUnsafeBytes { bytes in
            (0..<(count * blocksPerPage)).map {
                UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 16 + 8 * $0, as: UInt64.self))
            }
        }
        return (count, hashes)
    }
}

/// The XXH3-64 of each block of a page, as a ``BlockTable`` records them, into a buffer reused page after page.
struct PageBlockHasher {
    private let geometry: BlockGeometry
    private var hashes: [UInt64]
    private var scratch: [UInt64]

    init(geometry: BlockGeometry) {
        self.geometry = geometry
        hashes = Array(repeating: 0, count: geometry.blocksPerPage)
        scratch = hashes
    }

    /// The hashes of the blocks of the page at `page`, in order (valid until the next call).
    mutating func hashes(of page: UnsafeRawPointer) -> [UInt64] {
        let geometry = self.geometry
        hashes.withUnsafeMutableBufferPointer { out in
            scratch.withUnsafeMutableBufferPointer { old in
                _ = CSupport_rehash_page(
                    page, geometry.blockSize, geometry.blocksPerPage, out.baseAddress!, old.baseAddress!)
            }
        }
        return hashes
    }
}
