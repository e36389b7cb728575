import Synchronization

/// The backup's epochs: each delta applied whole, made durable, then acknowledged.
extension Backup {
    /// Applies an epoch or pre-copy frame, makes an epoch durable and acknowledges it; returns how the session
    /// ends when the frame ends it (a delta refused, the connection lost), nil to go on.
    ///
    /// - Throws: ``PersistFailure`` when this backup cannot make the epoch durable (its own failure, not the
    ///   primary's: no failover, ``serve()`` throws it).
    func receiveDelta(_ frame: Frame, on connection: FrameConnection) throws -> SessionEnd? {
        do {
            let precopy = frame.type == .precopy
            let before = replica.lastEpoch
            let synchronised = replica.holdsUncommittedChanges
            let applyStart = MonotonicClock.nanoseconds()
            let applied = try replica.apply(frame.payload, precopy: precopy)
            if !precopy {
                publishEpoch()
                vouchesForReplica.store(true, ordering: .releasing)
                let stream = sessionStream
                heldStream.withLock { $0 = stream }
            } else {
                // The replica now holds changes of no epoch: until one commits, it is of no stream.
                heldStream.withLock { $0 = nil }
            }
            metrics.apply.recordNanoseconds(Int64(MonotonicClock.nanoseconds() - applyStart))
            metrics.bytesReceived.increment(by: Int64(frame.payload.count))
            if precopy { metrics.precopyFrames.increment() } else { metrics.epochsApplied.increment() }
            counters.withLock {
                if precopy { $0.precopyFrames += 1 } else { $0.epochsApplied += 1 }
                $0.bytesReceived += frame.payload.count
            }
            if precopy {
                // No ack for a pre-copy step; a heartbeat tells the primary this backup is alive.
                try connection.send(.heartbeat, [UInt8](repeating: 0, count: 8))
                return nil
            }
            // A journal replays consecutive epochs only: a jump (a resynchronised session) or pre-copy
            // deltas before this epoch need a checkpoint.
            let consecutive = applied.epoch == (before.map { $0 + 1 } ?? 0)
            // The first epoch of a new primary's term is a checkpoint too: the state file then records the
            // term with the epoch, in one atomic step.
            let newTerm = heldTerm.load(ordering: .relaxed) != sessionTerm
            do {
                try connection.whileSendingHeartbeats {
                    try persist(frame.payload, checkpoint: synchronised || !consecutive || newTerm)
                }
            } catch {
                logger.error("cannot persist epoch \(applied.epoch): \(error); stopping without acknowledging it")
                try? connection.send(.error, Array("the backup cannot persist epoch \(applied.epoch): \(error)".utf8))
                connection.close()
                throw PersistFailure(epoch: applied.epoch, underlying: error)
            }
            metrics.lastEpoch.record(Int64(applied.epoch))
            heldTerm.store(sessionTerm, ordering: .releasing)
            FaultPoints.reach(.backupAcknowledge)
            var ack: [UInt8] = []
            appendLittleEndian(applied.epoch, to: &ack)
            try connection.send(.ack, ack)
            return nil
        } catch let error as PersistFailure {
            throw error
        } catch let error as DeltaError {
            // An authenticated frame with a bad delta: the primary is broken; keep the last good epoch.
            try? connection.send(.error, Array("epoch refused: \(error)".utf8))
            connection.close()
            return .lost("the primary sent an epoch that was refused: \(error)")
        } catch {
            return .lost("\(error)")
        }
    }

    /// Makes a committed epoch durable before it is acknowledged: appended to the journal, or written as a
    /// checkpoint when the journal cannot describe it (`checkpoint`: it ends a synchronisation, whose
    /// pre-copy deltas are not journaled) or has grown past its limit.
    func persist(_ delta: [UInt8], checkpoint: Bool) throws {
        guard let store else { return }
        let start = MonotonicClock.nanoseconds()
        if checkpoint || store.needsCheckpoint {
            try store.checkpoint(replica, heldTerm: sessionTerm)
            let milliseconds = Double(MonotonicClock.nanoseconds() - start) / 1e6
            counters.withLock { $0.checkpoints += 1 }
            metrics.checkpoints.increment()
            logger.info("checkpoint of epoch \(lastEpoch!) written to \(store.directory) in \(Int(milliseconds)) ms")
        } else {
            try delta.withUnsafeBytes { try store.append($0) }
            counters.withLock { $0.journalAppends += 1 }
            metrics.persist.recordNanoseconds(Int64(MonotonicClock.nanoseconds() - start))
        }
    }

    /// Answers a resynchronising primary's request for the block hashes of pages of the replica (its
    /// committed epoch: requests come before any pre-copy delta).
    ///
    /// - Throws: ``WireError/malformed(_:)`` for runs out of the layout or out of order; the connection's
    ///   error when the answer cannot be sent.
    func answerBlockHashRequest(_ payload: [UInt8], on connection: FrameConnection) throws {
        let runs = try BlockHashExchange.decodeRequest(
            payload, pageCounts: replica.regions.map(\.pageCount), after: lastBlockHashRun)
        lastBlockHashRun = runs.last
        for answer in BlockHashExchange.answerPayloads(runs, regions: replica.regions, geometry: replica.geometry) {
            try connection.send(.blockHashes, answer)
        }
    }
}
