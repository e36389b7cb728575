import Foundation
import Testing

@testable import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// The state directory and the failover image are written by a process that may run as root: a file or
/// link another user plants where they are written must never be followed, and the state directory must be
/// private. Each test fails without its defence (Docs/SECURITY.md).
@Suite("State file safety")
struct StateFileSafetyTests {
    private static func scratch(_ name: String) -> String {
        NSTemporaryDirectory() + "fgbi-state-safety-\(getpid())-\(name)-\(UInt32.random(in: 0...UInt32.max))"
    }

    private static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    @Test func aStateDirectoryOpenToOthersIsRefused() throws {
        let directory = Self.scratch("open")
        mkdir(directory, 0o755)
        chmod(directory, 0o755)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let error = #expect(throws: FGBIError.self) { try ReplicaStore(directory: directory) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("chmod 700 \(directory)"))
        chmod(directory, 0o700)
        _ = try ReplicaStore(directory: directory)
    }

    /// A failover image goes only into a directory no one else can write: elsewhere another user could swap
    /// the image before `--on-failover` reads it.
    @Test func anImageDirectoryOthersCanWriteIsRefused() throws {
        let directory = Self.scratch("image")
        mkdir(directory, 0o777)
        chmod(directory, 0o777)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
        configuration.imagePath = directory + "/replica.img"
        let memory = try GuestMemory.anonymous(length: 1 << 20)
        let error = #expect(throws: FGBIError.self) {
            _ = try Backup(regions: [memory], geometry: try BlockGeometry(), configuration: configuration)
        }
        #expect("\(error.map { "\($0)" } ?? "")".contains("chmod go-w \(directory)"), "\(String(describing: error))")
        configuration.imagePath = "/tmp/replica.img"
        #expect(throws: FGBIError.self) {
            _ = try Backup(regions: [memory], geometry: try BlockGeometry(), configuration: configuration)
        }
        chmod(directory, 0o755)
        configuration.imagePath = directory + "/replica.img"
        _ = try Backup(regions: [memory], geometry: try BlockGeometry(), configuration: configuration)
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to give the directory to another user"))
    func aStateDirectoryOfAnotherUserIsRefused() throws {
        let directory = Self.scratch("foreign")
        mkdir(directory, 0o700)
        chown(directory, 65534, 65534)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let error = #expect(throws: FGBIError.self) { try ReplicaStore(directory: directory) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("belongs to user 65534"))
    }

    @Test func linksPlantedAtTheOldTemporaryNamesAreNeverFollowed() throws {
        let directory = Self.scratch("links")
        let victim = Self.scratch("victim")
        defer {
            try? FileManager.default.removeItem(atPath: directory)
            unlink(victim)
        }
        let store = try ReplicaStore(directory: directory)
        // Before, the term, the state and the image were written through "NAME.tmp", following what was there.
        symlink(victim, directory + "/term.tmp")
        try store.recordTerm(7)
        #expect(!Self.exists(victim), "recording the term wrote through a planted link")
        #expect(try String(contentsOfFile: directory + "/term", encoding: .utf8) == "7\n")

        let memory = try GuestMemory.anonymous(length: 4 * GuestMemory.pageSize)
        memset(memory.base, 0x3C, memory.length)
        let image = directory + "/replica.img"
        symlink(victim, image + ".tmp")
        symlink(victim, image + ".json.tmp")
        try ReplicaImage.write([memory], geometry: try BlockGeometry(), epoch: 4, to: image)
        #expect(!Self.exists(victim), "writing the image wrote through a planted link")
        let written = try Data(contentsOf: URL(fileURLWithPath: image))
        #expect(written.count == memory.length && written.allSatisfy { $0 == 0x3C })
        #expect(try String(contentsOfFile: image + ".json", encoding: .utf8).contains("\"epoch\": 4"))
        // No temporary file is left behind.
        let left = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix(".") }
        #expect(left.isEmpty, "\(left)")
    }

    @Test func anExistingFileIsNeverTakenOverWhenANewOneIsCreated() throws {
        let path = Self.scratch("exclusive")
        let victim = Self.scratch("exclusive-victim")
        defer {
            unlink(path)
            unlink(victim)
        }
        symlink(victim, path)
        #expect(throws: SystemError.self) { try DurableFile.create(path) { _ in } }
        #expect(!Self.exists(victim))
    }
}
