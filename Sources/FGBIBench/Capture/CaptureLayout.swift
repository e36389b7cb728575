import FGBI

/// Which address ranges of a process a captured image holds, fixed at the first snapshot: the writable
/// private mappings (and, when asked, the writable shared ones) in address order, concatenated, each a whole
/// number of pages, at most a cap in total.
public struct CaptureLayout: Sendable, Equatable {
    public typealias Region = TraceDirectory.Metadata.Region

    /// The captured ranges in address order; image offset 0 is the first one's start.
    public private(set) var regions: [Region] = []
    /// Writable private ranges left out, each with its reason.
    public private(set) var skipped: [Region] = []
    /// Bytes per image: the regions' lengths summed.
    public private(set) var totalBytes = 0
    /// Whether writable shared mappings (`rw-s`) are captured too.
    public private(set) var includesShared = false

    /// Picks the ranges to capture from `mappings`: every ``ProcessMapping/isWritablePrivate`` one (and with
    /// `includingShared` every ``ProcessMapping/isWritableShared`` one) that `isReadable` accepts, in address
    /// order, until `maxBytes` (rounded down to pages). The range that crosses the cap is cut there; the ranges
    /// after it are skipped with the reason `size cap`.
    public static func select(
        from mappings: [ProcessMapping], maxBytes: Int, includingShared: Bool = false,
        isReadable: (ProcessMapping) -> Bool = { _ in true }
    ) -> CaptureLayout {
        let page = GuestMemory.pageSize
        let cap = maxBytes / page * page
        var layout = CaptureLayout()
        layout.includesShared = includingShared
        for mapping in mappings.sorted(by: { $0.start < $1.start })
        where mapping.isCaptured(includingShared: includingShared) {
            // /proc/PID/maps ranges are page-aligned; round inwards anyway so every range is whole pages.
            let start = (mapping.start + UInt64(page - 1)) / UInt64(page) * UInt64(page)
            let end = mapping.end / UInt64(page) * UInt64(page)
            guard end > start else { continue }
            let length = Int(end - start)
            guard isReadable(mapping) else {
                layout.skipped.append(Region(start: start, length: length, name: mapping.name, reason: "unreadable"))
                continue
            }
            let room = cap - layout.totalBytes
            let taken = min(length, room)
            if taken > 0 {
                layout.regions.append(Region(start: start, length: taken, name: mapping.name))
                layout.totalBytes += taken
            }
            if taken < length {
                layout.skipped.append(
                    Region(start: start + UInt64(taken), length: length - taken, name: mapping.name, reason: "size cap")
                )
            }
        }
        return layout
    }

    /// Bytes of captured kinds of memory in `mappings` that no region covers: mapped after the layout was
    /// fixed, or a range grown past its end.
    public func bytesOutside(_ mappings: [ProcessMapping]) -> Int {
        mappings.filter { $0.isCaptured(includingShared: includesShared) }.reduce(0) { sum, mapping in
            sum + mapping.length - regions.reduce(0) { $0 + Self.overlap($1, mapping) }
        }
    }

    /// Bytes of the regions that no mapping in `mappings` covers any more (they read as zeros).
    public func bytesUnmapped(_ mappings: [ProcessMapping]) -> Int {
        regions.reduce(0) { sum, region in
            sum + region.length - mappings.reduce(0) { $0 + Self.overlap(region, $1) }
        }
    }

    private static func overlap(_ region: Region, _ mapping: ProcessMapping) -> Int {
        let start = max(region.start, mapping.start)
        let end = min(region.start + UInt64(region.length), mapping.end)
        return end > start ? Int(end - start) : 0
    }
}
