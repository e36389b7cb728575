import Foundation
import Synchronization
import Testing

@testable import FGBI

/// stop()'s own timeout: a backup that stays connected and alive (heartbeats) but never acknowledges the
/// final epoch. No other failure is recorded, so only the final-epoch wait can report it.
@Suite("Final epoch", .serialized)
struct FinalEpochTests {
    /// A minimal backup speaking the protocol: acknowledges epochs while `acknowledging` is set, sends a
    /// heartbeat after every frame or receive timeout, applies nothing.
    final class SilentBackup: @unchecked Sendable {
        let listener: Socket
        let acknowledging = Atomic<Bool>(true)
        let done = Atomic<Bool>(false)
        private let finished = DispatchSemaphore(value: 0)

        init(regionLength: Int) throws {
            listener = try Socket.listen(on: Endpoint(host: "127.0.0.1", port: 0))
            Thread.detachNewThread { [self] in
                defer { finished.signal() }
                guard let (socket, peer, _) = try? listener.accept() else { return }
                let connection = FrameConnection(socket: socket, peer: peer, isPrimary: false, maximumPayload: 64 << 20)
                let layout = SessionSetup.Layout(
                    blockSize: 64, pageSize: GuestMemory.pageSize, regionLengths: [regionLength])
                guard
                    (try? SessionSetup.openAsBackup(
                        connection, layout: layout, key: nil, peerIsLoopback: true, nextEpoch: 0)) != nil
                else { return }
                connection.setReceiveTimeout(milliseconds: 50)
                while !done.load(ordering: .acquiring) {
                    if let frame = try? connection.receive(), frame.type == .epoch,
                        acknowledging.load(ordering: .acquiring)
                    {
                        let epoch = frame.payload.withUnsafeBytes { try? DeltaHeader.read($0).epoch }
                        var ack: [UInt8] = []
                        appendLittleEndian(epoch ?? 0, to: &ack)
                        try? connection.send(.ack, ack)
                    }
                    try? connection.send(.heartbeat, [UInt8](repeating: 0, count: 8))
                }
                connection.close()
            }
        }

        func finish() {
            done.store(true, ordering: .releasing)
            listener.shutdownBoth()
            finished.wait()
        }
    }

    @Test func stopReportsAFinalEpochThatIsNeverAcknowledged() throws {
        let length = 4 << 20
        let backup = try SilentBackup(regionLength: length)
        defer { backup.finish() }
        let memory = try GuestMemory.anonymous(length: length)
        var configuration = PrimaryConfiguration.onThisKernel(
            backup: Endpoint(host: "127.0.0.1", port: backup.listener.localPort))
        configuration.backupTimeout = .milliseconds(800)
        let primary = try Primary(regions: [memory], configuration: configuration)
        try primary.start()
        let synchronised = try #require(primary.statistics.lastSynchronisation?.epoch)
        #expect(primary.waitForCommit(synchronised + 2, timeout: .seconds(10)))
        backup.acknowledging.store(false, ordering: .releasing)
        memory.base.storeBytes(of: 0xF1A1, as: UInt64.self)
        let started = ContinuousClock.now
        #expect(throws: WireError.timedOut(milliseconds: 800)) { try primary.stop() }
        #expect(ContinuousClock.now - started < .seconds(5), "stop() gave up after its timeout")
        let committed = try #require(primary.committedEpoch)
        #expect(
            committed < (primary.statistics.lastCapturedEpoch ?? 0), "the unacknowledged final epoch is not committed")
        #expect(primary.failure != nil, "the timeout is recorded as why replication stopped")
    }
}
