/// Median, minimum and maximum of a sample.
public struct Summary: Sendable {
    public var median: Double
    public var min: Double
    public var max: Double

    public init(_ values: [Double]) {
        let sorted = values.sorted()
        median = sorted.isEmpty ? .nan : sorted[sorted.count / 2]
        min = sorted.first ?? .nan
        max = sorted.last ?? .nan
    }

    /// The `fraction` percentile (nearest rank) of `values`.
    public static func percentile(_ values: [Double], _ fraction: Double) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        let rank = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
        return sorted[Swift.min(Swift.max(rank, 0), sorted.count - 1)]
    }
}
