import Synchronization

/// The backup end of FGBI replication: listens for one primary, applies each epoch atomically to its
/// replica, acknowledges it, and fails over when the primary goes silent.
///
/// The acknowledgement for epoch N leaves only after N is applied in full, so a primary that releases output
/// on ``Primary/commits()`` never releases output the backup could lose. On failover the replica stays at
/// the last applied epoch, is written to ``BackupConfiguration/imagePath`` when set, and ``serve()`` returns
/// ``BackupOutcome/failedOver(lastEpoch:reason:)``.
public final class Backup: @unchecked Sendable {
    public let replica: Replica
    public let configuration: BackupConfiguration
    private let listener: Socket
    private let connection = Mutex<FrameConnection?>(nil)
    private let stopping = Atomic<Bool>(false)
    private let log: @Sendable (String) -> Void

    /// Binds the listening socket at once (so ``port`` is known before ``serve()``).
    public init(regions: [GuestMemory], geometry: BlockGeometry, configuration: BackupConfiguration,
                log: @escaping @Sendable (String) -> Void = { _ in }) throws {
        replica = Replica(regions: regions, geometry: geometry)
        self.configuration = configuration
        self.log = log
        listener = try Socket.listen(on: configuration.listen)
    }

    /// The port the backup listens on.
    public var port: UInt16 { listener.localPort }

    /// The last epoch applied.
    public var lastEpoch: UInt64? { replica.lastEpoch }

    /// Serves primaries until one finishes or fails. A peer that fails the handshake (no key, wrong key,
    /// other memory layout) is refused with a log line and the backup goes on listening, its replica
    /// untouched.
    public func serve() throws -> BackupOutcome {
        while true {
            let accepted: (socket: Socket, peer: String, peerIsLoopback: Bool)
            do {
                accepted = try listener.accept()
            } catch {
                if stopping.load(ordering: .acquiring) { return .primaryFinished(lastEpoch: lastEpoch) }
                throw error
            }
            let (socket, peer, peerIsLoopback) = accepted
            if stopping.load(ordering: .acquiring) { return .primaryFinished(lastEpoch: lastEpoch) }
            let connection = FrameConnection(socket: socket, peer: peer, isPrimary: false,
                                             maximumPayload: replica.maximumDeltaLength)
            self.connection.withLock { $0 = connection }
            connection.setReceiveTimeout(milliseconds: configuration.handshakeTimeout.wholeMilliseconds)
            connection.setHandshakeDeadline(milliseconds: configuration.handshakeTimeout.wholeMilliseconds)
            do {
                let layout = SessionSetup.Layout(blockSize: replica.geometry.blockSize, pageSize: replica.geometry.pageSize,
                                                 regionLengths: replica.regions.map(\.length))
                let hello = try SessionSetup.openAsBackup(connection, layout: layout, key: configuration.key,
                                                          peerIsLoopback: peerIsLoopback, nextEpoch: lastEpoch.map { $0 + 1 } ?? 0,
                                                          requireEncryption: configuration.requireEncryption)
                let security = configuration.key == nil ? "no key, loopback" : hello.wantsEncryption ? "authenticated, encrypted" : "authenticated"
                log("primary \(peer) connected (\(hello.mode) mode, \(security))")
            } catch {
                if stopping.load(ordering: .acquiring) { return .primaryFinished(lastEpoch: lastEpoch) }
                log("refused \(peer): \(error)")
                connection.close()
                continue
            }
            if stopping.load(ordering: .acquiring) {
                connection.close()
                return .primaryFinished(lastEpoch: lastEpoch)
            }
            if lastEpoch != nil {
                let refusal = "this backup holds epoch \(lastEpoch!) of an earlier session; restart it to resynchronise"
                log("refused \(peer): \(refusal)")
                try? connection.send(.error, Array(refusal.utf8))
                connection.close()
                continue
            }
            return try replicate(connection)
        }
    }

    private func replicate(_ connection: FrameConnection) throws -> BackupOutcome {
        connection.setReceiveTimeout(milliseconds: configuration.primaryTimeout.wholeMilliseconds)
        while true {
            let frame: Frame
            do {
                frame = try connection.receive()
            } catch {
                if stopping.load(ordering: .acquiring) { return .primaryFinished(lastEpoch: lastEpoch) }
                return try failOver(reason: "\(error)")
            }
            switch frame.type {
            case .epoch:
                do {
                    let applied = try replica.apply(frame.payload)
                    var ack: [UInt8] = []
                    appendLittleEndian(applied.epoch, to: &ack)
                    try connection.send(.ack, ack)
                } catch let error as DeltaError {
                    // An authenticated frame with a bad delta: the primary is broken; keep the last good epoch.
                    try? connection.send(.error, Array("epoch refused: \(error)".utf8))
                    connection.close()
                    return try failOver(reason: "the primary sent an epoch that was refused: \(error)")
                } catch {
                    return try failOver(reason: "\(error)")
                }
            case .heartbeat:
                continue
            case .bye:
                log("primary finished after epoch \(lastEpoch.map(String.init) ?? "none")")
                connection.close()
                return .primaryFinished(lastEpoch: lastEpoch)
            case .error:
                return try failOver(reason: "the primary reported: \(String(decoding: frame.payload, as: UTF8.self))")
            default:
                return try failOver(reason: "unexpected \(frame.type) frame from the primary")
            }
        }
    }

    private func failOver(reason: String) throws -> BackupOutcome {
        log("primary lost (\(reason)); failing over at epoch \(lastEpoch.map(String.init) ?? "none")")
        connection.withLock { $0?.close() }
        if let path = configuration.imagePath {
            try ReplicaImage.write(replica.regions, geometry: replica.geometry, epoch: lastEpoch, to: path)
            log("replica written to \(path) (journal \(path).json)")
        }
        return .failedOver(lastEpoch: lastEpoch, reason: reason)
    }

    /// Makes ``serve()`` return: closes the current connection and stops listening.
    public func stop() {
        stopping.store(true, ordering: .releasing)
        connection.withLock { $0?.close() }
        listener.shutdownBoth()
        // A blocked accept() wakes on shutdown of the listening socket on Linux.
    }
}
