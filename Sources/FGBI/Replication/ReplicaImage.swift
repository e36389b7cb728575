import CSupport

#if canImport(Glibc)
import Glibc
#endif

/// A replica written to disk on failover: the regions' bytes back to back in one file, and beside it a
/// small JSON journal naming the epoch, the layout and each region's XXH3-64, so a restarted backup or an
/// operator can tell exactly which committed epoch the image holds. Both files are written to a temporary
/// name, synced, and renamed into place, so a crash leaves the previous image or the new one, never half.
public enum ReplicaImage {
    /// Writes `regions` at `epoch` to `path` and `path.json`.
    public static func write(_ regions: [GuestMemory], geometry: BlockGeometry, epoch: UInt64?, to path: String) throws {
        let temporary = path + ".tmp"
        try writeFile(temporary) { fd in
            for region in regions {
                var offset = 0
                while offset < region.length {
                    let n = try Syscall.libc("write(\(temporary))", hint: { $0 == ENOSPC ? "the disk is full" : "" }) {
                        Glibc.write(fd, region.base + offset, min(region.length - offset, 1 << 30))
                    }
                    offset += n
                }
            }
        }
        let checksums = regions.map { String(CSupport_xxh3_64($0.base, $0.length), radix: 16) }
        let journal = """
            {"epoch": \(epoch.map(String.init) ?? "null"), "block_size": \(geometry.blockSize), "page_size": \(geometry.pageSize), \
            "region_lengths": [\(regions.map { String($0.length) }.joined(separator: ", "))], \
            "xxh3": [\(checksums.map { "\"\($0)\"" }.joined(separator: ", "))]}

            """
        try writeFile(path + ".json.tmp") { fd in
            _ = try Array(journal.utf8).withUnsafeBytes { bytes in
                try Syscall.libc("write(\(path).json)") { Glibc.write(fd, bytes.baseAddress, bytes.count) }
            }
        }
        try Syscall.libc("rename(\(temporary))") { rename(temporary, path) }
        try Syscall.libc("rename(\(path).json.tmp)") { rename(path + ".json.tmp", path + ".json") }
    }

    private static func writeFile(_ path: String, _ body: (Int32) throws -> Void) throws {
        let fd = try Syscall.libc("open(\(path))", hint: { $0 == EACCES ? "no permission to write there" : "" }) {
            open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        }
        defer { close(fd) }
        try body(fd)
        try Syscall.libc("fsync(\(path))") { fsync(fd) }
    }
}
