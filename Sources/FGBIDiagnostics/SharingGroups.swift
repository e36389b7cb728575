import FGBI

/// Content shared within one epoch: groups of two or more items (pages or blocks) whose content hashes are
/// equal.
///
/// Content is compared by its XXH3-64 hash only, so two different contents with one hash (odds about 2^-64
/// per pair) would count as shared; for a diagnostic that is the right trade.
public struct SharingGroups: Sendable, Equatable {
    /// How many group sizes are listed: the largest ones.
    public static let listedGroups = 32

    /// Groups of two or more items with one content.
    public var groups = 0
    /// Items in those groups.
    public var members = 0
    /// The largest groups' sizes, largest first, at most ``listedGroups`` of them.
    public var listedSizes: [Int] = []

    public init() {}

    /// Groups `hashes` (one per item, in any order). Sorts `hashes` in place.
    public init(grouping hashes: inout [UInt64]) {
        hashes.sort()
        var sizes: [Int] = []
        var index = 0
        while index < hashes.count {
            var end = index + 1
            while end < hashes.count && hashes[end] == hashes[index] { end += 1 }
            if end - index >= 2 { sizes.append(end - index) }
            index = end
        }
        groups = sizes.count
        members = sizes.reduce(0, +)
        listedSizes = Array(sizes.sorted(by: >).prefix(Self.listedGroups))
    }
}
