import FGBI
import FGBIDiagnostics
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Writes a trace directory (Docs/TRACE.md): images named `epoch-000000.img`, `epoch-000001.img`, ... in
/// the order they are appended, then `trace.json`.
public final class TraceDirectoryWriter {
    /// The directory written.
    public let path: String
    /// Images written so far.
    public private(set) var imageCount = 0
    private var imageSize: Int?

    /// The file name of image `index`: zero-padded so names sort in epoch order.
    public static func imageName(_ index: Int) -> String {
        let digits = String(index)
        return "epoch-" + String(repeating: "0", count: max(6 - digits.count, 0)) + digits + "."
            + TraceDirectory.imageExtension
    }

    /// Creates `path` (and missing parents) or reuses an existing directory that holds no `*.img` file.
    public init(path: String) throws(TraceError) {
        self.path = path
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw .notADirectory(path) }
            let entries: [String]
            do { entries = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
                throw .unreadable(path, reason: "cannot list the directory")
            }
            if entries.contains(where: { $0.hasSuffix("." + TraceDirectory.imageExtension) }) {
                throw .directoryHoldsImages(path)
            }
        } else {
            // Readable by its owner only: the images are a process's memory.
            do {
                try FileManager.default.createDirectory(
                    atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw .writeFailed(path, reason: "cannot create the directory")
            }
        }
    }

    /// Appends an image of `bytes` (the same size as every earlier image, a whole number of pages).
    public func append(_ bytes: UnsafeRawBufferPointer) throws(TraceError) {
        let file = (path as NSString).appendingPathComponent(Self.imageName(imageCount))
        guard bytes.count > 0, bytes.count % GuestMemory.pageSize == 0 else {
            throw .badImageSize(file, size: bytes.count, pageSize: GuestMemory.pageSize)
        }
        if let imageSize, imageSize != bytes.count {
            throw .sizeMismatch(file, size: bytes.count, expected: imageSize, first: Self.imageName(0))
        }
        do {
            let output = try OutputFile(path: file, ownerOnly: true)
            try output.write(bytes)
            try output.close()
        } catch {
            throw .writeFailed(file, reason: error.description)
        }
        imageSize = bytes.count
        imageCount += 1
    }

    /// Appends a snapshot of `memory`.
    public func append(_ memory: GuestMemory) throws(TraceError) {
        try append(UnsafeRawBufferPointer(memory.bytes))
    }

    /// Writes `trace.json`.
    public func finish(_ metadata: TraceDirectory.Metadata) throws(TraceError) {
        let file = (path as NSString).appendingPathComponent(TraceDirectory.metadataName)
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            let output = try OutputFile(path: file)
            try output.write(String(decoding: try encoder.encode(metadata), as: UTF8.self) + "\n")
            try output.close()
        } catch let error as SystemError {
            throw .writeFailed(file, reason: error.description)
        } catch {
            throw .writeFailed(file, reason: "\(error)")
        }
    }
}
