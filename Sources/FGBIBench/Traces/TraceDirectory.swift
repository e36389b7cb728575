import FGBI
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A trace directory (Docs/TRACE.md): equal-size raw memory images `*.img` whose names sort in epoch order,
/// image 0 the region before tracking and each later one the region after one more epoch, plus an optional
/// `trace.json` with the epoch interval. Other files are ignored.
///
/// ``open(_:)`` lists and checks the directory without reading the images: at least one image, every image a
/// readable regular file of the same size, a whole number of 4 KiB pages.
public struct TraceDirectory: Sendable {
    /// The image files' extension.
    public static let imageExtension = "img"
    /// The optional metadata file's name.
    public static let metadataName = "trace.json"

    /// What `trace.json` may hold; every field optional. A trace captured from a running program
    /// (`fgbi trace capture`) also records where each image's bytes came from and what was left out.
    public struct Metadata: Codable, Sendable, Equatable {
        /// Milliseconds between images, used as the epoch length when replaying.
        public var epochMs: Double?
        /// Where the images came from (`workload:guest`, `process:redis-server`).
        public var source: String?
        /// The captured process's id.
        public var pid: Int32?
        /// The captured process's command line, as /proc/PID/cmdline gave it.
        public var program: String?
        /// The address ranges an image concatenates, in address order: image offset 0 is the first range's
        /// start, and each next range follows the previous one's last byte.
        public var regions: [Region]?
        /// Writable private ranges left out of the layout (the size cap, or unreadable at the first snapshot).
        public var skippedRegions: [Region]?
        /// Snapshots asked for; more than the images when the process exited part way.
        public var snapshotsPlanned: Int?
        /// The interval asked for, in milliseconds; `epoch_ms` is the mean interval the snapshots really had.
        public var intervalMs: Double?
        /// When each snapshot started, in milliseconds from the first.
        public var snapshotStartsMs: [Double]?
        /// Stop-to-continue pause of each snapshot, in milliseconds (empty when the process was not stopped).
        public var pausesMs: [Double]?
        /// Bytes of the layout that could not be read and were written as zeros, summed over all images.
        public var unreadBytes: Int?
        /// The most bytes of writable private memory mapped outside the layout at any snapshot (mapped after
        /// the first snapshot, or grown past a range's end): memory the images do not show.
        public var bytesMappedOutsideLayout: Int?
        /// The most bytes of the layout not mapped any more at any snapshot (they read as zeros).
        public var layoutBytesUnmapped: Int?
        /// True when the process exited before the planned snapshots were taken.
        public var exitedEarly: Bool?

        /// One address range of a captured process: `length` bytes from `start`, with the mapping's name
        /// from /proc/PID/maps (a path, `[heap]`, `[stack]`, or empty for anonymous memory).
        public struct Region: Codable, Sendable, Equatable {
            public var start: UInt64
            public var length: Int
            public var name: String
            /// Why a skipped range was left out (`size cap`, `unreadable`); nil for a captured one.
            public var reason: String?

            public init(start: UInt64, length: Int, name: String, reason: String? = nil) {
                self.start = start
                self.length = length
                self.name = name
                self.reason = reason
            }
        }

        public init(epochMs: Double? = nil, source: String? = nil) {
            self.epochMs = epochMs
            self.source = source
        }
    }

    /// The directory's path as given.
    public let path: String
    /// The images' paths, in epoch order.
    public let images: [String]
    /// Bytes per image.
    public let imageSize: Int
    /// `trace.json`'s content, or empty metadata when the file is absent.
    public let metadata: Metadata

    /// Pages per image.
    public var pageCount: Int { imageSize / GuestMemory.pageSize }
    /// Epochs the trace replays: one per image after the first.
    public var epochCount: Int { images.count - 1 }

    /// Opens and checks the trace directory at `path`.
    public static func open(_ path: String) throws(TraceError) -> TraceDirectory {
        var info = stat()
        if stat(path, &info) != 0 {
            throw errno == ENOENT ? .notFound(path) : .unreadable(path, reason: Self.reason(errno))
        }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw .notADirectory(path) }
        let names = try listing(path).filter { $0.hasSuffix("." + imageExtension) }.sorted {
            $0.utf8.lexicographicallyPrecedes($1.utf8)
        }
        guard !names.isEmpty else { throw .noImages(path) }
        let images = names.map { (path as NSString).appendingPathComponent($0) }
        var size = -1
        for image in images {
            let length = try checkedImage(image)
            if size < 0 {
                guard length > 0, length % GuestMemory.pageSize == 0 else {
                    throw .badImageSize(image, size: length, pageSize: GuestMemory.pageSize)
                }
                size = length
            } else if length != size {
                throw .sizeMismatch(image, size: length, expected: size, first: images[0])
            }
        }
        return TraceDirectory(path: path, images: images, imageSize: size, metadata: try readMetadata(path))
    }

    /// Reads image `index` into `buffer`, which holds at least ``imageSize`` bytes.
    public func readImage(_ index: Int, into buffer: UnsafeMutableRawBufferPointer) throws(TraceError) {
        precondition(images.indices.contains(index) && buffer.count >= imageSize, "image index or buffer out of range")
        let image = images[index]
        let fd = Glibc.open(image, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(image, reason: Self.reason(errno)) }
        defer { Glibc.close(fd) }
        var done = 0
        while done < imageSize {
            let got = pread(fd, buffer.baseAddress! + done, imageSize - done, off_t(done))
            if got < 0 {
                if errno == EINTR { continue }
                throw .unreadable(image, reason: Self.reason(errno))
            }
            if got == 0 { throw .shortRead(image, expected: imageSize, got: done) }
            done += got
        }
    }

    /// The entries of directory `path`.
    private static func listing(_ path: String) throws(TraceError) -> [String] {
        guard let directory = opendir(path) else { throw .unreadable(path, reason: reason(errno)) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The size of image `path`, after checking it is a regular file this process can open for reading.
    private static func checkedImage(_ path: String) throws(TraceError) -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .unreadable(path, reason: reason(errno)) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw .notAFile(path) }
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(path, reason: reason(errno)) }
        Glibc.close(fd)
        return Int(info.st_size)
    }

    private static func readMetadata(_ directory: String) throws(TraceError) -> Metadata {
        let path = (directory as NSString).appendingPathComponent(metadataName)
        guard FileManager.default.fileExists(atPath: path) else { return Metadata() }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(path, reason: "cannot read the file")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let metadata: Metadata
        do { metadata = try decoder.decode(Metadata.self, from: data) } catch {
            throw .badMetadata(
                path, reason: "expected a JSON object like {\"epoch_ms\": 50, \"source\": \"workload:guest\"}")
        }
        if let epochMs = metadata.epochMs, !(epochMs > 0 && epochMs.isFinite) {
            throw .badMetadata(path, reason: "epoch_ms must be a positive number, not \(epochMs)")
        }
        return metadata
    }

    static func reason(_ code: Int32) -> String {
        "\(SystemError(operation: "", errno: code).errnoName) (\(String(cString: strerror(code))))"
    }
}
