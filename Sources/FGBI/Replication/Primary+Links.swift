import Dispatch
import Logging

/// The primary's backups one by one: delivering the session's frames (sent at once to a single backup, kept
/// in the ``EpochBacklog`` for several), losing a backup while the commit policy can do without it, and taking
/// it back when it returns.
extension Primary {
    /// Sends an encoded frame to the session's backups: on the sender thread to a single backup (no copy), or
    /// into the backlog that each backup's writer sends from.
    func deliver(_ type: WireFormat.FrameType, epoch: UInt64?, _ payload: UnsafeRawBufferPointer) throws {
        guard let backlog else {
            guard let link = links.withLock({ $0[0] }) else { throw WireError.closed }
            try link.connection.send(type, payload)
            link.lastSendNanoseconds.store(MonotonicClock.nanoseconds(), ordering: .relaxed)
            return
        }
        let generation = sessionGeneration.load(ordering: .acquiring)
        let fallenBehind = backlog.append(type, epoch: epoch, payload: Array(payload)) { [self] in
            sessionGeneration.load(ordering: .acquiring) != generation || shared.withLock { $0.failure != nil || $0.sessionFailure != nil }
        }
        let current = links.withLock { $0 }
        for link in current { link?.frameReady.signal() }
        for index in fallenBehind {
            guard let link = current[index] else { continue }
            linkFailed(link, WireError.unexpected("more than \(configuration.catchUpBytes >> 20) MiB of frames behind the other backups"))
        }
    }

    /// Sends one backup the session's frames in order, from the backlog.
    func writerLoop(_ link: BackupLink, backlog: EpochBacklog) {
        while link.isOpen.load(ordering: .acquiring) {
            guard let entry = backlog.next(for: link.index) else {
                _ = link.frameReady.wait(timeout: .now() + .milliseconds(20))
                continue
            }
            do {
                try link.connection.send(entry.type, entry.payload)
                link.lastSendNanoseconds.store(MonotonicClock.nanoseconds(), ordering: .relaxed)
                backlog.sent(entry.sequence, by: link.index)
                if entry.type == .bye {
                    // Then FIN; the acknowledgement thread reads until the backup closes.
                    link.connection.finishSending()
                    return
                }
            } catch {
                linkFailed(link, error)
                return
            }
        }
    }

    /// A backup's connection failed (or it fell too far behind). With one backup, or when the others are too
    /// few for the commit policy, the whole session fails (and reconnects); otherwise this backup alone is
    /// dropped and tried again in the background.
    func linkFailed(_ link: BackupLink, _ error: Error) {
        // Closed on purpose (stop, a session closing), or reported already by another of its threads.
        guard link.isOpen.exchange(false, ordering: .acquiringAndReleasing), connected.load(ordering: .acquiring) else { return }
        link.connection.close()
        link.frameReady.signal()
        guard let backlog, configuration.commitPolicy != .all else {
            sessionFailed(error)
            return
        }
        backlog.detach(link.index)
        let connectedCount = links.withLock { $0.filter { $0?.isOpen.load(ordering: .acquiring) ?? false }.count }
        let required = configuration.commitPolicy.required(of: configuration.backups.count)
        guard connectedCount >= required else {
            sessionFailed(WireError.unexpected("lost the backup \(link.endpoint) (\(error)) with \(connectedCount) left of the \(required) the commit policy needs"))
            return
        }
        shared.withLock { $0.statistics.backupsLost += 1 }
        logger.warning("lost the backup \(link.endpoint): \(error); committing with the \(connectedCount) others, trying it again meanwhile")
        let generation = sessionGeneration.load(ordering: .acquiring)
        do {
            try spawnSessionThread("fgbi-rejoin-\(link.index)") { [self] in rejoinLoop(link.index, generation: generation) }
        } catch {
            logger.error("cannot start a thread to reach the backup \(link.endpoint) again: \(error)")
        }
    }

    /// Tries to reach backup `index` again while its session lasts: one that returns holding an epoch of this
    /// session still kept catches up from the backlog; any other makes every backup resynchronise (the
    /// session fails and the checkpoint thread reconnects).
    func rejoinLoop(_ index: Int, generation: Int) {
        let endpoint = configuration.backups[index]
        var pause: UInt64 = 50_000_000
        var reported = false
        func current() -> Bool {
            running.load(ordering: .acquiring) && sessionGeneration.load(ordering: .acquiring) == generation
        }
        while current() {
            let link: BackupLink
            do {
                link = try BackupLink.open(index: index, configuration: configuration, hello: makeHello(stream: sessionStream),
                                           pageCounts: regions.map(\.pageCount), handshakeTimeout: .seconds(2))
            } catch {
                if !reported { logger.info("the backup \(endpoint) is not back yet: \(error)") }
                reported = true
                let until = MonotonicClock.nanoseconds() + pause
                while current(), MonotonicClock.nanoseconds() < until { MonotonicClock.sleep(nanoseconds: 5_000_000) }
                pause = min(pause * 2, 1_000_000_000)
                continue
            }
            guard let backlog, let held = catchUpPoint(of: link, backlog: backlog) else {
                link.close()
                let holds = link.welcome.nextEpoch > 0 ? "epoch \(link.welcome.nextEpoch - 1)" : "nothing"
                logger.warning("the backup \(endpoint) returned holding \(holds), which the frames kept cannot bring up to date: resynchronising every backup")
                sessionFailed(WireError.unexpected("the backup \(endpoint) returned behind the frames kept for it"))
                return
            }
            let installed = links.withLock { links -> Bool in
                guard current() else { return false }
                links[index] = link
                return true
            }
            guard installed else {
                backlog.detach(index)
                link.close()
                return
            }
            do {
                try spawnSessionThread("fgbi-beat-\(index)") { [self] in heartbeatLoop(link) }
                try startThreads(of: link)
            } catch {
                linkFailed(link, error)
                return
            }
            if let epoch = held, let committed = commitTracker.acknowledge(epoch, from: index) { published(committed) }
            shared.withLock { $0.statistics.catchUps += 1 }
            logger.notice("the backup \(endpoint) is back \(held.map { "at epoch \($0)" } ?? "as it was when the session started"): catching up from the frames kept")
            return
        }
    }

    /// Where a returning backup catches up from, attaching it to the backlog there: after the epoch of this
    /// session it holds (`.some(epoch)`), or from the session's first frame when it holds again exactly what it
    /// held at the session's start (`.some(nil)`); nil when the frames kept cannot bring it up to date.
    private func catchUpPoint(of link: BackupLink, backlog: EpochBacklog) -> UInt64?? {
        if let held = link.holdsEpoch(of: sessionStream) {
            return backlog.attach(link.index, holding: held) ? .some(held) : nil
        }
        guard let start = heldAtSessionStart[link.index], start.nextEpoch == link.welcome.nextEpoch, start.summary == link.summary,
              backlog.attachFromFirst(link.index) else { return nil }
        return .some(nil)
    }

    /// The end of a session on purpose, once its last epoch is committed: each backup is told bye after the
    /// frames it has yet to send (up to ``PrimaryConfiguration/backupTimeout``; one that cannot take them is
    /// closed), then the sending side of each connection is shut and its acknowledgements read until the
    /// backup closes.
    func sayGoodbye() {
        queues.withLock { $0.senderShouldExit = true }
        readyCount.signal()
        join("fgbi-sender")
        let open = links.withLock { $0.compactMap { $0 } }.filter { $0.isOpen.load(ordering: .acquiring) }
        guard let backlog else {
            // Bye, then FIN, then read until the backup closes: closing with its heartbeats unread would
            // reset the connection, and a reset can destroy the bye before the backup reads it.
            guard let link = open.first else { return }
            try? link.connection.send(.bye)
            connected.store(false, ordering: .releasing)
            link.isOpen.store(false, ordering: .releasing)
            link.connection.finishSending()
            joinSessionThreads()
            return
        }
        connected.store(false, ordering: .releasing)
        _ = backlog.append(.bye, epoch: nil, payload: []) { true }
        for link in open { link.frameReady.signal() }
        let deadline = MonotonicClock.nanoseconds() + configuration.backupTimeout.wholeNanoseconds
        while open.contains(where: { !backlog.hasSentEverything($0.index) }), MonotonicClock.nanoseconds() < deadline {
            MonotonicClock.sleep(nanoseconds: 1_000_000)
        }
        for link in open where !backlog.hasSentEverything(link.index) {
            logger.warning("the backup \(link.endpoint) did not take the last frames within the backup timeout: closing its connection without a bye")
            link.close()
        }
        for link in open { link.isOpen.store(false, ordering: .releasing) }
        joinSessionThreads()
    }

    /// Closes every backup's connection of the session on purpose (its threads end without a failure).
    func closeLinks() {
        for link in links.withLock({ $0 }) { link?.close() }
    }

    /// Joins every thread of the session (a backup's acknowledgement thread ends when the backup closes), until
    /// none is left.
    func joinSessionThreads() {
        while let thread = sessionThreads.withLock({ $0.popLast() }) { thread.join() }
    }
}
