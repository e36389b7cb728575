import FGBI
import FGBIBench
import Foundation
import Testing

/// The trace directory reader takes good directories in epoch order and refuses bad ones with an error that
/// names the path and the rule, without crashing.
@Suite("Trace directories")
struct TraceDirectoryTests {
    let page = GuestMemory.pageSize

    private func write(_ path: String, bytes count: Int) {
        _ = FileManager.default.createFile(atPath: path, contents: Data(repeating: 7, count: count))
    }

    private func refusal(_ path: String) -> TraceError? {
        do {
            _ = try TraceDirectory.open(path)
            return nil
        } catch {
            return error
        }
    }

    @Test func opensImagesInNameOrderAndIgnoresOtherFiles() throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        for name in ["epoch-000002.img", "epoch-000000.img", "epoch-000010.img", "epoch-000001.img"] {
            write("\(directory)/\(name)", bytes: 2 * page)
        }
        write("\(directory)/notes.txt", bytes: 3)
        let trace = try TraceDirectory.open(directory)
        #expect(
            trace.images.map { ($0 as NSString).lastPathComponent }
                == ["epoch-000000.img", "epoch-000001.img", "epoch-000002.img", "epoch-000010.img"])
        #expect(trace.imageSize == 2 * page)
        #expect(trace.pageCount == 2)
        #expect(trace.epochCount == 3)
        #expect(trace.metadata == TraceDirectory.Metadata())
    }

    @Test func refusesAMissingPathAndAFile() throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        #expect(refusal("\(directory)/absent") == .notFound("\(directory)/absent"))
        write("\(directory)/plain", bytes: page)
        #expect(refusal("\(directory)/plain") == .notADirectory("\(directory)/plain"))
        #expect(refusal("\(directory)/absent")!.description.contains("does not exist"))
    }

    @Test func refusesADirectoryWithoutImages() throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        #expect(refusal(directory) == .noImages(directory))
        write("\(directory)/image.raw", bytes: page)
        write("\(directory)/\(TraceDirectory.metadataName)", bytes: 0)
        let error = try #require(refusal(directory))
        #expect(error == .noImages(directory))
        #expect(error.description.contains("holds no *.img images"))
    }

    @Test func refusesEmptyAndPartialPageImages() throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        write("\(directory)/a.img", bytes: 0)
        #expect(refusal(directory) == .badImageSize("\(directory)/a.img", size: 0, pageSize: page))
        #expect(refusal(directory)!.description.contains("is empty"))
        write("\(directory)/a.img", bytes: page + 100)
        #expect(refusal(directory) == .badImageSize("\(directory)/a.img", size: page + 100, pageSize: page))
        #expect(refusal(directory)!.description.contains("not a whole number of \(page)-byte pages"))
    }

    @Test func refusesImagesOfDifferentSizes() throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        write("\(directory)/a.img", bytes: 2 * page)
        write("\(directory)/b.img", bytes: 2 * page)
        write("\(directory)/c.img", bytes: 3 * page)
        let error = try #require(refusal(directory))
        #expect(
            error
                == .sizeMismatch("\(directory)/c.img", size: 3 * page, expected: 2 * page, first: "\(directory)/a.img"))
        #expect(error.description.contains("c.img is \(3 * page) bytes but"))
    }

    @Test func refusesUnreadableAndIrregularImages() throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        write("\(directory)/a.img", bytes: page)
        try FileManager.default.createSymbolicLink(
            atPath: "\(directory)/b.img", withDestinationPath: "\(directory)/gone")
        let dangling = try #require(refusal(directory))
        #expect(dangling.description.hasPrefix("cannot read \(directory)/b.img: ENOENT"), "\(dangling)")
        try FileManager.default.removeItem(atPath: "\(directory)/b.img")
        try FileManager.default.createDirectory(atPath: "\(directory)/b.img", withIntermediateDirectories: false)
        #expect(refusal(directory) == .notAFile("\(directory)/b.img"))
        try FileManager.default.removeItem(atPath: "\(directory)/b.img")
        if geteuid() != 0 {
            // Permissions do not stop root, so this part only runs for other users.
            write("\(directory)/b.img", bytes: page)
            try FileManager.default.setAttributes([.posixPermissions: 0], ofItemAtPath: "\(directory)/b.img")
            #expect(refusal(directory)?.description.contains("EACCES") == true)
        }
    }

    @Test func refusesBadMetadata() throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        write("\(directory)/a.img", bytes: page)
        let metadata = "\(directory)/\(TraceDirectory.metadataName)"
        _ = FileManager.default.createFile(atPath: metadata, contents: Data("[1, 2".utf8))
        #expect(refusal(directory)?.description.contains("trace metadata \(metadata) is not valid") == true)
        _ = FileManager.default.createFile(atPath: metadata, contents: Data(#"{"epoch_ms": -5}"#.utf8))
        #expect(refusal(directory)?.description.contains("epoch_ms must be a positive number") == true)
        _ = FileManager.default.createFile(atPath: metadata, contents: Data(#"{"epoch_ms": 25, "source": "x"}"#.utf8))
        #expect(try TraceDirectory.open(directory).metadata == TraceDirectory.Metadata(epochMs: 25, source: "x"))
    }

    @Test func replayerChecksItsRegionAndOrder() throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        try TraceFixtures.writeTrace(TraceFixtures.images(pages: 4, count: 2, seed: 1), to: directory)
        let trace = try TraceDirectory.open(directory)
        let wrong = try GuestMemory.anonymous(length: 8 * page)
        #expect(throws: TraceError.regionMismatch(regionBytes: 8 * page, imageBytes: 4 * page)) {
            try TraceReplayer(memory: wrong, trace: trace)
        }
        let replayer = try TraceReplayer(memory: try GuestMemory.anonymous(length: 4 * page), trace: trace)
        #expect(throws: TraceError.notPrepared) { try replayer.writeNext() }
        try replayer.prepare()
        #expect(try replayer.writeNext() == true)
        #expect(try replayer.writeNext() == false)
        #expect(replayer.remaining == 0)

        var run = TraceRun(source: .directory(trace))
        run.epochs = 5
        #expect(throws: TraceError.tooFewImages(directory, images: 2, epochsWanted: 5)) { try run.resolvedEpochs() }
    }

    @Test func writerRefusesToMixRecordings() throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        try TraceFixtures.writeTrace(TraceFixtures.images(pages: 2, count: 2, seed: 2), to: directory)
        #expect(throws: TraceError.directoryHoldsImages(directory)) { try TraceDirectoryWriter(path: directory) }
        let fresh = "\(directory)/nested/new"
        let writer = try TraceDirectoryWriter(path: fresh)
        let image = [UInt8](repeating: 1, count: 2 * page)
        try image.withUnsafeBytes { try writer.append($0) }
        let other = [UInt8](repeating: 1, count: 3 * page)
        #expect(throws: TraceError.self) { try other.withUnsafeBytes { try writer.append($0) } }
        #expect(TraceDirectoryWriter.imageName(7) == "epoch-000007.img")
    }

    /// Images are a process's memory: a directory the writer makes and every image in it are its owner's
    /// alone, whatever the umask, and so is an image written over a file that was readable by others.
    @Test func imagesAreReadableByTheirOwnerOnly() throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        let fresh = "\(directory)/made"
        let previous = umask(0)
        defer { umask(previous) }
        let writer = try TraceDirectoryWriter(path: fresh)
        let image = [UInt8](repeating: 1, count: page)
        _ = FileManager.default.createFile(
            atPath: "\(fresh)/\(TraceDirectoryWriter.imageName(1))", contents: nil,
            attributes: [.posixPermissions: 0o644])
        for _ in 0..<2 { try image.withUnsafeBytes { try writer.append($0) } }
        func mode(_ path: String) throws -> Int {
            try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        }
        #expect(try mode(fresh) == 0o700)
        for index in 0..<2 {
            #expect(try mode("\(fresh)/\(TraceDirectoryWriter.imageName(index))") == 0o600)
        }
    }
}
