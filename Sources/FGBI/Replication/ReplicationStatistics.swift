/// Pause and lag figures of a running primary: a bounded window of recent epochs, so memory stays flat.
public struct ReplicationStatistics: Sendable {
    /// Epochs captured, sent and acknowledged so far.
    public var epochsCaptured: UInt64 = 0
    public var epochsSent: UInt64 = 0
    public var lastCommittedEpoch: UInt64?
    /// Bytes sent in epoch frames.
    public var bytesSent = 0
    /// Blocks (pages in the page modes) sent, and of them shared references.
    public var blocksSent = 0
    public var sharedHits = 0
    /// Guest pause (pause hook to resume hook), recent epochs, milliseconds.
    public var recentPausesMs: [Double] = []
    /// Times an epoch had to wait for a free capture buffer because encoding or sending fell behind.
    public var backpressureWaits = 0

    /// The `fraction` percentile of recent pauses.
    public func pausePercentile(_ fraction: Double) -> Double {
        let sorted = recentPausesMs.sorted()
        guard !sorted.isEmpty else { return 0 }
        let rank = max(Int((fraction * Double(sorted.count)).rounded(.up)) - 1, 0)
        return sorted[min(rank, sorted.count - 1)]
    }

    /// Epochs captured but not yet acknowledged.
    public var lag: UInt64 {
        guard epochsCaptured > 0 else { return 0 }
        return epochsCaptured - (lastCommittedEpoch.map { $0 + 1 } ?? 0)
    }

    static let window = 1024

    mutating func recordPause(milliseconds: Double) {
        if recentPausesMs.count == Self.window { recentPausesMs.removeFirst(Self.window / 4) }
        recentPausesMs.append(milliseconds)
    }
}
