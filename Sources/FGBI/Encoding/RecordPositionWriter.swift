/// Writes each record's (region, page) compactly: records come in increasing order, so the page is a
/// ULEB128 gap from the previous record of the same region, and a region change costs one more byte.
///
///     position := regionStep (ULEB128) page
///     page     := absolute page (ULEB128) when regionStep > 0 or for the first record, else the gap
///                 (page - previous page - 1)
struct RecordPositionWriter {
    private var region = 0
    private var page = -1

    mutating func reset() {
        region = 0
        page = -1
    }

    /// Continues a stream whose last record was at (`region`, `page`): a segment encoded apart from the
    /// records before it.
    mutating func resume(afterRegion region: Int, page: Int) {
        self.region = region
        self.page = page
    }

    @inline(__always)
    mutating func write(region newRegion: Int, page newPage: Int, to writer: inout ByteWriter) {
        writer.uleb(newRegion - region)
        if newRegion != region {
            writer.uleb(newPage)
        } else {
            writer.uleb(newPage - page - 1)
        }
        region = newRegion
        page = newPage
    }
}
