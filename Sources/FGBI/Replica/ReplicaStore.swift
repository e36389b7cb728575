import CSupport
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A backup's committed replica on disk, so a backup that restarts loses nothing it acknowledged.
///
/// A state directory holds three kinds of file:
/// - `image-<epoch>`: the regions' bytes back to back, as they were at a committed epoch (a checkpoint);
/// - `journal-<epoch>`: every epoch delta committed after that checkpoint, appended (and synced) before
///   the backup acknowledges it, each as `"FGBJ"`, length (u32), the delta (which carries its own checksum);
/// - `state.json`: which image and journal are current, the layout, and each region's XXH3-64 in the image;
/// - `term`: the newest fencing term of a primary this backup accepted (decimal; only with a coordinator),
///   so a restarted backup still refuses primaries of older terms when it cannot ask the coordinator.
///
/// `state.json` also says the fencing term of the primary whose epoch the replica holds: a backup writes a
/// checkpoint for the first epoch of each new term, so the term and the epoch become durable together.
///
/// A checkpoint writes the new image and journal first and then renames `state.json` into place: the rename
/// is the commit point, so a crash leaves the old state or the new one whole. Loading reads the image,
/// checks its hashes, and replays the journal through `Replica.apply`; a record cut short at
/// the end of the journal (a crash while appending, before the ack went out) is dropped, and a damaged
/// record before the end stops the load with an error rather than silently losing acknowledged epochs.
public final class ReplicaStore: @unchecked Sendable {
    public let directory: String
    /// Whether each journal append is followed by fdatasync (the ack then means "on disk").
    public let syncsEachEpoch: Bool
    /// When the journal outgrows this many bytes, the next commit writes a checkpoint instead.
    public let journalLimit: Int
    private var journal: Int32 = -1
    private var state: State?
    /// Bytes in the current journal.
    public private(set) var journalBytes = 0
    /// The newest fencing term recorded (``recordTerm(_:)``), 0 when none.
    public private(set) var highestTerm: UInt64 = 0
    /// The term of the primary whose epoch the replica holds (recorded by ``checkpoint(_:heldTerm:)``), 0 when
    /// none or unknown.
    public var heldTerm: UInt64 { state?.heldTerm ?? 0 }

    struct State: Codable {
        var epoch: UInt64
        var image: String
        var journal: String
        var blockSize: Int
        var pageSize: Int
        var regionLengths: [Int]
        var xxh3: [String]
        /// Absent in state files of older builds.
        var heldTerm: UInt64?
    }

    /// Opens (creating if needed) the state directory; nothing is read until ``load(into:)``.
    public init(directory: String, syncsEachEpoch: Bool = true, journalLimit: Int = 256 << 20) throws {
        self.directory = directory
        self.syncsEachEpoch = syncsEachEpoch
        self.journalLimit = journalLimit
        if mkdir(directory, 0o700) != 0, errno != EEXIST {
            throw SystemError(
                operation: "mkdir(\(directory))", errno: errno, hint: "the state directory must be creatable")
        }
        // It holds the replica and the fencing term: another user must not read it or plant files in it.
        var info = stat()
        try Syscall.libc("stat(\(directory))") { stat(directory, &info) }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw FGBIError.invalidArgument("state directory \(directory) is not a directory")
        }
        try PrivateFile.check(owner: info.st_uid, mode: info.st_mode, path: directory, what: "state directory")
        if let text = try? String(contentsOfFile: directory + "/term", encoding: .utf8) {
            guard let term = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw FGBIError.invalidState("\(directory)/term holds '\(text.prefix(40))', not a fencing term")
            }
            highestTerm = term
        }
    }

    /// Makes `term` durable as the newest fencing term accepted, if it is newer than the recorded one.
    public func recordTerm(_ term: UInt64) throws {
        guard term > highestTerm else { return }
        let bytes = Array("\(term)\n".utf8)
        try DurableFile.replace(directory + "/term") { fd in
            try bytes.withUnsafeBytes { try DurableFile.writeAll(fd, $0, what: "term") }
        }
        highestTerm = term
    }

    deinit { if journal >= 0 { close(journal) } }

    /// The epoch the store holds (after ``load(into:)`` or a checkpoint), or nil when it holds none.
    public var epoch: UInt64? { state?.epoch }

    /// Loads the stored replica into `replica` (whose layout must match) and returns its epoch, or nil when
    /// the directory holds no state yet (the replica is left as it is then).
    ///
    /// - Throws: ``FGBIError/invalidState(_:)`` for a layout mismatch, an image whose hashes do not match,
    ///   or a damaged journal record; ``SystemError`` for I/O.
    @discardableResult
    public func load(into replica: Replica) throws -> UInt64? {
        let statePath = directory + "/state.json"
        guard access(statePath, F_OK) == 0 else { return nil }
        let data = try Data(contentsOf: URL(fileURLWithPath: statePath))
        let state: State
        do {
            state = try JSONDecoder().decode(State.self, from: data)
        } catch {
            throw FGBIError.invalidState("\(statePath) is not a state file FGBI wrote: \(error)")
        }
        guard state.blockSize == replica.geometry.blockSize, state.pageSize == replica.geometry.pageSize,
            state.regionLengths == replica.regions.map(\.length)
        else {
            throw FGBIError.invalidState(
                "\(statePath) holds \(state.regionLengths) bytes in \(state.blockSize)-byte blocks; "
                    + "this backup has \(replica.regions.map(\.length)) in \(replica.geometry.blockSize)-byte blocks")
        }
        try readImage(directory + "/" + state.image, into: replica.regions)
        let hashes = replica.regions.map { String(CSupport_xxh3_64($0.base, $0.length), radix: 16) }
        guard hashes == state.xxh3 else {
            throw FGBIError.invalidState(
                "\(directory)/\(state.image) does not match the hashes in state.json: the image is damaged")
        }
        replica.adopt(epoch: state.epoch)
        self.state = state
        try replay(directory + "/" + state.journal, into: replica)
        return replica.lastEpoch
    }

    private func readImage(_ path: String, into regions: [GuestMemory]) throws {
        let fd = try Syscall.libc(
            "open(\(path))", hint: { $0 == ENOENT ? "state.json names an image that is missing" : "" }
        ) {
            open(path, O_RDONLY | O_CLOEXEC)
        }
        defer { close(fd) }
        var fileOffset = 0
        for region in regions {
            var offset = 0
            while offset < region.length {
                let n = try Syscall.libc("pread(\(path))") {
                    pread(fd, region.base + offset, min(region.length - offset, 1 << 30), off_t(fileOffset + offset))
                }
                guard n > 0 else { throw FGBIError.invalidState("\(path) is shorter than the regions it should hold") }
                offset += n
            }
            fileOffset += region.length
        }
    }

    /// Applies the journal's records in order; drops a torn last record by truncating the file there.
    private func replay(_ path: String, into replica: Replica) throws {
        // No O_CREAT: a journal that state.json names and that is gone means acknowledged epochs are lost.
        journal = try Syscall.libc(
            "open(\(path))", hint: { $0 == ENOENT ? "state.json names a journal that is missing" : "" }
        ) {
            open(path, O_RDWR | O_CLOEXEC)
        }
        let contents = try Data(contentsOf: URL(fileURLWithPath: path))
        var offset = 0
        var damage: String?
        contents.withUnsafeBytes { bytes in
            while offset < bytes.count {
                guard bytes.count - offset >= 8 else { return } // torn header
                let magic = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
                let length = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)))
                guard magic == Self.recordMagic else {
                    damage = "no record marker at byte \(offset)"
                    return
                }
                guard bytes.count - offset - 8 >= length else { return } // torn body
                do {
                    try replica.apply(UnsafeRawBufferPointer(rebasing: bytes[(offset + 8)..<(offset + 8 + length)]))
                } catch {
                    // A complete record that does not apply is damage unless it is the last one (torn write).
                    if offset + 8 + length < bytes.count { damage = "record at byte \(offset): \(error)" }
                    return
                }
                offset += 8 + length
            }
        }
        if let damage {
            throw FGBIError.invalidState(
                "\(path) is damaged (\(damage)); the epochs after \(replica.lastEpoch.map(String.init) ?? "none") "
                    + "cannot be recovered from it. Move the state directory aside to start empty.")
        }
        if offset < contents.count {
            try Syscall.libc("ftruncate(\(path))") { ftruncate(journal, off_t(offset)) }
        }
        journalBytes = offset
        _ = lseek(journal, off_t(offset), SEEK_SET)
    }

    private static let recordMagic: UInt32 = 0x4A42_4746 // "FGBJ" in little-endian order

    /// Whether the next committed epoch must be written as a checkpoint rather than appended: the store
    /// holds nothing yet, or the journal outgrew its limit.
    public var needsCheckpoint: Bool { state == nil || journalBytes >= journalLimit }

    /// Appends one committed epoch's delta to the journal (synced when ``syncsEachEpoch``).
    public func append(_ delta: UnsafeRawBufferPointer) throws {
        guard journal >= 0 else {
            throw FGBIError.invalidState("the replica store has no journal: write a checkpoint first")
        }
        guard delta.count <= Int(UInt32.max) else {
            throw FGBIError.invalidArgument("a journal record holds at most 4 GiB")
        }
        var header: [UInt8] = []
        appendLittleEndian(Self.recordMagic, to: &header)
        appendLittleEndian(UInt32(delta.count), to: &header)
        do {
            try header.withUnsafeBytes { try DurableFile.writeAll(journal, $0, what: "journal") }
            let half = delta.count / 2
            try DurableFile.writeAll(journal, UnsafeRawBufferPointer(rebasing: delta[..<half]), what: "journal")
            FaultPoints.reach(.backupPersistAppend)
            try DurableFile.writeAll(journal, UnsafeRawBufferPointer(rebasing: delta[half...]), what: "journal")
            FaultPoints.reach(.backupPersistSync)
            if syncsEachEpoch {
                try Syscall.libc("fdatasync(journal)", hint: DurableFile.diskHint) { fdatasync(journal) }
            }
        } catch {
            // Cut a partial record off, so a later append does not follow garbage.
            _ = ftruncate(journal, off_t(journalBytes))
            _ = lseek(journal, off_t(journalBytes), SEEK_SET)
            throw error
        }
        journalBytes += 8 + delta.count
    }

    /// Writes the replica's committed state as a new checkpoint with an empty journal, then removes the old
    /// files. The replica must hold a committed epoch and no uncommitted pre-copy; `heldTerm` is the fencing
    /// term of the primary that produced that epoch (0: none or unknown).
    public func checkpoint(_ replica: Replica, heldTerm: UInt64 = 0) throws {
        guard let epoch = replica.lastEpoch, !replica.holdsUncommittedChanges else {
            throw FGBIError.invalidState("a checkpoint needs a committed epoch")
        }
        // A name no earlier checkpoint used, so the current files are never overwritten before the switch.
        let stamp = "\(epoch)-\(MonotonicClock.nanoseconds())"
        let image = "image-\(stamp)"
        let journalName = "journal-\(stamp)"
        try DurableFile.create(directory + "/" + image) { fd in
            for region in replica.regions {
                try DurableFile.writeAll(
                    fd, UnsafeRawBufferPointer(start: region.base, count: region.length), what: image)
            }
        }
        try DurableFile.create(directory + "/" + journalName) { _ in }
        let newState = State(
            epoch: epoch, image: image, journal: journalName, blockSize: replica.geometry.blockSize,
            pageSize: replica.geometry.pageSize, regionLengths: replica.regions.map(\.length),
            xxh3: replica.regions.map { String(CSupport_xxh3_64($0.base, $0.length), radix: 16) },
            heldTerm: heldTerm)
        let encoded = try JSONEncoder().encode(newState)
        try DurableFile.replace(directory + "/state.json") { fd in
            try encoded.withUnsafeBytes { try DurableFile.writeAll(fd, $0, what: "state.json") }
        }
        let old = state
        state = newState
        if journal >= 0 { close(journal) }
        journal = -1
        journal = try Syscall.libc("open(\(journalName))") {
            open(directory + "/" + journalName, O_WRONLY | O_APPEND | O_CLOEXEC)
        }
        journalBytes = 0
        if let old {
            unlink(directory + "/" + old.image)
            unlink(directory + "/" + old.journal)
        }
    }
}
