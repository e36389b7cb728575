import CSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A replica written to disk on failover: the regions' bytes back to back in one file, and beside it a
/// small JSON journal naming the epoch, the layout and each region's XXH3-64, so a restarted backup or an
/// operator can tell exactly which committed epoch the image holds. Each file is written to a fresh temporary
/// name, synced, renamed into place and its directory synced (``DurableFile``), so a crash leaves the
/// previous image or the new one, never half; a crash between the two leaves an image whose journal's
/// checksums do not match it, which a reader detects.
package enum ReplicaImage {
    /// Writes `regions` at `epoch` to `path` and `path.json`.
    public static func write(_ regions: [GuestMemory], geometry: BlockGeometry, epoch: UInt64?, to path: String) throws
    {
        try DurableFile.replace(path) { fd in
            for region in regions {
                try DurableFile.writeAll(
                    fd, UnsafeRawBufferPointer(start: region.base, count: region.length), what: path)
            }
        }
        let checksums = regions.map { String(CSupport_xxh3_64($0.base, $0.length), radix: 16) }
        let journal = """
            {"epoch": \(epoch.map(String.init) ?? "null"), "block_size": \(geometry.blockSize), \
            "page_size": \(geometry.pageSize), \
            "region_lengths": [\(regions.map { String($0.length) }.joined(separator: ", "))], \
            "xxh3": [\(checksums.map { "\"\($0)\"" }.joined(separator: ", "))]}

            """
        try DurableFile.replace(path + ".json") { fd in
            try Array(journal.utf8).withUnsafeBytes { try DurableFile.writeAll(fd, $0, what: path + ".json") }
        }
    }
}
