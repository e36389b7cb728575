import FGBIBench
import Foundation
import Testing

@testable import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// The high-availability cycle in one process (Docs/RELIABILITY.md, promise 5d): a backup takes over as the
/// primary of its replica, numbering on from its epoch, and its former primary rejoins as its backup on
/// the memory it still holds, receiving only what differs; a former primary's memory is never failed over to.
@Suite("Take over and rejoin", .serialized)
struct TakeoverTests {
    typealias Served = LoopbackReplicationTests.Served

    /// The guest's writes: one word in each of `pages` pseudo-random pages.
    static func scribble(_ memory: GuestMemory, seed: UInt64, pages: Int) {
        var random = SeededRandom(seed: seed)
        for _ in 0..<pages {
            let page = Int(random.next() % UInt64(memory.pageCount))
            let word = Int(random.next() % UInt64(GuestMemory.pageSize / 8))
            memory.base.storeBytes(
                of: random.next(), toByteOffset: page * GuestMemory.pageSize + word * 8, as: UInt64.self)
        }
    }

    static func backupConfiguration() -> BackupConfiguration {
        var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
        configuration.primaryTimeout = .seconds(5)
        return configuration
    }

    @Test func alternatingTakeoversKeepEveryCommittedWriteAndResynchroniseOnlyWhatDiffers() throws {
        let length = 16 << 20
        let nodes = [try GuestMemory.anonymous(length: length), try GuestMemory.anonymous(length: length)]
        for node in nodes { try node.prefault() }
        SyntheticWorkload.fillInitial(nodes[0], seed: 7)
        var primaryNode = 0
        var held: HeldContent?
        var continuesAfter: UInt64?
        var lastCommitted: UInt64?
        for round in 0..<6 {
            let backupNode = 1 - primaryNode
            let backup = try Backup(
                regions: [nodes[backupNode]], configuration: Self.backupConfiguration(), holding: held)
            if held != nil {
                #expect(backup.lastEpoch == nil, "round \(round): a former primary's memory is not vouched for")
            }
            let served = Served(backup)
            var configuration = PrimaryConfiguration.onThisKernel(
                backup: Endpoint(host: "127.0.0.1", port: backup.port))
            configuration.continuesAfterEpoch = continuesAfter
            configuration.epochInterval = .milliseconds(10)
            let primary = try Primary(regions: [nodes[primaryNode]], configuration: configuration)
            try primary.start()
            let synchronisation = try #require(primary.statistics.lastSynchronisation)
            #expect(
                primary.waitForCommit(synchronisation.epoch, timeout: .seconds(60)),
                "round \(round): the synchronisation committed")
            let synchronised = primary.statistics
            if let lastCommitted {
                #expect(synchronisation.epoch > lastCommitted, "round \(round): epochs grow across the takeover")
                #expect(synchronised.lastSynchronisation?.resynchronised == true)
                let sent = synchronised.precopyBytes + synchronised.bytesSent
                #expect(sent < length / 10, "round \(round): the rejoin sent \(sent) bytes for a \(length)-byte region")
            }
            #expect(backup.lastEpoch != nil, "round \(round): vouched for once an epoch of the new primary committed")
            // The guest writes under replication, then the primary halts at its last committed epoch.
            Self.scribble(nodes[primaryNode], seed: UInt64(round), pages: 200)
            let last = try #require(try primary.stop())
            #expect(try served.outcome() == .primaryFinished(lastEpoch: last))
            #expect(
                memcmp(nodes[0].base, nodes[1].base, length) == 0,
                "round \(round): the backup equals the primary at epoch \(last)")
            // Writes after the last committed epoch, never confirmed: the former primary rejoins holding them.
            Self.scribble(nodes[primaryNode], seed: 1_000 + UInt64(round), pages: 50)
            // The backup takes over at its epoch; the former primary rejoins, with or without its epoch number.
            held = .formerPrimary(lastEpoch: round % 2 == 0 ? last : nil)
            continuesAfter = last
            lastCommitted = last
            primaryNode = backupNode
        }
    }

    /// A backup holding content loses a primary that read its page hashes and sent nothing: with a committed
    /// epoch it fails over at that epoch; with a former primary's memory it stands down, its memory unchanged.
    @Test(arguments: [HeldContent.committedEpoch(7), .formerPrimary(lastEpoch: 7), .formerPrimary(lastEpoch: nil)])
    func aFormerPrimaryNeverFailsOverToMemoryNoEpochConfirmed(held: HeldContent) throws {
        let length = 1 << 20
        let memory = try GuestMemory.anonymous(length: length)
        Self.scribble(memory, seed: 3, pages: 64)
        let before = [UInt8](UnsafeRawBufferPointer(start: memory.base, count: length))
        var configuration = Self.backupConfiguration()
        configuration.primaryTimeout = .milliseconds(300)
        let backup = try Backup(regions: [memory], configuration: configuration, holding: held)
        let served = Served(backup)

        let connection = try FrameConnection(
            socket: Socket.connect(to: Endpoint(host: "127.0.0.1", port: backup.port)),
            peer: "backup", isPrimary: true, maximumPayload: 64 << 10)
        connection.setReceiveTimeout(milliseconds: 5000)
        let hello = Hello(
            mode: .fgbi, wantsAuthentication: false, blockSize: 64, pageSize: GuestMemory.pageSize,
            regionLengths: [length], nonce: randomBytes(32))
        let welcome = try SessionSetup.openAsPrimary(connection, hello: hello, key: nil)
        let expectedNext: UInt64 = held == .formerPrimary(lastEpoch: nil) ? 1 : 8
        #expect(welcome.nextEpoch == expectedNext, "the handshake says what the regions hold")
        var summary = ReplicaSummary.Assembler(pageCounts: [memory.pageCount])
        while !summary.isComplete {
            let frame = try connection.receive()
            if frame.type == .summary { try summary.add(frame.payload) }
        }
        connection.close()

        let outcome = try served.outcome()
        switch held {
        case .committedEpoch(let epoch):
            guard case .failedOver(epoch, _) = outcome else {
                Issue.record("a backup holding committed epoch \(epoch) should fail over at it: \(outcome)")
                return
            }
        case .formerPrimary:
            guard case .stoodDown(nil, let reason) = outcome else {
                Issue.record("a former primary's memory was taken over: \(outcome)")
                return
            }
            #expect(reason.contains("no committed epoch"), "\(reason)")
        }
        #expect(memcmp(memory.base, before, length) == 0, "the held memory is unchanged")
    }
}
