import FGBI
import Testing

/// ``Backup/start()``: serving on a thread of its own, and the outcome asked for with and without waiting.
@Suite("Backup service")
struct BackupServiceTests {
    @Test func aServiceWithNoPrimaryServesUntilStopped() throws {
        let memory = try GuestMemory.anonymous(length: 1 << 20)
        let backup = try Backup(
            regions: [memory], configuration: BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0)))
        let service = try backup.start()
        #expect(try service.outcome(timeout: .milliseconds(20)) == nil)
        #expect(!service.isFinished)
        #expect(try service.stop() == .primaryFinished(lastEpoch: nil))
        #expect(service.isFinished)
        // Asked again, the outcome is the same, at once.
        #expect(try service.outcome(timeout: .zero) == .primaryFinished(lastEpoch: nil))
        #expect(try service.outcome() == .primaryFinished(lastEpoch: nil))
    }

    @Test func aConfigurationMatchingAPrimaryTakesItsKeyNamesAndBlockSize() throws {
        var primary = PrimaryConfiguration(backup: Endpoint(host: "192.0.2.1", port: 7070))
        primary.key = try PresharedKey(bytes: [UInt8](repeating: 7, count: 32))
        primary.encrypt = true
        primary.guestName = "db1"
        primary.clusterName = "west"
        primary.engine.blockSize = 256
        let configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0), matching: primary)
        #expect(configuration.key != nil)
        #expect(configuration.requireEncryption)
        #expect(!configuration.allowPlaintext)
        #expect(configuration.guestName == "db1" && configuration.clusterName == "west")
        #expect(configuration.blockSize == 256)
        let backup = try Backup(regions: [try GuestMemory.anonymous(length: 1 << 20)], configuration: configuration)
        #expect(backup.replica.geometry.blockSize == 256)
        backup.stop()
    }

    @Test func anUnsupportedBlockSizeIsRefusedWithAClearError() throws {
        var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
        configuration.blockSize = 100
        #expect(throws: FGBIError.self) {
            _ = try Backup(regions: [try GuestMemory.anonymous(length: 1 << 20)], configuration: configuration)
        }
    }
}
