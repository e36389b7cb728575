import Foundation
import Testing

@testable import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// The backup's state directory: checkpoint, journal, replay, torn and damaged journals.
@Suite("Replica store")
struct ReplicaStoreTests {
    static let length = 64 * GuestMemory.pageSize

    /// Runs `epochs` epochs of random writes through an engine into a replica persisted in `directory`;
    /// returns the backup's bytes after each epoch.
    static func replicate(epochs: Int, into directory: String) throws -> [[UInt8]] {
        let primary = try GuestMemory.anonymous(length: length)
        let backup = try GuestMemory.anonymous(length: length)
        let replica = Replica(regions: [backup], geometry: try BlockGeometry(blockSize: 64))
        let store = try ReplicaStore(directory: directory)
        let engine = try PrimaryEngine(regions: [primary])
        let capture = EpochCapture()
        var random = SeededRandom(seed: 3)
        var states: [[UInt8]] = []
        for epoch in 0..<epochs {
            var dirty = DirtyPageSet()
            for page in 0..<64 where random.next() % 3 == 0 {
                primary.page(page).storeBytes(
                    of: random.next(), toByteOffset: 8 * Int(random.next() % 512), as: UInt64.self)
                dirty.append(page)
            }
            try engine.capture([dirty], into: capture)
            let (delta, _) = try engine.encode(capture)
            try replica.apply(delta)
            if epoch == 0 { try store.checkpoint(replica) } else { try delta.withUnsafeBytes { try store.append($0) } }
            states.append(Array(UnsafeRawBufferPointer(start: backup.base, count: length)))
        }
        return states
    }

    static func load(_ directory: String) throws -> (UInt64?, [UInt8]) {
        let memory = try GuestMemory.anonymous(length: length)
        let replica = Replica(regions: [memory], geometry: try BlockGeometry(blockSize: 64))
        let epoch = try ReplicaStore(directory: directory).load(into: replica)
        return (epoch, Array(UnsafeRawBufferPointer(start: memory.base, count: length)))
    }

    static func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "fgbi-store-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        return path
    }

    static func journal(in directory: String) throws -> String {
        let name = try #require(
            try FileManager.default.contentsOfDirectory(atPath: directory).first { $0.hasPrefix("journal-") })
        return directory + "/" + name
    }

    @Test func restartResumesAtTheLastJournaledEpoch() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let states = try Self.replicate(epochs: 6, into: directory)
        let (epoch, bytes) = try Self.load(directory)
        #expect(epoch == 5)
        #expect(bytes == states[5])
    }

    @Test func aTornLastRecordIsDroppedAndTheEpochBeforeItLoads() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let states = try Self.replicate(epochs: 6, into: directory)
        let journal = try Self.journal(in: directory)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: journal)[.size] as? Int)
        #expect(truncate(journal, off_t(size - 7)) == 0)
        let (epoch, bytes) = try Self.load(directory)
        #expect(epoch == 4)
        #expect(bytes == states[4])
        // The torn tail was cut off: the journal ends at the last whole record and takes appends again.
        let after = try #require(try FileManager.default.attributesOfItem(atPath: journal)[.size] as? Int)
        #expect(after < size - 7)
    }

    @Test func aDamagedRecordBeforeTheEndRefusesToLoad() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try Self.replicate(epochs: 6, into: directory)
        let journal = try Self.journal(in: directory)
        var contents = try [UInt8](Data(contentsOf: URL(fileURLWithPath: journal)))
        contents[20] ^= 0xFF // inside the first record's delta
        try Data(contents).write(to: URL(fileURLWithPath: journal))
        #expect(throws: FGBIError.self) { try Self.load(directory) }
    }

    @Test func aStateOfAnotherLayoutIsRefused() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try Self.replicate(epochs: 2, into: directory)
        let memory = try GuestMemory.anonymous(length: 2 * Self.length)
        let replica = Replica(regions: [memory], geometry: try BlockGeometry(blockSize: 64))
        #expect(throws: FGBIError.self) { try ReplicaStore(directory: directory).load(into: replica) }
    }

    @Test func anEmptyDirectoryHoldsNothing() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (epoch, bytes) = try Self.load(directory)
        #expect(epoch == nil)
        #expect(bytes.allSatisfy { $0 == 0 })
    }
}
