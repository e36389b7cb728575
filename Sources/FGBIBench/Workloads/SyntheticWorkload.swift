import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// Synthetic guest-memory writers for benchmarks: each epoch writes a fixed number of distinct random pages
/// in one of several patterns, reproducibly from a seed.
public enum SyntheticWorkload: String, CaseIterable, Sendable, Codable {
    /// One random 8-byte store per written page (counters, pointers, flags): FGBI's best case.
    case sparse
    /// Written pages rewritten whole with new, moderately compressible words (a buffer refill).
    case dense
    /// Written pages overwritten with a copy of another page of the region (page-cache copies, forks).
    case duplicate
    /// Written pages cleared to zeros (freed memory).
    case zero
    /// Sequential streaming writes: each epoch rewrites a contiguous run of pages whole with new
    /// moderately compressible words, from a random start (a log or buffer being filled).
    case streaming
    /// A Zipf-distributed hot set: page ranks drawn with probability about 1/rank (scattered over the
    /// region), each write a few 8-byte stores (counters and pointers of a key-value table).
    case zipf
    /// A mix like a running server's: 80% of writes go to a hot set (a sixteenth of the region), the rest
    /// anywhere; three quarters are a few 8-byte stores, a tenth copy another page, a twentieth clear a page,
    /// the rest rewrite a page whole. The embedded demo's guest.
    case guest

    /// Parses a CLI name.
    public static func parse(_ name: String) throws(FGBIError) -> SyntheticWorkload {
        guard let workload = SyntheticWorkload(rawValue: name) else {
            throw .invalidArgument(
                "unknown workload '\(name)'; choose one of \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return workload
    }

    /// Fills a region with initial content like a running guest's: a quarter of the pages zero, the rest
    /// words with small values (compressible about 2x, as heap memory often is).
    public static func fillInitial(_ memory: GuestMemory, seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let wordsPerPage = GuestMemory.pageSize / 8
        for page in 0..<memory.pageCount where random.next() % 4 != 0 {
            let words = memory.page(page).assumingMemoryBound(to: UInt64.self)
            for word in 0..<wordsPerPage { words[word] = random.next() >> 28 }
        }
    }

    /// Fills a region like a guest that has run for a while: a quarter of the pages zero, a tenth copies of
    /// earlier pages (shared libraries, page cache), the rest words with small values.
    public static func fillGuest(_ memory: GuestMemory, seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let wordsPerPage = GuestMemory.pageSize / 8
        for page in 0..<memory.pageCount {
            let kind = random.next() % 20
            if kind < 5 { continue }
            if kind < 7 && page > 0 {
                memory.page(page).copyMemory(
                    from: memory.page(Int(random.next() % UInt64(page))), byteCount: GuestMemory.pageSize)
                continue
            }
            let words = memory.page(page).assumingMemoryBound(to: UInt64.self)
            for word in 0..<wordsPerPage { words[word] = random.next() >> 28 }
        }
    }

    /// Writes `pages` distinct random pages of `memory` in this pattern (for ``guest``, `pages` writes that
    /// may repeat pages, as a hot set does).
    package func writeEpoch(_ memory: GuestMemory, pages: Int, random: inout SeededRandom) {
        switch self {
        case .guest: return Self.writeGuest(memory, writes: pages, random: &random)
        case .zipf: return Self.writeZipf(memory, writes: pages, random: &random)
        case .streaming: return Self.writeStreaming(memory, pages: pages, random: &random)
        default: break
        }
        let pageCount = memory.pageCount
        let wordsPerPage = GuestMemory.pageSize / 8
        let count = min(pages, pageCount)
        // A random stride walk visits `count` distinct pages.
        let stride = Self.coprimeStride(pageCount, &random)
        var page = Int(random.next() % UInt64(pageCount))
        for _ in 0..<count {
            page = (page + stride) % pageCount
            let words = memory.page(page).assumingMemoryBound(to: UInt64.self)
            switch self {
            case .sparse:
                words[Int(random.next() % UInt64(wordsPerPage))] = random.next()
            case .dense:
                for word in 0..<wordsPerPage { words[word] = random.next() >> 28 }
            case .duplicate:
                var source = Int(random.next() % UInt64(pageCount))
                if source == page { source = (source + 1) % pageCount }
                memory.page(page).copyMemory(from: memory.page(source), byteCount: GuestMemory.pageSize)
            case .zero:
                memory.page(page).initializeMemory(as: UInt8.self, repeating: 0, count: GuestMemory.pageSize)
            case .guest, .zipf, .streaming:
                break
            }
        }
    }

    private static func writeGuest(_ memory: GuestMemory, writes: Int, random: inout SeededRandom) {
        let pageCount = memory.pageCount
        let hotPages = max(pageCount / 16, 1)
        let wordsPerPage = GuestMemory.pageSize / 8
        for _ in 0..<writes {
            let page =
                random.next() % 100 < 80
                ? Int(random.next() % UInt64(hotPages)) : Int(random.next() % UInt64(pageCount))
            let words = memory.page(page).assumingMemoryBound(to: UInt64.self)
            let action = random.next() % 100
            switch action {
            case 0..<75:
                for _ in 0...(random.next() % 4) {
                    words[Int(random.next() % UInt64(wordsPerPage))] = random.next() >> 20
                }
            case 75..<85:
                var source = Int(random.next() % UInt64(pageCount))
                if source == page { source = (source + 1) % pageCount }
                memory.page(page).copyMemory(from: memory.page(source), byteCount: GuestMemory.pageSize)
            case 85..<90:
                memory.page(page).initializeMemory(as: UInt8.self, repeating: 0, count: GuestMemory.pageSize)
            default:
                for word in 0..<wordsPerPage { words[word] = random.next() >> 28 }
            }
        }
    }

    private static func writeStreaming(_ memory: GuestMemory, pages: Int, random: inout SeededRandom) {
        let pageCount = memory.pageCount
        let wordsPerPage = GuestMemory.pageSize / 8
        let start = Int(random.next() % UInt64(pageCount))
        for step in 0..<min(pages, pageCount) {
            let words = memory.page((start + step) % pageCount).assumingMemoryBound(to: UInt64.self)
            for word in 0..<wordsPerPage { words[word] = random.next() >> 28 }
        }
    }

    /// Ranks are log-uniform on 1...pageCount (density 1/rank: Zipf with exponent 1), spread over the region by
    /// a fixed odd multiplier so the hot pages are not adjacent.
    private static func writeZipf(_ memory: GuestMemory, writes: Int, random: inout SeededRandom) {
        let pageCount = memory.pageCount
        let wordsPerPage = GuestMemory.pageSize / 8
        let logPages = log(Double(pageCount))
        var spread = 0x9E37_79B1 % pageCount | 1
        while gcd(spread, pageCount) != 1 { spread += 2 }
        for _ in 0..<writes {
            let unit = Double(random.next() >> 11) / Double(1 << 53)
            let rank = min(Int(exp(unit * logPages)), pageCount) - 1
            let words = memory.page(rank * spread % pageCount).assumingMemoryBound(to: UInt64.self)
            for _ in 0...(random.next() % 4) { words[Int(random.next() % UInt64(wordsPerPage))] = random.next() >> 20 }
        }
    }

    private static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

    private static func coprimeStride(_ n: Int, _ random: inout SeededRandom) -> Int {
        var stride = Int(random.next() % UInt64(n)) | 1
        while gcd(stride, n) != 1 { stride += 2 }
        return stride % n == 0 ? 1 : stride
    }
}
