import FGBI
import Foundation
import Synchronization

/// One node of the LMDB example's high-availability cycle (`fgbi example lmdb --role node`): the backup of
/// its peer until the peer is lost, then the primary of what it holds, replicating to the peer when the peer
/// comes back as its backup.
///
/// The database lives in one file on tmpfs, which outlives the node's process. As a backup the node maps
/// that file (``GuestMemory/file(path:length:)``) as its replica: a node restarted after a crash holds its
/// former primary's memory (``HeldContent/formerPrimary(lastEpoch:)``) and receives only the pages that
/// differ. When its primary is lost, the replica is the last committed epoch: the node opens it with LMDB,
/// checks it against the history, and goes on committing transactions from there, as the primary of the
/// database (``PrimaryConfiguration/continuesAfterEpoch``), acknowledging each only once its peer holds it.
///
/// It reports on standard output, one line each: `event listening port P at NS`, `event took-over epoch E
/// transactions R database-bytes D at NS` (D: the map's bytes the database has used), `event synchronised bytes B
/// first-pass F region L pages-held H resynchronised 0|1 epoch E
/// rounds N milliseconds M at NS` (bytes sent up to the first committed epoch, of them F by the first pass: what
/// differed), `acknowledged N` (N released to clients), `event stood-down at NS`.
public final class LMDBNode: Sendable {
    /// What a node runs with; its peer runs with the same history, map and interval.
    public struct Settings: Sendable {
        public var history: KeyValueHistory
        /// The database file (on tmpfs): the replica as a backup, the database as a primary.
        public var database: String
        public var mapBytes = 32 << 20
        public var epochMilliseconds = 25
        /// The port this node listens on as a backup (on loopback).
        public var listenPort: UInt16
        /// Where the peer listens as a backup.
        public var peer: Endpoint
        /// How long a backup waits for a silent primary before taking over.
        public var primaryTimeout = Duration.milliseconds(300)
        /// How long a primary waits for its peer to come back as its backup.
        public var peerWindow = Duration.seconds(60)
        public var mode = ReplicationMode.fgbi
        /// After a takeover, commit transactions while the peer is still away and while it is synchronised
        /// (unprotected: acknowledged only once it holds them), rather than wait until it holds a first epoch.
        public var writesWhileUnprotected = true
        /// A rejoining peer is resynchronised by block hashes (``PrecopyPolicy/fetchesBlockHashes``).
        public var fetchesBlockHashes = true
        /// The rate a primary commits at (nil: as fast as it can).
        public var pace: TransactionPace?

        public init(history: KeyValueHistory, database: String, listenPort: UInt16, peer: Endpoint) {
            self.history = history
            self.database = database
            self.listenPort = listenPort
            self.peer = peer
        }
    }

    /// How a node's run ended.
    public enum Ending: Sendable, Equatable {
        /// It was asked to stop (as a primary after a last epoch, as a backup when its primary finished).
        case stopped
        /// It lost its primary before its memory held a committed epoch, so it could not take over.
        case stoodDown(String)
    }

    public let settings: Settings
    private let output: @Sendable (String) -> Void

    /// `output` receives each report line (without its newline), from any thread.
    public init(settings: Settings, output: @escaping @Sendable (String) -> Void) {
        self.settings = settings
        self.output = output
    }

    /// Runs the node, starting as the primary of a new database or as a backup (of the file it holds, if
    /// any), until `shouldStop` says so (checked between transactions, and while serving) or it is killed.
    ///
    /// - Throws: ``LMDBReplicaVerifier/Mismatch`` when the replica taken over differs from the history;
    ///   LMDB, replication and system errors.
    public func run(startAsPrimary: Bool, shouldStop: @escaping @Sendable () -> Bool) throws -> Ending {
        if startAsPrimary { return try serveAsPrimary(continuing: nil, shouldStop: shouldStop) }
        switch try serveAsBackup(shouldStop: shouldStop) {
        case .takeOver(let epoch):
            let report = try LMDBReplicaVerifier.compare(
                path: settings.database, mapBytes: settings.mapBytes, history: settings.history)
            emit(
                "event took-over epoch \(epoch) transactions \(report.transactions) database-bytes \(report.usedBytes)")
            return try serveAsPrimary(continuing: (epoch, report.transactions), shouldStop: shouldStop)
        case .ended(let ending):
            return ending
        }
    }

    private enum BackupEnd {
        case takeOver(epoch: UInt64)
        case ended(Ending)
    }

    /// Serves as the backup of the peer on the database file, until the peer is lost (take over) or ends.
    private func serveAsBackup(shouldStop: @escaping @Sendable () -> Bool) throws -> BackupEnd {
        let holdsContent = GuestMemory.fileHoldsContent(at: settings.database)
        let memory = try GuestMemory.file(path: settings.database, length: settings.mapBytes)
        var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: settings.listenPort))
        configuration.primaryTimeout = settings.primaryTimeout
        let backup = try Backup(
            regions: [memory], configuration: configuration,
            holding: holdsContent ? .formerPrimary(lastEpoch: nil) : nil)
        let service = try backup.start()
        emit("event listening port \(backup.port)")
        var outcome: BackupOutcome?
        while outcome == nil {
            outcome = try service.outcome(timeout: .milliseconds(50))
            if outcome == nil, shouldStop() { outcome = try service.stop() }
        }
        switch outcome! {
        case .failedOver(let epoch?, _), .promoted(let epoch?, _, _):
            return .takeOver(epoch: epoch)
        case .failedOver(nil, let reason), .promoted(nil, _, let reason), .stoodDown(_, let reason):
            emit("event stood-down")
            return .ended(.stoodDown(reason))
        case .primaryFinished:
            return .ended(.stopped)
        }
    }

    /// Commits transactions on the database (a new one, or the replica taken over at `continuing`'s epoch
    /// holding its transactions), replicating to the peer, until `shouldStop`.
    private func serveAsPrimary(
        continuing: (epoch: UInt64, transactions: UInt64)?, shouldStop: @escaping @Sendable () -> Bool
    ) throws -> Ending {
        var configuration = PrimaryConfiguration(backup: settings.peer)
        configuration.engine = EngineConfiguration(mode: settings.mode)
        configuration.epochInterval = .milliseconds(settings.epochMilliseconds)
        configuration.reconnectWindow = settings.peerWindow
        configuration.continuesAfterEpoch = continuing?.epoch
        configuration.precopy.fetchesBlockHashes = settings.fetchesBlockHashes
        let store = try ReplicatedKeyValueStore(
            path: settings.database, mapBytes: settings.mapBytes, history: settings.history,
            configuration: configuration, continuing: continuing?.transactions)
        let reported = Mutex(false)
        let region = settings.mapBytes
        let primary = store.primary
        _ = try store.run(
            until: { _ in shouldStop() },
            firstWrite: continuing == nil
                ? .onceConnected : settings.writesWhileUnprotected ? .immediately : .onceProtected,
            pace: settings.pace,
            acknowledged: { [self] transaction in
                if let statistics = primary?.statistics,
                    reported.withLock({ done in
                        defer { done = true }
                        return !done
                    })
                {
                    let sent = statistics.precopyBytes + statistics.bytesSent
                    let synchronisation = statistics.lastSynchronisation
                    emit(
                        """
                        event synchronised bytes \(sent) first-pass \(synchronisation?.firstPassBytes ?? 0) \
                        region \(region)\u{20}
                        """
                            + """
                            pages-held \(synchronisation?.pagesAlreadyHeld ?? 0) block-hash-bytes \
                            \(synchronisation?.blockHashBytes ?? 0)\u{20}
                            """
                                + """
                                resynchronised \(synchronisation?.resynchronised == true ? 1 : 0) epoch \
                                \(synchronisation?.epoch ?? 0)\u{20}
                                """
                                + """
                                rounds \(synchronisation?.rounds ?? 0) milliseconds \
                                \(Int(synchronisation?.milliseconds ?? 0))
                                """
                    )
                }
                emit("acknowledged \(transaction)", stamped: false)
            })
        return .stopped
    }

    private func emit(_ line: String, stamped: Bool = true) {
        output(stamped ? line + " at \(MonotonicClock.nanoseconds())" : line)
    }
}
