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
                opened.append(try BackupLink.open(index: index, configuration: configuration, hello: hello,
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
        var hello = Hello(mode: configuration.engine.mode, wantsAuthentication: configuration.key != nil,
                          blockSize: engine.geometry.blockSize, pageSize: engine.geometry.pageSize,
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
        let generation = sessionGeneration.add(1, ordering: .acquiringAndReleasing).newValue
        sessionStream = stream
        heldAtSessionStart = Dictionary(uniqueKeysWithValues: opened.map { ($0.index, ($0.welcome.nextEpoch, $0.summary)) })
        backlog = stream == nil ? nil : EpochBacklog(backups: configuration.backups.count,
                                                    required: configuration.commitPolicy.required(of: configuration.backups.count),
                                                    budgetBytes: configuration.catchUpBytes)
        shared.withLock { $0.sessionFailure = nil }
        links.withLock { links in
            for index in links.indices { links[index] = nil }
            for link in opened { links[link.index] = link }
        }
        connected.store(true, ordering: .releasing)
        for link in opened { try spawnSessionThread("fgbi-beat-\(link.index)") { [self] in heartbeatLoop(link) } }
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
        let firstEpoch = max(engine.upcomingEpoch, opened.map(\.welcome.nextEpoch).max() ?? 0)
        if summary != nil || firstEpoch != engine.upcomingEpoch || shared.withLock({ $0.statistics.synchronisations }) > 0 {
            engine = try PrimaryEngine(regions: regions, configuration: configuration.engine, firstEpoch: firstEpoch,
                                       backupHolds: summary)
        }
        var fetched = (pages: 0, bytes: 0)
        if configuration.backups.count == 1, let summary, configuration.precopy.fetchesBlockHashes, configuration.precopy.enabled,
           configuration.engine.mode == .fgbi, configuration.tracker != .scan {
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
            logger.info("connected to the backup \(link.endpoint)",
                        metadata: ["next_epoch": "\(firstEpoch)", "backup_holds": "\(link.welcome.nextEpoch > 0 ? "epoch \(link.welcome.nextEpoch - 1)" : "nothing")",
                                   "send_path": "\(link.connection.sendPath)"])
            if let fallback = link.connection.sendPathFallback { logger.notice("frames go out with sendmsg(2): \(fallback)") }
        }
        try spawn("fgbi-sender") { [self] in senderLoop() }
        for link in opened { try startThreads(of: link) }
        for index in missing { try spawnSessionThread("fgbi-rejoin-\(index)") { [self] in rejoinLoop(index, generation: generation) } }
    }

    /// Starts a connected backup's acknowledgement thread and, with several backups, its writer.
    func startThreads(of link: BackupLink) throws {
        if let backlog {
            if link.holdsEpoch(of: sessionStream) == nil { backlog.attachFromStart(link.index) }
            try spawnSessionThread("fgbi-write-\(link.index)") { [self] in writerLoop(link, backlog: backlog) }
        }
        try spawnSessionThread("fgbi-acks-\(link.index)") { [self] in acknowledgementLoop(link) }
    }

    func spawnSessionThread(_ name: String, _ body: @escaping @Sendable () -> Void) throws {
        let thread = try JoinableThread(name: name, body)
        sessionThreads.withLock { $0.append(thread) }
    }

    /// Ends the session's threads and closes its connections; captures waiting to be sent go back to the
    /// free list (a new session resynchronises what they held).
    func closeSession() {
        connected.store(false, ordering: .releasing)
        sessionGeneration.add(1, ordering: .acquiringAndReleasing)
        // After the generation moved: a rejoin thread installs a backup only under the links' lock and while
        // the generation is its own, so every backup installed is closed here, and one installed later is not.
        closeLinks()
        queues.withLock { $0.senderShouldExit = true }
        readyCount.signal()
        join("fgbi-sender")
        joinSessionThreads()
        links.withLock { links in for index in links.indices { links[index] = nil } }
        let dropped = queues.withLock { queues -> Int in
            let count = queues.ready.count
            queues.free.append(contentsOf: queues.ready)
            queues.ready.removeAll()
            queues.senderShouldExit = false
            return count
        }
        for _ in 0..<dropped { freeCount.signal() }
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
            } catch where Self.isWorthRetrying(error) && MonotonicClock.nanoseconds() + pause < deadline {
                failures += 1
                if failures == 1 || failures % 10 == 0 {
                    logger.warning("cannot reach \(configuration.backups.count == 1 ? "the backup \(configuration.backup)" : "enough backups") yet (\(error)); trying again for up to \(window / 1_000_000_000) s (--reconnect-s)")
                }
                if let authority = configuration.authority, MonotonicClock.nanoseconds() >= authority.validUntilNanoseconds {
                    throw LostPrimaryship(term: authority.term, lastCommittedEpoch: nil, reason: "lapsed while reaching the backup: \(authority.lossReason)")
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
        while running.load(ordering: .acquiring) {
            do {
                try synchronise()
                try epochLoop()
            } catch {
                // A failed connection ends the session; anything else (the tracker, the engine) ends replication.
                if shared.withLock({ $0.sessionFailure }) == nil {
                    fail(error)
                    return
                }
            }
            guard running.load(ordering: .acquiring) else { return }
            // The session failed: reconnect within the window, or stop for good.
            let recorded: Error? = shared.withLock { $0.sessionFailure }
            let reason: Error = recorded ?? WireError.unexpected("the session ended")
            closeSession()
            metrics.connected.record(0)
            logger.warning("lost the backup: \(reason)", metadata: ["reconnect_window_ms": "\(configuration.reconnectWindow.wholeMilliseconds)"])
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
        while running.load(ordering: .acquiring), MonotonicClock.nanoseconds() < deadline {
            do {
                try openSession()
                shared.withLock { $0.statistics.reconnects += 1 }
                metrics.reconnects.increment()
                return true
            } catch {
                lastError = error
            }
            let until = min(deadline, MonotonicClock.nanoseconds() + pause)
            while running.load(ordering: .acquiring), MonotonicClock.nanoseconds() < until { MonotonicClock.sleep(nanoseconds: 5_000_000) }
            pause = min(pause * 2, 1_000_000_000)
        }
        if running.load(ordering: .acquiring) {
            logger.error("could not reach the backup again within the reconnect window: \(lastError)")
            fail(lastError)
        }
        return false
    }

    /// Pre-copy rounds while the guest runs: every page once (less what the backup already holds), then the
    /// pages written meanwhile, until the written set is small or stops shrinking. The next paused epoch
    /// takes the rest and, once acknowledged, is the session's first committed epoch.
    func synchronise() throws {
        let policy = configuration.precopy
        guard policy.enabled else { return }
        // The scan tracker reports pages whose content differs from its last look, not pages written since
        // a copy: a page copied mid-change and changed back would never be reported. Without a write-based
        // tracker the first paused epoch takes every page instead.
        guard configuration.tracker != .scan else {
            logger.notice("no pre-copy with the scan tracker: the first epoch captures every page with the guest paused")
            return
        }
        let start = MonotonicClock.nanoseconds()
        // Everything written before now is covered by the first pass: forget it.
        for (index, tracker) in trackers.enumerated() { try tracker.collect(into: &dirty[index]) }
        var rounds: [Int] = []
        var all: [PrimaryEngine.PageSpan] = []
        for (index, region) in regions.enumerated() { all.append(.init(region: index, start: 0, count: region.pageCount)) }
        try precopy(all, firstPass: true)
        guard running.load(ordering: .acquiring) else { return }  // stopped midway: the final epoch is a full one
        engine.completeFirstPass()
        rounds.append(regions.reduce(0) { $0 + $1.pageCount })
        while rounds.count < policy.maximumRounds, running.load(ordering: .acquiring) {
            var spans: [PrimaryEngine.PageSpan] = []
            for (index, tracker) in trackers.enumerated() {
                try tracker.collect(into: &dirty[index])
                for run in dirty[index].runs { spans.append(.init(region: index, start: run.start, count: run.count)) }
            }
            let pages = spans.reduce(0) { $0 + $1.count }
            rounds.append(pages)
            try precopy(spans, firstPass: false)
            if pages <= policy.convergedPages || Double(pages) > Double(rounds[rounds.count - 2]) * policy.minimumShrink { break }
        }
        let milliseconds = Double(MonotonicClock.nanoseconds() - start) / 1e6
        shared.withLock {
            $0.statistics.lastSynchronisation?.rounds = rounds.count
            $0.statistics.lastSynchronisation?.pagesPerRound = rounds
            $0.statistics.lastSynchronisation?.milliseconds = milliseconds
            $0.statistics.lastSynchronisation?.epoch = engine.upcomingEpoch
        }
        logger.info("pre-copy done; the next epoch ends the synchronisation",
                    metadata: ["rounds": "\(rounds.count)", "pages_per_round": "\(rounds)", "ms": "\(Int(milliseconds))"])
    }

    /// Captures `spans` as pre-copy steps of at most ``PrecopyPolicy/chunkPages`` pages each and queues them.
    func precopy(_ spans: [PrimaryEngine.PageSpan], firstPass: Bool) throws {
        let chunk = configuration.precopy.chunkPages
        var pieces: [PrimaryEngine.PageSpan] = []
        var filled = 0
        func flush() throws {
            guard !pieces.isEmpty else { return }
            let capture = try acquireCapture()
            do {
                try engine.capturePrecopy(pieces, firstPass: firstPass, into: capture)
            } catch {
                release(capture)
                throw error
            }
            queues.withLock { $0.ready.append(capture) }
            readyCount.signal()
            pieces.removeAll(keepingCapacity: true)
            filled = 0
        }
        for var span in spans {
            while span.count > 0 {
                // Only the first pass may be abandoned (the final epoch is then a full one); a later round
                // holds pages its collect took from the tracker, which no later capture would see again.
                guard running.load(ordering: .acquiring) || !firstPass else { return }
                let taken = min(span.count, chunk - filled)
                pieces.append(.init(region: span.region, start: span.start, count: taken))
                span.start += taken
                span.count -= taken
                filled += taken
                if filled == chunk { try flush() }
            }
        }
        try flush()
    }
}
