import FGBI
import FGBIBench
import Foundation

/// Temporary directories and hand-made trace images for the trace diagnostics tests, and the independent
/// byte-by-byte answers the trace is checked against.
enum TraceFixtures {
    static let pageSize = GuestMemory.pageSize

    /// A new empty directory under the temporary directory; remove it with ``remove(_:)``.
    static func temporaryDirectory(_ label: String = "trace") throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fgbi-\(label)-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func remove(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Images of `pages` pages: image 0 random-ish content, each next image derived from the previous one by
    /// edits of every kind the analyzer distinguishes (one block, several blocks, a whole page, a copy of
    /// another page, a cleared page, a block copied into several pages), reproducibly from `seed`.
    static func images(pages: Int, count: Int, seed: UInt64) -> [[UInt8]] {
        var random = SeededRandom(seed: seed)
        var image = [UInt8](repeating: 0, count: pages * pageSize)
        for index in image.indices where index % 8 == 0 && random.next() % 3 != 0 {
            image[index] = UInt8(truncatingIfNeeded: random.next())
        }
        var result = [image]
        for epoch in 1..<max(count, 1) {
            let edits = 3 + Int(random.next() % UInt64(max(pages / 4, 1)))
            for _ in 0..<edits {
                let page = Int(random.next() % UInt64(pages))
                let base = page * pageSize
                switch random.next() % 6 {
                case 0: // one byte
                    image[base + Int(random.next() % UInt64(pageSize))] &+= 1
                case 1: // a few scattered bytes
                    for _ in 0..<5 {
                        image[base + Int(random.next() % UInt64(pageSize))] = UInt8(
                            truncatingIfNeeded: random.next() | 1)
                    }
                case 2: // the whole page
                    for offset in 0..<pageSize { image[base + offset] = UInt8(truncatingIfNeeded: random.next()) }
                case 3: // a copy of another page
                    let source = Int(random.next() % UInt64(pages)) * pageSize
                    let copy = Array(image[source..<source + pageSize])
                    image.replaceSubrange(base..<base + pageSize, with: copy)
                case 4: // cleared
                    image.replaceSubrange(base..<base + pageSize, with: repeatElement(0, count: pageSize))
                default: // the same marker block at offset 128 of this page
                    for offset in 0..<64 {
                        image[base + 128 + offset] = UInt8(truncatingIfNeeded: epoch &* 37 &+ offset)
                    }
                }
            }
            result.append(image)
        }
        return result
    }

    /// Writes `images` as a trace directory at `path` (with trace.json giving `epochMs`).
    static func writeTrace(_ images: [[UInt8]], to path: String, epochMs: Double = 20) throws {
        let writer = try TraceDirectoryWriter(path: path)
        for image in images { try image.withUnsafeBytes { try writer.append($0) } }
        try writer.finish(TraceDirectory.Metadata(epochMs: epochMs, source: "test"))
    }

    /// Reads every image of an opened trace.
    static func read(_ trace: TraceDirectory) throws -> [[UInt8]] {
        try trace.images.indices.map { index in
            var bytes = [UInt8](repeating: 0, count: trace.imageSize)
            try bytes.withUnsafeMutableBytes { try trace.readImage(index, into: $0) }
            return bytes
        }
    }

    /// The pages that differ between two images, compared byte by byte.
    static func differingPages(_ old: [UInt8], _ new: [UInt8]) -> [Int] {
        (0..<old.count / pageSize).filter { page in
            old[page * pageSize..<(page + 1) * pageSize] != new[page * pageSize..<(page + 1) * pageSize]
        }
    }

    /// Changed blocks of `blockSize` bytes per page between two images, compared byte by byte.
    static func changedBlocks(_ old: [UInt8], _ new: [UInt8], blockSize: Int) -> [Int: Int] {
        var result: [Int: Int] = [:]
        for block in 0..<old.count / blockSize {
            let range = block * blockSize..<(block + 1) * blockSize
            if old[range] != new[range] { result[block * blockSize / pageSize, default: 0] += 1 }
        }
        return result
    }
}
