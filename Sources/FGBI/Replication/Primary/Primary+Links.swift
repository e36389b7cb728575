import Dispatch
import Logging

/// The primary's backups one by one: delivering the session's frames (sent at once to a single backup, kept
/// in the ``EpochBacklog`` for several), reading each one's acknowledgements and keeping it alive with
/// heartbeats, losing a backup while the commit policy can do without it, and taking it back when it returns.
extension Primary {
    /// Sends an encoded frame to the session's backups: on the sender thread to a single backup (no copy), or
    /// into the backlog that each backup's writer sends from.
    func deliver(_ type: WireFormat.FrameType, epoch: UInt64?, _ payload: UnsafeRawBufferPointer) throws {
        guard let backlog = session.backlog else {
            guard let link = session.links.withLock({ $0[0] }) else { throw WireError.closed }
            try link.connection.send(type, payload)
            link.lastSendNanoseconds.store(MonotonicClock.nanoseconds(), ordering: .relaxed)
            return
        }
        let generation = session.generation.load(ordering: .acquiring)
        let fallenBehind = backlog.append(type, epoch: epoch, payload: Array(payload)) { [self] in
            session.generation.load(ordering: .acquiring) != generation
                || shared.withLock { $0.failure != nil || $0.sessionFailure != nil }
        }
        let current = session.links.withLock { $0 }
        for link in current { link?.frameReady.signal() }
        for index in fallenBehind {
            guard let link = current[index] else { continue }
            linkFailed(
                link,
                WireError.unexpected(
                    "more than \(configuration.catchUpBytes >> 20) MiB of frames behind the other backups"))
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
                    if let authority = configuration.authority,
                        MonotonicClock.nanoseconds() >= authority.validUntilNanoseconds
                    {
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
        guard link.isOpen.exchange(false, ordering: .acquiringAndReleasing), connected.load(ordering: .acquiring) else {
            return
        }
        link.connection.close()
        link.frameReady.signal()
        guard let backlog = session.backlog, configuration.commitPolicy != .all else {
            sessionFailed(error)
            return
        }
        backlog.detach(link.index)
        let connectedCount = session.connected.count
        let required = configuration.commitPolicy.required(of: configuration.backups.count)
        guard connectedCount >= required else {
            sessionFailed(
                WireError.unexpected(
                    """
                    lost the backup \(link.endpoint) (\(error)) with \(connectedCount) left of the \(required) \
                    the commit policy needs
                    """
                ))
            return
        }
        shared.withLock { $0.statistics.backupsLost += 1 }
        logger.warning(
            """
            lost the backup \(link.endpoint): \(error); committing with the \(connectedCount) others, trying it \
            again meanwhile
            """
        )
        let generation = session.generation.load(ordering: .acquiring)
        do {
            try session.spawnThread("fgbi-rejoin-\(link.index)") { [self] in
                rejoinLoop(link.index, generation: generation)
            }
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
            running.load() && session.generation.load(ordering: .acquiring) == generation
        }
        while current() {
            let link: BackupLink
            do {
                link = try BackupLink.open(
                    index: index, configuration: configuration, hello: makeHello(stream: session.stream),
                    pageCounts: regions.map(\.pageCount), handshakeTimeout: .seconds(2))
            } catch {
                if !reported { logger.info("the backup \(endpoint) is not back yet: \(error)") }
                reported = true
                let until = MonotonicClock.nanoseconds() + pause
                while current(), MonotonicClock.nanoseconds() < until { MonotonicClock.sleep(nanoseconds: 5_000_000) }
                pause = min(pause * 2, 1_000_000_000)
                continue
            }
            guard let backlog = session.backlog, let held = catchUpPoint(of: link, backlog: backlog) else {
                link.close()
                let holds = link.welcome.nextEpoch > 0 ? "epoch \(link.welcome.nextEpoch - 1)" : "nothing"
                logger.warning(
                    """
                    the backup \(endpoint) returned holding \(holds), which the frames kept cannot bring up to \
                    date: resynchronising every backup
                    """
                )
                sessionFailed(WireError.unexpected("the backup \(endpoint) returned behind the frames kept for it"))
                return
            }
            let installed = session.links.withLock { links -> Bool in
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
                try session.spawnThread("fgbi-beat-\(index)") { [self] in heartbeatLoop(link) }
                try startThreads(of: link)
            } catch {
                linkFailed(link, error)
                return
            }
            if let epoch = held, let committed = commitTracker.acknowledge(epoch, from: index) { published(committed) }
            shared.withLock { $0.statistics.catchUps += 1 }
            logger.notice(
                """
                the backup \(endpoint) is back \
                \(held.map { "at epoch \($0)" } ?? "as it was when the session started"): catching up from the \
                frames kept
                """
            )
            return
        }
    }

    /// Where a returning backup catches up from, attaching it to the backlog there: after the epoch of this
    /// session it holds (`.some(epoch)`), or from the session's first frame when it holds again exactly what it
    /// held at the session's start (`.some(nil)`); nil when the frames kept cannot bring it up to date.
    private func catchUpPoint(of link: BackupLink, backlog: EpochBacklog) -> UInt64?? {
        if let held = link.holdsEpoch(of: session.stream) {
            return backlog.attach(link.index, holding: held) ? .some(held) : nil
        }
        guard let start = session.heldAtStart[link.index], start.nextEpoch == link.welcome.nextEpoch,
            start.summary == link.summary,
            backlog.attachFromFirst(link.index)
        else { return nil }
        return .some(nil)
    }

    /// The end of a session on purpose, once its last epoch is committed: each backup is told bye after the
    /// frames it has yet to send (up to ``PrimaryConfiguration/backupTimeout``; one that cannot take them is
    /// closed), then the sending side of each connection is shut and its acknowledgements read until the
    /// backup closes.
    func sayGoodbye() {
        pipeline.captures.stopSender()
        join("fgbi-sender")
        let open = session.connected
        guard let backlog = session.backlog else {
            // Bye, then FIN, then read until the backup closes: closing with its heartbeats unread would
            // reset the connection, and a reset can destroy the bye before the backup reads it.
            guard let link = open.first else { return }
            try? link.connection.send(.bye)
            connected.store(false, ordering: .releasing)
            link.isOpen.store(false, ordering: .releasing)
            link.connection.finishSending()
            session.joinThreads()
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
            logger.warning(
                """
                the backup \(link.endpoint) did not take the last frames within the backup timeout: closing its \
                connection without a bye
                """
            )
            link.close()
        }
        for link in open { link.isOpen.store(false, ordering: .releasing) }
        session.joinThreads()
    }
}
