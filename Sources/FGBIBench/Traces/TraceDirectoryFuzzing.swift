import FGBI
import Foundation

/// The trace reader as a fuzz target (`fgbi-fuzz trace`): a scratch directory made from the input (images of
/// chosen sizes and a trace.json of the input's bytes), opened with ``TraceDirectory/open(_:)`` and read.
/// Whatever the input, opening must fail with a ``TraceError`` or succeed, never crash.
public enum TraceDirectoryFuzzing {
    /// Image sizes an input chooses from: whole pages, and sizes a trace must refuse.
    static let sizes = [4096, 8192, 0, 12288, 1000, 4097, 16384, 4096]

    static let scratch: String = {
        let path = NSTemporaryDirectory() + "/fgbi-fuzz-trace-\(getpid())"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        // Removed when the process exits, so test runs and fuzzing sessions leave no directory behind.
        atexit { try? FileManager.default.removeItem(atPath: TraceDirectoryFuzzing.scratch) }
        return path
    }()

    /// Input: image count (1-3, byte 0's low bits) and each image's size (three bits each: images 1 and 2 from
    /// byte 1, image 3 from byte 0's high bits, into ``sizes``), then trace.json's bytes (absent when the input
    /// ends there). True when the directory opened.
    @discardableResult
    public static func run(_ input: UnsafeRawBufferPointer) -> Bool {
        // One scratch directory per process: two callers at once (tests run concurrently) would empty and
        // fill it under each other.
        lock.withLock { runAlone(input) }
    }

    private static let lock = NSLock()

    private static func runAlone(_ input: UnsafeRawBufferPointer) -> Bool {
        guard input.count >= 2 else { return false }
        let fileManager = FileManager.default
        for name in (try? fileManager.contentsOfDirectory(atPath: scratch)) ?? [] {
            try? fileManager.removeItem(atPath: scratch + "/" + name)
        }
        let count = Int(input[0] & 3) % 3 + 1
        let codes = [input[1] & 7, (input[1] >> 3) & 7, (input[0] >> 4) & 7]
        for index in 0..<count {
            let size = sizes[Int(codes[index])]
            _ = fileManager.createFile(
                atPath: scratch + "/\(String(format: "%04d", index)).\(TraceDirectory.imageExtension)",
                contents: Data(repeating: UInt8(index), count: size))
        }
        if input.count > 2 {
            _ = fileManager.createFile(atPath: scratch + "/" + TraceDirectory.metadataName, contents: Data(input[2...]))
        }
        guard let trace = try? TraceDirectory.open(scratch) else { return false }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: trace.imageSize, alignment: 16)
        defer { buffer.deallocate() }
        for index in 0..<trace.images.count { _ = try? trace.readImage(index, into: buffer) }
        return true
    }
}
