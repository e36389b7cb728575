import Dispatch
import Logging
import Synchronization

/// The primary's sessions: connecting and handshaking, the synchronisation that brings a backup up to date
/// while the guest runs (pre-copy rounds), and reconnecting when the backup is lost.
extension Primary {
    /// Connects to the backups and shakes hands (reading the summary of each that holds content), makes the
    /// session's engine and starts the session's threads. With several backups, those that cannot be reached
    /// are tried again in the background while the commit policy can be met without them.
    func openSession() throws {
        let endpoints = configuration.backups
        let stream: [UInt8]? = endpoints.count > 1 ? randomBytes(16) : nil
        let hello = makeHello(stream: stream)
        var opened: [BackupLink] = []
        var missing: [Int] = []
        var lastError: Error?
        for index in endpoints.indices {
            do {
                opened.append(
                    try BackupLink.open(
                        index: index, configuration: configuration, hello: hello,
                        pageCounts: regions.map(\.pageCount), handshakeTimeout: configuration.backupTimeout))
            } catch {
                lastError = error
                missing.append(index)
                if endpoints.count > 1 { logger.warning("cannot reach the backup \(endpoints[index]): \(error)") }
            }
        }
        let required = configuration.commitPolicy.required(of: endpoints.count)
        guard opened.count >= required else {
            for link in opened { link.close() }
            throw lastError ?? WireError.unexpected("no backup reached")
        }
        do {
            try startSession(with: opened, missing: missing, stream: stream)
        } catch {
            for link in opened { link.close() }
            closeSession()
            throw error
        }
    }

    /// What this primary says first to each backup of a session (``BackupLink/open`` adds the nonce and
    /// whether the session is encrypted).
    func makeHello(stream: [UInt8]?) -> Hello {
        var hello = Hello(
            mode: configuration.engine.mode, wantsAuthentication: configuration.key != nil,
            blockSize: pipeline.engine.geometry.blockSize, pageSize: pipeline.engine.geometry.pageSize,
            regionLengths: regions.map(\.length), nonce: [])
        hello.guest = configuration.guestName ?? ""
        hello.cluster = configuration.clusterName ?? ""
        hello.stream = stream
        if stream != nil {
            let count = configuration.backups.count
            hello.group = BackupGroup(backups: count, quorum: configuration.commitPolicy.required(of: count))
        }
        return hello
    }

    /// Starts a session with the backups reached: heartbeats first (so they hear from us while the engine is
    /// built), the engine for what they hold, then the sender, each backup's threads, and a rejoin thread for
    /// each backup not reached.
    private func startSession(with opened: [BackupLink], missing: [Int], stream: [UInt8]?) throws {
        let generation = session.generation.add(1, ordering: .acquiringAndReleasing).newValue
        session.stream = stream
        session.heldAtStart = Dictionary(
            uniqueKeysWithValues: opened.map { ($0.index, ($0.welcome.nextEpoch, $0.summary)) })
        session.backlog =
            stream == nil
            ? nil
            : EpochBacklog(
                backups: configuration.backups.count,
                required: configuration.commitPolicy.required(of: configuration.backups.count),
                budgetBytes: configuration.catchUpBytes)
        shared.withLock { $0.sessionFailure = nil }
        session.links.withLock { links in
            for index in links.indices { links[index] = nil }
            for link in opened { links[link.index] = link }
        }
        connected.store(true, ordering: .releasing)
        for link in opened { try session.spawnThread("fgbi-beat-\(link.index)") { [self] in heartbeatLoop(link) } }
        // What every backup holds: a backup with no epoch holds zeros, and pages the backups disagree on
        // are sent to all.
        let summary: ReplicaSummary?
        if opened.count == 1 {
            summary = opened[0].summary
        } else if opened.contains(where: { $0.summary != nil }) {
            let zero = ReplicaSummary.zeroFilled(pageCounts: regions.map(\.pageCount), pageSize: GuestMemory.pageSize)
            summary = ReplicaSummary.common(opened.map { $0.summary ?? zero })
        } else {
            summary = nil
        }
        // Number on from both our epochs and the backups', so committed epochs only ever grow.
        let firstEpoch = max(pipeline.engine.upcomingEpoch, opened.map(\.welcome.nextEpoch).max() ?? 0)
        if summary != nil || firstEpoch != pipeline.engine.upcomingEpoch
            || shared.withLock({ $0.statistics.synchronisations }) > 0
        {
            try pipeline.restart(firstEpoch: firstEpoch, backupHolds: summary)
        }
        var fetched = (pages: 0, bytes: 0)
        if configuration.backups.count == 1, let summary, configuration.precopy.fetchesBlockHashes,
            configuration.precopy.enabled,
            configuration.engine.mode == .fgbi, configuration.tracker != .scan
        {
            fetched = try fetchBlockHashes(from: opened[0], summary: summary)
        }
        shared.withLock {
            $0.statistics.synchronisations += 1
            $0.statistics.lastSynchronisation = SynchronisationReport(resynchronised: summary != nil, epoch: firstEpoch)
            $0.statistics.lastSynchronisation?.blockHashPages = fetched.pages
            $0.statistics.lastSynchronisation?.blockHashBytes = fetched.bytes
            $0.statistics.sendPath = opened[0].connection.sendPath.description
            $0.statistics.encrypted = opened.allSatisfy(\.encrypts)
        }
        metrics.connected.record(1)
        for link in opened {
            logger.info(
                "connected to the backup \(link.endpoint)",
                metadata: [
                    "next_epoch": "\(firstEpoch)",
                    "backup_holds": "\(link.welcome.nextEpoch > 0 ? "epoch \(link.welcome.nextEpoch - 1)" : "nothing")",
                    "send_path": "\(link.connection.sendPath)",
                ])
            if let fallback = link.connection.sendPathFallback {
                logger.notice("frames go out with sendmsg(2): \(fallback)")
            }
        }
        try spawn("fgbi-sender") { [self] in
            pipeline.sendLoop(
                deliver: { try deliver($0, epoch: $1, $2) }, engineFailed: fail, sessionFailed: sessionFailed)
        }
        for link in opened { try startThreads(of: link) }
        for index in missing {
            try session.spawnThread("fgbi-rejoin-\(index)") { [self] in rejoinLoop(index, generation: generation) }
        }
    }

    /// Starts a connected backup's acknowledgement thread and, with several backups, its writer.
    func startThreads(of link: BackupLink) throws {
        if let backlog = session.backlog {
            if link.holdsEpoch(of: session.stream) == nil { backlog.attachFromStart(link.index) }
            try session.spawnThread("fgbi-write-\(link.index)") { [self] in writerLoop(link, backlog: backlog) }
        }
        try session.spawnThread("fgbi-acks-\(link.index)") { [self] in acknowledgementLoop(link) }
    }

    /// Ends the session's threads and closes its connections; captures waiting to be sent go back to the
    /// free list (a new session resynchronises what they held).
    func closeSession() {
        connected.store(false, ordering: .releasing)
        session.generation.add(1, ordering: .acquiringAndReleasing)
        // After the generation moved: a rejoin thread installs a backup only under the links' lock and while
        // the generation is its own, so every backup installed is closed here, and one installed later is not.
        session.closeLinks()
        pipeline.captures.stopSender()
        join("fgbi-sender")
        session.joinThreads()
        session.clearLinks()
        pipeline.captures.recycleQueued()
    }

    /// The first session, with the retry window of a reconnect (``PrimaryConfiguration/reconnectWindow``): a
    /// backup not listening yet, or a connection dropped or timed out during the handshake (a backup busy
    /// with a flood of connections evicts handshakes), is tried again with backoff; a refusal (key, guest,
    /// layout, term) fails at once, and so does a primaryship that lapses meanwhile.
    func openFirstSession() throws {
        let window = configuration.reconnectWindow.wholeNanoseconds
        let deadline = MonotonicClock.nanoseconds() + window
        var pause: UInt64 = 50_000_000
        var failures = 0
        while true {
            do {
                try openSession()
                if failures > 0 { logger.notice("reached the backups after \(failures) failed attempts") }
                return
            } catch  where Self.isWorthRetrying(error) && MonotonicClock.nanoseconds() + pause < deadline {
                failures += 1
                if failures == 1 || failures % 10 == 0 {
                    let what =
                        configuration.backups.count == 1 ? "the backup \(configuration.backup)" : "enough backups"
                    logger.warning(
                        """
                        cannot reach \(what) yet (\(error)); trying again for up to \(window / 1_000_000_000) s \
                        (--reconnect-s)
                        """
                    )
                }
                if let authority = configuration.authority,
                    MonotonicClock.nanoseconds() >= authority.validUntilNanoseconds
                {
                    throw LostPrimaryship(
                        term: authority.term, lastCommittedEpoch: nil,
                        reason: "lapsed while reaching the backup: \(authority.lossReason)")
                }
                MonotonicClock.sleep(nanoseconds: pause)
                pause = min(pause * 2, 1_000_000_000)
            }
        }
    }

    /// Whether a failed session opening may succeed if tried again: the backup unreachable for now, or the
    /// connection lost during the handshake. Not a refusal by the backup, nor a check of this end.
    static func isWorthRetrying(_ error: Error) -> Bool {
        if error is SystemError { return true }
        guard let wire = error as? WireError else { return false }
        switch wire {
        case .closed, .timedOut: return true
        default: return false
        }
    }

    /// The checkpoint thread: synchronise, run epochs; when the session fails, reconnect and go again.
    func sessionLoop() {
        while running.load() {
            do {
                try pipeline.synchronise()
                try pipeline.epochLoop()
            } catch {
                // A failed connection ends the session; anything else (the tracker, the engine) ends replication.
                if shared.withLock({ $0.sessionFailure }) == nil {
                    fail(error)
                    return
                }
            }
            guard running.load() else { return }
            // The session failed: reconnect within the window, or stop for good.
            let recorded: Error? = shared.withLock { $0.sessionFailure }
            let reason: Error = recorded ?? WireError.unexpected("the session ended")
            closeSession()
            metrics.connected.record(0)
            logger.warning(
                "lost the backup: \(reason)",
                metadata: ["reconnect_window_ms": "\(configuration.reconnectWindow.wholeMilliseconds)"])
            guard reconnect(after: reason) else { return }
        }
    }

    /// Tries to open a new session until the reconnect window closes; false (replication failed) if not.
    func reconnect(after reason: Error) -> Bool {
        let window = configuration.reconnectWindow.wholeNanoseconds
        guard window > 0 else {
            fail(reason)
            return false
        }
        let deadline = MonotonicClock.nanoseconds() + window
        var pause: UInt64 = 50_000_000
        var lastError = reason
        while running.load(), MonotonicClock.nanoseconds() < deadline {
            do {
                try openSession()
                shared.withLock { $0.statistics.reconnects += 1 }
                metrics.reconnects.increment()
                return true
            } catch {
                lastError = error
            }
            let until = min(deadline, MonotonicClock.nanoseconds() + pause)
            while running.load(), MonotonicClock.nanoseconds() < until { MonotonicClock.sleep(nanoseconds: 5_000_000) }
            pause = min(pause * 2, 1_000_000_000)
        }
        if running.load() {
            logger.error("could not reach the backup again within the reconnect window: \(lastError)")
            fail(lastError)
        }
        return false
    }
}
