import FGBI
import FGBIDiagnostics
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// General-purpose delta tools run on the same memory history as `fgbi bench replicate`: for each pair of
/// consecutive images (the region before and after an epoch), the bytes and time of
/// `zstd -3 --patch-from=OLD NEW`, `rsync --no-whole-file --only-write-batch` (the batch file's size) and
/// `xdelta3 -e -s OLD NEW`, each a separate process timed by wall clock and by its own CPU time.
public struct DeltaToolBaseline: Sendable {
    /// A tool and how to make a delta with it.
    public enum Tool: String, CaseIterable, Sendable, Codable {
        case zstd
        case rsync
        case xdelta3

        /// The program's command line to turn `old` and `new` into the delta file `output`.
        func arguments(old: String, new: String, output: String, imageBytes: Int) -> [String] {
            switch self {
            case .zstd: ["zstd", "-q", "-f", "-3", "--patch-from=\(old)", new, "-o", output]
            case .rsync: ["rsync", "--no-whole-file", "--only-write-batch=\(output)", new, old]
            // -B: a source window the size of the image (at most 1 GiB), so matches anywhere in it are found.
            case .xdelta3:
                ["xdelta3", "-e", "-f", "-B", String(min(max(imageBytes, 1 << 20), 1 << 30)), "-s", old, new, output]
            }
        }

        /// The command line as tables print it.
        public var commandLine: String {
            switch self {
            case .zstd: "zstd -3 --patch-from=OLD NEW"
            case .rsync: "rsync --no-whole-file --only-write-batch=OUT NEW OLD"
            case .xdelta3: "xdelta3 -e -B <image size, max 1 GiB> -s OLD NEW"
            }
        }

        /// The Debian package that provides it.
        public var package: String { rawValue }
    }

    /// One tool over the pairs.
    public struct ToolRun: Codable, Sendable {
        public var workload: String
        public var tool: String
        public var command: String
        /// Image pairs measured (the first `pairs` epochs).
        public var pairs: Int
        public var bytes: Int
        public var bytesPerEpoch: Int
        public var cpuMsPerEpoch: Double
        public var wallMsPerEpoch: Double
    }

    public var tools: [Tool]
    /// Pairs measured: the first this many epochs.
    public var epochs: Int
    public var pagesPerEpoch: Int
    public var regionBytes: Int
    public var seed: UInt64
    /// Where the images and deltas are written (removed afterwards); tmpfs keeps disk time out of the figures.
    public var scratchDirectory = "/dev/shm"

    public init(tools: [Tool], epochs: Int, pagesPerEpoch: Int, regionBytes: Int, seed: UInt64) {
        self.tools = tools
        self.epochs = epochs
        self.pagesPerEpoch = pagesPerEpoch
        self.regionBytes = regionBytes
        self.seed = seed
    }

    /// The tools missing from this machine, with the packages that provide them.
    public var missingTools: [Tool] { tools.filter { !ChildProcess.isAvailable($0.rawValue) } }

    /// Runs every available tool on the first ``epochs`` image pairs of `source`: a trace's own images, or
    /// a workload replayed (same seed, same writes as the replication runs) into images written here.
    public func run(source: BenchmarkSource, progress: (String) -> Void) throws -> [ToolRun] {
        let available = tools.filter { ChildProcess.isAvailable($0.rawValue) }
        guard !available.isEmpty else { return [] }
        let scratch = try makeScratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var totals = [Tool: (bytes: Int, cpu: UInt64, wall: UInt64)]()
        let pairs = try source.epochs(wanted: epochs)
        var images = try ImageSequence(
            source: source, regionBytes: regionBytes, pagesPerEpoch: pagesPerEpoch, seed: seed, scratch: scratch)
        for pair in 0..<pairs {
            let (old, new) = try images.next()
            for tool in available {
                let output = (scratch as NSString).appendingPathComponent("delta.\(tool.rawValue)")
                unlink(output)
                let outcome = try ChildProcess.run(
                    tool.arguments(old: old, new: new, output: output, imageBytes: images.imageBytes))
                guard outcome.status == 0 else {
                    throw BenchmarkError(
                        """
                        \(tool.rawValue) exited with status \(outcome.status) on image pair \(pair) \
                        (\(tool.commandLine))
                        """
                    )
                }
                var info = stat()
                guard stat(output, &info) == 0 else {
                    throw BenchmarkError("\(tool.rawValue) wrote no delta file \(output)")
                }
                var total = totals[tool] ?? (0, 0, 0)
                total.bytes += Int(info.st_size)
                total.cpu += outcome.cpuNanoseconds
                total.wall += outcome.wallNanoseconds
                totals[tool] = total
            }
            progress("  baselines: image pair \(pair + 1)/\(pairs)")
        }
        return available.map { tool in
            let total = totals[tool] ?? (0, 0, 0)
            let count = max(pairs, 1)
            return ToolRun(
                workload: source.name, tool: tool.rawValue, command: tool.commandLine, pairs: pairs, bytes: total.bytes,
                bytesPerEpoch: total.bytes / count, cpuMsPerEpoch: Double(total.cpu) / 1e6 / Double(count),
                wallMsPerEpoch: Double(total.wall) / 1e6 / Double(count))
        }
    }

    private func makeScratchDirectory() throws -> String {
        var template = Array("\(scratchDirectory)/fgbi-baseline-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw SystemError(
                operation: "mkdtemp(\(scratchDirectory))", errno: errno,
                hint: "the scratch directory must exist and be writable")
        }
        return String(cString: made)
    }
}

/// Consecutive images of a source as files: a trace's own, or a workload's written to a scratch directory
/// one epoch at a time (the older image kept, the newer written beside it).
private struct ImageSequence {
    let imageBytes: Int
    private let source: BenchmarkSource
    private let scratch: String
    private var guest: LockstepGuest?
    private var index = 0

    init(source: BenchmarkSource, regionBytes: Int, pagesPerEpoch: Int, seed: UInt64, scratch: String) throws {
        self.source = source
        self.scratch = scratch
        imageBytes = source.regionBytes(default: regionBytes)
        if case .workload = source {
            let memory = try GuestMemory.anonymous(length: imageBytes)
            guest = try LockstepGuest(
                memory: memory, source: source.guestSource(pagesPerEpoch: pagesPerEpoch, seed: seed))
            try write(memory, to: path(0))
        }
    }

    private func path(_ image: Int) -> String { (scratch as NSString).appendingPathComponent("image-\(image % 2).img") }

    private func write(_ memory: GuestMemory, to file: String) throws {
        let output = try OutputFile(path: file, ownerOnly: true)
        try output.write(UnsafeRawBufferPointer(memory.bytes))
        try output.close()
    }

    /// The next pair (older, newer) of image paths.
    mutating func next() throws -> (String, String) {
        defer { index += 1 }
        if case .trace(let trace) = source { return (trace.images[index], trace.images[index + 1]) }
        _ = try guest!.writeNext()
        try write(guest!.memory, to: path(index + 1))
        return (path(index), path(index + 1))
    }
}
