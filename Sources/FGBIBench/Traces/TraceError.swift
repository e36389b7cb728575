/// Why a trace directory could not be used, or written: each names the path and what to do.
public enum TraceError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Nothing exists at the path.
    case notFound(String)
    /// The path is not a directory.
    case notADirectory(String)
    /// The directory (or a file in it) could not be read; `reason` is the system's word for why.
    case unreadable(String, reason: String)
    /// The directory holds no `*.img` image.
    case noImages(String)
    /// An image is not a regular file (a directory, a device, a dangling link).
    case notAFile(String)
    /// An image is empty or not a whole number of pages.
    case badImageSize(String, size: Int, pageSize: Int)
    /// An image's size differs from the first image's.
    case sizeMismatch(String, size: Int, expected: Int, first: String)
    /// `trace.json` is not the metadata the format describes.
    case badMetadata(String, reason: String)
    /// An image changed size or vanished after the directory was opened.
    case shortRead(String, expected: Int, got: Int)
    /// The replay region's size differs from the images'.
    case regionMismatch(regionBytes: Int, imageBytes: Int)
    /// ``TraceReplayer/writeNext()`` before ``TraceReplayer/prepare()``.
    case notPrepared
    /// More epochs asked for than the trace holds.
    case tooFewImages(String, images: Int, epochsWanted: Int)
    /// A recording would mix its images with ones already in the directory.
    case directoryHoldsImages(String)
    /// A write failed while recording a trace.
    case writeFailed(String, reason: String)

    public var description: String {
        switch self {
        case .notFound(let path):
            return "trace directory \(path) does not exist"
        case .notADirectory(let path):
            return "\(path) is not a directory; a trace is a directory of *.img memory images"
        case .unreadable(let path, let reason):
            return "cannot read \(path): \(reason)"
        case .noImages(let path):
            return "trace directory \(path) holds no *.img images; a trace is a directory of equal-size raw memory "
                + "images named so they sort in epoch order (epoch-000000.img, epoch-000001.img, ...)"
        case .notAFile(let path):
            return "trace image \(path) is not a regular file"
        case .badImageSize(let path, let size, let pageSize):
            return size == 0
                ? "trace image \(path) is empty"
                : "trace image \(path) is \(size) bytes, not a whole number of \(pageSize)-byte pages"
        case .sizeMismatch(let path, let size, let expected, let first):
            return
                """
                trace image \(path) is \(size) bytes but \(first) is \(expected); every image of a trace has the \
                same size
                """
        case .badMetadata(let path, let reason):
            return "trace metadata \(path) is not valid: \(reason)"
        case .shortRead(let path, let expected, let got):
            return "trace image \(path) gave \(got) of its \(expected) bytes: it changed after the trace was opened"
        case .regionMismatch(let regionBytes, let imageBytes):
            return "the replay region is \(regionBytes) bytes but the trace's images are \(imageBytes)"
        case .notPrepared:
            return "invalid state: a trace replay writes its first image whole with prepare() before writeNext()"
        case .tooFewImages(let path, let images, let wanted):
            return
                "trace directory \(path) holds \(images) images, enough for \(max(images - 1, 0)) epochs, not \(wanted)"
        case .directoryHoldsImages(let path):
            return "\(path) already holds *.img images; record into a new or empty directory"
        case .writeFailed(let path, let reason):
            return "cannot write \(path): \(reason)"
        }
    }
}
