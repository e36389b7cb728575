import CSupport
import Dispatch
import Logging
import Synchronization

/// The primary's epoch pipeline: capture buffers (backpressure), the paused checkpoint, and the sender,
/// acknowledgement and heartbeat loops of a session.
extension Primary {
    /// A free capture buffer; waits (backpressure) while all are in use, but not past a failure.
    func acquireCapture() throws -> EpochCapture {
        if freeCount.wait(timeout: .now()) == .timedOut {
            shared.withLock { $0.statistics.backpressureWaits += 1 }
            metrics.backpressureWaits.increment()
            while freeCount.wait(timeout: .now() + .milliseconds(20)) == .timedOut {
                if let failure = shared.withLock({ $0.failure ?? $0.sessionFailure }) { throw failure }
            }
        }
        return queues.withLock { $0.free.removeLast() }
    }

    func release(_ capture: EpochCapture) {
        // Room for an epoch half again as large as the largest so far, made while the guest runs: growing in
        // the pause would reallocate and fault in fresh memory there. Pre-copy steps and a first pass over
        // every page do not count (they would reserve the whole guest again per buffer).
        if !capture.isPrecopy, capture.pagesWritten < regions.reduce(0, { $0 + $1.pageCount }) {
            let largest = queues.withLock { queues in
                queues.largestEpoch = (max(queues.largestEpoch.items, capture.count), max(queues.largestEpoch.bytes, capture.arenaBytesUsed))
                return queues.largestEpoch
            }
            capture.reserve(items: largest.items * 3 / 2, arenaBytes: largest.bytes * 3 / 2)
        }
        queues.withLock { $0.free.append(capture) }
        freeCount.signal()
    }

    /// One epoch boundary: pause, collect, capture, resume, queue. Returns the epoch captured.
    @discardableResult
    func checkpoint() throws -> UInt64 {
        let capture = try acquireCapture()
        let start = MonotonicClock.nanoseconds()
        hooks.pause()
        let stoppedNanoseconds = MonotonicClock.nanoseconds() - start
        do {
            defer { hooks.resume() }
            var unscanned = 0
            for (index, tracker) in trackers.enumerated() {
                try tracker.collect(into: &dirty[index])
                unscanned += tracker.pagesReportedUnscanned
            }
            FaultPoints.reach(.primaryPause)
            try engine.capture(dirty, into: capture)
            // Published before the guest resumes: a write after the resume must see this epoch as captured
            // (``epochCoveringWritesSoFar`` then names a later one).
            shared.withLock {
                $0.statistics.lastCapturedEpoch = capture.epoch
                $0.statistics.pagesReportedUnscanned += unscanned
            }
            epochAfterLastCapture.store(capture.epoch + 1, ordering: .releasing)
        } catch {
            release(capture)
            throw error
        }
        let pausedNanoseconds = MonotonicClock.nanoseconds() - start
        // After the capture, which resets them.
        capture.pauseNanoseconds = pausedNanoseconds
        capture.stopNanoseconds = stoppedNanoseconds
        let paused = Double(pausedNanoseconds) / 1e6
        metrics.pause.recordNanoseconds(Int64(pausedNanoseconds))
        metrics.epochsCaptured.increment()
        shared.withLock {
            $0.statistics.epochsCaptured += 1
            if $0.statistics.lastSynchronisation?.epoch == capture.epoch { $0.statistics.lastSynchronisation?.pauseMilliseconds = paused }
            $0.statistics.recordPause(milliseconds: paused)
        }
        queues.withLock { $0.ready.append(capture) }
        readyCount.signal()
        return capture.epoch
    }

    /// Epochs every `epochInterval` until stop() or the session fails (which it throws).
    func epochLoop() throws {
        // Realtime for the epochs only: the synchronisation before them copies while the guest runs and must
        // not starve the encoder and sender sharing this CPU.
        if let priority = configuration.engine.captureRealtimePriority {
            try ThreadScheduling.enterRealtime(priority: priority, thread: "checkpoint thread")
        }
        defer { if configuration.engine.captureRealtimePriority != nil { ThreadScheduling.leaveRealtime() } }
        let interval = configuration.epochInterval.wholeNanoseconds
        var next = MonotonicClock.nanoseconds()
        while running.load(ordering: .acquiring) {
            if let failure = shared.withLock({ $0.sessionFailure }) { throw failure }
            try checkpoint()
            next += interval
            let now = MonotonicClock.nanoseconds()
            if next <= now {
                next = now  // fell behind: start the next epoch at once, do not burst to catch up
                continue
            }
            // Sleep in short steps so stop() is prompt.
            // One clock reading per step: reading it again after the comparison could pass `next` (a
            // preempted thread) and underflow.
            while running.load(ordering: .acquiring) {
                let now = MonotonicClock.nanoseconds()
                guard now < next else { break }
                MonotonicClock.sleep(nanoseconds: min(next - now, 5_000_000))
            }
        }
    }

    func senderLoop() {
        // Encoding is throughput work; the checkpoint thread's pause is on the guest's critical path. When
        // they share a busy CPU, the sender yields (a higher nice value for this thread only).
        if configuration.senderNiceIncrement > 0 {
            // Best effort: a thread may always raise its own nice value; failing leaves it as it was.
            _ = CSupport_raise_thread_nice(Int32(min(configuration.senderNiceIncrement, 19)))
        }
        while true {
            readyCount.wait()
            let next = queues.withLock { queues -> EpochCapture? in
                queues.ready.isEmpty ? nil : queues.ready.removeFirst()
            }
            guard let capture = next else {
                if queues.withLock({ $0.senderShouldExit }) { return }
                continue
            }
            do {
                let precopy = capture.isPrecopy
                let firstPass = capture.isFirstPass
                // Encoded into the engine's buffer and sent from there: no per-epoch copy or allocation.
                var delivered = false
                let sent: (bytes: Int, statistics: EpochStatistics)
                do {
                    sent = try engine.encode(capture) { delta, statistics in
                        delivered = true
                        metrics.encode.recordNanoseconds(Int64(statistics.encodeNanoseconds + statistics.compressNanoseconds))
                        observer?(capture, statistics)
                        noteUnchangedPages(of: capture)
                        release(capture)
                        if !precopy { FaultPoints.reach(.primarySend) }
                        try deliver(precopy ? .precopy : .epoch, epoch: precopy ? nil : capture.epoch, delta)
                        return (delta.count, statistics)
                    }
                } catch where !delivered {
                    // The engine's failure, not the connection's: reconnecting would not help.
                    release(capture)
                    fail(error)
                    return
                }
                let statistics = sent.statistics
                if precopy {
                    metrics.precopyBytes.increment(by: Int64(sent.bytes))
                } else {
                    metrics.epochsSent.increment()
                    metrics.bytesSent.increment(by: Int64(sent.bytes))
                    metrics.pagesWritten.increment(by: Int64(statistics.pagesWritten))
                }
                metrics.blocksSent.increment(by: Int64(statistics.blocksDirty))
                metrics.sharedHits.increment(by: Int64(statistics.sharedHits))
                shared.withLock {
                    $0.statistics.lastSynchronisation?.pagesAlreadyHeld += statistics.pagesAlreadyHeld
                    if firstPass { $0.statistics.lastSynchronisation?.firstPassBytes += sent.bytes }
                    if precopy {
                        $0.statistics.precopyFrames += 1
                        $0.statistics.precopyBytes += sent.bytes
                    } else {
                        $0.statistics.epochsSent += 1
                        $0.statistics.bytesSent += sent.bytes
                        $0.statistics.pagesWritten += statistics.pagesWritten
                    }
                    $0.statistics.blocksSent += statistics.blocksDirty
                    $0.statistics.sharedHits += statistics.sharedHits
                    $0.statistics.indexEntries = statistics.indexEntries
                }
            } catch {
                sessionFailed(error)
                return
            }
        }
    }

    /// Tells each region's tracker which pages `capture` found unchanged (hot pages that keep being captured
    /// unwritten lose their lease).
    func noteUnchangedPages(of capture: EpochCapture) {
        let unchanged = capture.unchangedPages
        guard !unchanged.isEmpty else { return }
        for (region, tracker) in trackers.enumerated() {
            tracker.noteUnchanged(unchanged.lazy.filter { $0.region == region }.map(\.block))
        }
    }

    /// Reads one backup's acknowledgements and counts them towards commits.
    func acknowledgementLoop(_ link: BackupLink) {
        while true {
            do {
                let frame = try link.connection.receive()
                switch frame.type {
                case .ack:
                    var reader = PayloadReader(frame.payload)
                    let epoch = try reader.u64()
                    try reader.finish("ack")
                    // Confirmed only while primaryship surely holds: once it may have lapsed, a backup may be
                    // promoted, and what it holds is the last word (the ack's term is the session's, checked
                    // when the frame was read).
                    if let authority = configuration.authority, MonotonicClock.nanoseconds() >= authority.validUntilNanoseconds {
                        losePrimaryship(authority)
                        return
                    }
                    if let committed = commitTracker.acknowledge(epoch, from: link.index) { published(committed) }
                case .heartbeat:
                    continue
                case .error:
                    throw WireError.refused(PeerText.printable(frame.payload))
                default:
                    throw WireError.unexpected("\(frame.type) from the backup")
                }
            } catch {
                linkFailed(link, error)
                return
            }
        }
    }

    /// Records a newly committed epoch in the statistics and metrics.
    func published(_ committed: UInt64) {
        let lag = shared.withLock { shared -> UInt64 in
            shared.statistics.lastCommittedEpoch = committed
            return shared.statistics.lag
        }
        metrics.epochsCommitted.increment()
        metrics.lastCommittedEpoch.record(Int64(committed))
        metrics.lag.record(Int64(lag))
    }

    /// Sends one backup a heartbeat whenever nothing else went to it for ``PrimaryConfiguration/heartbeatInterval``.
    func heartbeatLoop(_ link: BackupLink) {
        let interval = configuration.heartbeatInterval.wholeNanoseconds
        // Heartbeats go on through stop()'s final epoch, until the connection is closed on purpose.
        while link.isOpen.load(ordering: .acquiring) {
            MonotonicClock.sleep(nanoseconds: interval / 2)
            // The sender may stamp a send between the two readings: never subtract past zero.
            let lastSend = link.lastSendNanoseconds.load(ordering: .relaxed)
            let now = MonotonicClock.nanoseconds()
            let idle = now > lastSend ? now - lastSend : 0
            guard idle >= interval, link.isOpen.load(ordering: .acquiring) else { continue }
            var stamp: [UInt8] = []
            appendLittleEndian(MonotonicClock.nanoseconds(), to: &stamp)
            do {
                try link.connection.send(.heartbeat, stamp)
                link.lastSendNanoseconds.store(MonotonicClock.nanoseconds(), ordering: .relaxed)
            } catch {
                linkFailed(link, error)
                return
            }
        }
    }

    /// Watches the ``PrimaryConfiguration/authority`` while replication runs: once it no longer surely
    /// holds, replication halts (within one lease time to live of the last renewal).
    func authorityLoop() {
        guard let authority = configuration.authority else { return }
        while running.load(ordering: .acquiring) {
            let now = MonotonicClock.nanoseconds()
            let until = authority.validUntilNanoseconds
            if now >= until {
                losePrimaryship(authority)
                return
            }
            MonotonicClock.sleep(nanoseconds: min(until - now, 2_000_000))
        }
    }

    /// Halts replication for good with ``LostPrimaryship``: no epoch is confirmed from now on, and the
    /// connection closes without a bye, so the backup treats this primary as lost and asks its coordinator.
    func losePrimaryship(_ authority: any PrimaryAuthority) {
        let error = LostPrimaryship(term: authority.term, lastCommittedEpoch: committedEpoch, reason: authority.lossReason)
        let first = shared.withLock { shared -> Bool in
            guard shared.failure == nil else { return false }
            shared.failure = error
            return true
        }
        if first { logger.critical("\(error)") }
        fail(error)
    }

    /// The session's connection failed: record why and close it, which wakes every session thread. The
    /// checkpoint thread then reconnects or gives up.
    func sessionFailed(_ error: Error) {
        let first = shared.withLock { shared -> Bool in
            guard shared.sessionFailure == nil else { return false }
            shared.sessionFailure = error
            return true
        }
        if first { closeLinks() }
    }

    /// Replication stops for good.
    func fail(_ error: Error) {
        shared.withLock { shared in
            if shared.failure == nil { shared.failure = error }
        }
        running.store(false, ordering: .releasing)
        closeLinks()
        commitTracker.finish()
    }
}
