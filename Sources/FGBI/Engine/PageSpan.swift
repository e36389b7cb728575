/// Page spans, the unit of capture work, and how a parallel capture cuts them into chunks.
extension PrimaryEngine {
    /// Consecutive pages of one region.
    public struct PageSpan: Sendable, Equatable {
        public var region: Int
        public var start: Int
        public var count: Int

        public init(region: Int, start: Int, count: Int) {
            self.region = region
            self.start = start
            self.count = count
        }
    }

    /// Consecutive written pages of one region: a unit of capture work.
    typealias Span = PageSpan

    /// A parallel capture's chunks: this many per thread, at least this many pages each.
    static let chunksPerThread = 4
    static let minimumChunkPages = 64

    /// Cuts `work` into `parts` pieces of nearly equal page counts, keeping the order.
    static func split(_ work: [Span], into parts: Int) -> [[Span]] {
        let total = work.reduce(0) { $0 + $1.count }
        let share = (total + parts - 1) / parts
        var pieces: [[Span]] = [[]]
        var filled = 0
        for var span in work {
            while span.count > 0 {
                if filled == share {
                    pieces.append([])
                    filled = 0
                }
                let taken = min(span.count, share - filled)
                pieces[pieces.count - 1].append(Span(region: span.region, start: span.start, count: taken))
                span.start += taken
                span.count -= taken
                filled += taken
            }
        }
        return pieces
    }
}
