import Dispatch
import Logging
import Synchronization

/// The primary end of FGBI replication: tracks the regions, cuts epochs, and streams them to a backup.
///
/// Threads, each with one job:
/// - checkpoint: runs each session: first synchronises the backup with pre-copy rounds while the guest
///   runs (``PrecopyPolicy``), then every `epochInterval` pauses the guest (``PauseHooks``), collects the
///   written pages, captures what changed, resumes the guest, and queues the capture. When every capture
///   buffer is still being encoded or sent it waits before pausing, so the epoch grows instead of memory
///   (backpressure). When the backup is lost it reconnects (within ``PrimaryConfiguration/reconnectWindow``)
///   and synchronises the new session with what differs;
/// - sender: encodes queued captures in order and sends them as epoch (or pre-copy) frames;
/// - acknowledgements: reads the backup's acks and publishes each committed epoch (``commits()``,
///   ``waitForCommit(_:timeout:)``), the moment output of that epoch may be released;
/// - heartbeat: sends a heartbeat whenever nothing else went out for `heartbeatInterval`.
public final class Primary: @unchecked Sendable {
    /// Sees each capture on the sender thread right after it was encoded, with the epoch's statistics, before
    /// the capture's buffer is reused: for tools that compare modes on the very same epochs
    /// (``PrimaryEngine/encodeShadow(of:)``). It must not keep the capture, and it delays the sender.
    public typealias CaptureObserver = @Sendable (EpochCapture, EpochStatistics) -> Void

    public let regions: [GuestMemory]
    public let configuration: PrimaryConfiguration
    private let hooks: PauseHooks
    private let observer: CaptureObserver?
    private let logger: Logger
    private let metrics = PrimaryMetrics()
    /// The session's engine; replaced (with the session threads stopped) when a new session starts.
    private var engine: PrimaryEngine
    private let trackers: [any DirtyTracker]
    /// The session's connection; replaced only with the session threads stopped.
    private let link = PthreadLock<FrameConnection?>(nil)

    private struct Queues {
        var free: [EpochCapture]
        var ready: [EpochCapture] = []
        var senderShouldExit = false
    }
    private let queues: PthreadLock<Queues>
    private let freeCount: DispatchSemaphore
    private let readyCount = DispatchSemaphore(value: 0)

    private struct Shared {
        var statistics = ReplicationStatistics()
        /// Why replication stopped for good.
        var failure: Error?
        /// Why the current session ended (the connection failed); the checkpoint thread reconnects.
        var sessionFailure: Error?
        var continuations: [Int: AsyncStream<UInt64>.Continuation] = [:]
        var nextContinuation = 0
    }
    private let shared = PthreadLock(Shared())
    /// The epoch loop runs (cleared by stop() and by a failure).
    private let running = Atomic<Bool>(false)
    /// A session is open and its threads serve it (cleared when this side closes it).
    private let connected = Atomic<Bool>(false)
    private let lastSendNanoseconds = Atomic<UInt64>(0)
    private let threads = PthreadLock<[String: JoinableThread]>([:])
    private var dirty: [DirtyPageSet]

    /// Prepares replication of `regions` (nothing is tracked or sent until ``start()``).
    ///
    /// - Throws: ``FGBIError`` for a bad configuration, ``SystemError`` or ``FGBIError/unsupported(feature:neededBy:hint:)``
    ///   when the tracker cannot run here.
    public init(regions: [GuestMemory], configuration: PrimaryConfiguration, hooks: PauseHooks = .none,
                observer: CaptureObserver? = nil, logger: Logger = Logger(label: "fgbi.primary")) throws {
        guard configuration.captureBuffers >= 1 else { throw FGBIError.invalidArgument("captureBuffers must be at least 1") }
        guard configuration.precopy.chunkPages >= 1, configuration.precopy.maximumRounds >= 1 else {
            throw FGBIError.invalidArgument("pre-copy needs chunks of at least 1 page and at least 1 round")
        }
        self.regions = regions
        self.configuration = configuration
        self.hooks = hooks
        self.observer = observer
        self.logger = logger
        engine = try PrimaryEngine(regions: regions, configuration: configuration.engine)
        trackers = try regions.map { try configuration.tracker.makeTracker(for: $0) }
        queues = PthreadLock(Queues(free: (0..<configuration.captureBuffers).map { _ in EpochCapture() }))
        // Created at zero and signalled up: libdispatch traps when a semaphore is freed below its initial
        // value, which happens when replication stops with captures still in flight.
        freeCount = DispatchSemaphore(value: 0)
        for _ in 0..<configuration.captureBuffers { freeCount.signal() }
        dirty = regions.map { region in
            var set = DirtyPageSet()
            set.reserveCapacity(runs: min(region.pageCount, 1 << 16))
            return set
        }
    }

    deinit {
        if running.load(ordering: .acquiring) || connected.load(ordering: .acquiring) { _ = try? stop(finalEpoch: false) }
    }

    /// Connects to the backup, authenticates, starts tracking and the epoch loop. The first session
    /// synchronises the backup (pre-copy rounds, or one full epoch) before the regular epochs.
    ///
    /// - Throws: ``WireError`` when the backup refuses (layout, key) or the handshake fails; ``SystemError``
    ///   when it cannot be reached.
    public func start() throws {
        guard configuration.key != nil || configuration.backup.isLoopback else {
            throw WireError.keyRequired("the backup \(configuration.backup) is not on loopback")
        }
        guard configuration.key != nil || !configuration.encrypt else {
            throw WireError.keyRequired("encryption was asked for")
        }
        try openSession()
        do {
            for tracker in trackers { try tracker.start() }
            running.store(true, ordering: .releasing)
            try spawn("fgbi-checkpoint") { [self] in sessionLoop() }
        } catch {
            // Undo what started: threads see the failure and end, trackers stop, the connection closes.
            fail(error)
            _ = try? stop(finalEpoch: false)
            throw error
        }
    }

    // MARK: - Sessions

    /// Connects, shakes hands, reads the backup's summary when it holds content, makes the session's
    /// engine and starts the session's sender, acknowledgement and heartbeat threads.
    private func openSession() throws {
        let socket = try Socket.connect(to: configuration.backup, timeoutMilliseconds: min(configuration.backupTimeout.wholeMilliseconds, 3000))
        let connection: FrameConnection
        do {
            connection = try FrameConnection(socket: socket, peer: configuration.backup.description, isPrimary: true,
                                             maximumPayload: 64 << 10, sendPath: configuration.sendPath)
        } catch {
            socket.shutdownBoth()
            throw error
        }
        do {
            connection.setReceiveTimeout(milliseconds: configuration.backupTimeout.wholeMilliseconds)
            var hello = Hello(mode: configuration.engine.mode, wantsAuthentication: configuration.key != nil,
                              blockSize: engine.geometry.blockSize, pageSize: engine.geometry.pageSize,
                              regionLengths: regions.map(\.length), nonce: randomBytes(32))
            hello.wantsEncryption = configuration.encrypt
            let welcome = try SessionSetup.openAsPrimary(connection, hello: hello, key: configuration.key)
            var summary: ReplicaSummary?
            if welcome.nextEpoch > 0 {
                var assembler = ReplicaSummary.Assembler(pageCounts: regions.map(\.pageCount))
                while !assembler.isComplete {
                    let frame = try connection.receive()
                    switch frame.type {
                    case .summary: try assembler.add(frame.payload)
                    case .heartbeat: continue
                    case .error: throw WireError.refused(String(decoding: frame.payload, as: UTF8.self))
                    default: throw WireError.unexpected("\(frame.type) while reading the backup's summary")
                    }
                }
                summary = assembler.summary
            }
            // The session is open: heartbeats start now, so the backup hears from us while the engine is built.
            shared.withLock { $0.sessionFailure = nil }
            link.withLock { $0 = connection }
            connected.store(true, ordering: .releasing)
            lastSendNanoseconds.store(MonotonicClock.nanoseconds(), ordering: .relaxed)
            try spawn("fgbi-heartbeat") { [self] in heartbeatLoop(connection) }
            // Number on from both our epochs and the backup's, so committed epochs only ever grow.
            let firstEpoch = max(engine.upcomingEpoch, welcome.nextEpoch)
            if summary != nil || firstEpoch != engine.upcomingEpoch || shared.withLock({ $0.statistics.synchronisations }) > 0 {
                engine = try PrimaryEngine(regions: regions, configuration: configuration.engine, firstEpoch: firstEpoch,
                                           backupHolds: summary)
            }
            shared.withLock {
                $0.statistics.synchronisations += 1
                $0.statistics.lastSynchronisation = SynchronisationReport(resynchronised: summary != nil, epoch: firstEpoch)
            }
            metrics.connected.record(1)
            logger.info("connected to the backup \(configuration.backup)",
                        metadata: ["next_epoch": "\(firstEpoch)", "backup_holds": "\(welcome.nextEpoch > 0 ? "epoch \(welcome.nextEpoch - 1)" : "nothing")",
                                   "send_path": "\(connection.sendPath)"])
            if let fallback = connection.sendPathFallback { logger.notice("frames go out with sendmsg(2): \(fallback)") }
            shared.withLock { $0.statistics.sendPath = connection.sendPath.description }
            try spawn("fgbi-sender") { [self] in senderLoop(connection) }
            try spawn("fgbi-acks") { [self] in acknowledgementLoop(connection) }
        } catch {
            connection.close()
            closeSession()
            throw error
        }
    }

    /// Ends the session's threads and closes its connection; captures waiting to be sent go back to the
    /// free list (a new session resynchronises what they held).
    private func closeSession() {
        connected.store(false, ordering: .releasing)
        link.withLock { $0?.close() }
        queues.withLock { $0.senderShouldExit = true }
        readyCount.signal()
        join("fgbi-sender")
        join("fgbi-heartbeat")
        join("fgbi-acks")
        let dropped = queues.withLock { queues -> Int in
            let count = queues.ready.count
            queues.free.append(contentsOf: queues.ready)
            queues.ready.removeAll()
            queues.senderShouldExit = false
            return count
        }
        for _ in 0..<dropped { freeCount.signal() }
    }

    /// The checkpoint thread: synchronise, run epochs; when the session fails, reconnect and go again.
    private func sessionLoop() {
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
    private func reconnect(after reason: Error) -> Bool {
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
    private func synchronise() throws {
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
    private func precopy(_ spans: [PrimaryEngine.PageSpan], firstPass: Bool) throws {
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

    private func spawn(_ name: String, _ body: @escaping @Sendable () -> Void) throws {
        let thread = try JoinableThread(name: name, body)
        threads.withLock { $0[name] = thread }
    }

    private func join(_ name: String) {
        let thread = threads.withLock { $0.removeValue(forKey: name) }
        thread?.join()
    }

    // MARK: - Epochs

    /// A free capture buffer; waits (backpressure) while all are in use, but not past a failure.
    private func acquireCapture() throws -> EpochCapture {
        if freeCount.wait(timeout: .now()) == .timedOut {
            shared.withLock { $0.statistics.backpressureWaits += 1 }
            metrics.backpressureWaits.increment()
            while freeCount.wait(timeout: .now() + .milliseconds(20)) == .timedOut {
                if let failure = shared.withLock({ $0.failure ?? $0.sessionFailure }) { throw failure }
            }
        }
        return queues.withLock { $0.free.removeLast() }
    }

    private func release(_ capture: EpochCapture) {
        queues.withLock { $0.free.append(capture) }
        freeCount.signal()
    }

    /// One epoch boundary: pause, collect, capture, resume, queue. Returns the epoch captured.
    @discardableResult
    private func checkpoint() throws -> UInt64 {
        let capture = try acquireCapture()
        let start = MonotonicClock.nanoseconds()
        hooks.pause()
        do {
            defer { hooks.resume() }
            for (index, tracker) in trackers.enumerated() { try tracker.collect(into: &dirty[index]) }
            try engine.capture(dirty, into: capture)
            // Published before the guest resumes: a write after the resume must see this epoch as captured
            // (``epochCoveringWritesSoFar`` then names a later one).
            shared.withLock { $0.statistics.lastCapturedEpoch = capture.epoch }
        } catch {
            release(capture)
            throw error
        }
        let pausedNanoseconds = MonotonicClock.nanoseconds() - start
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
    private func epochLoop() throws {
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
            while running.load(ordering: .acquiring), MonotonicClock.nanoseconds() < next {
                let left = next - MonotonicClock.nanoseconds()
                MonotonicClock.sleep(nanoseconds: min(left, 5_000_000))
            }
        }
    }

    private func senderLoop(_ connection: FrameConnection) {
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
                let encoded: (delta: [UInt8], statistics: EpochStatistics)
                do {
                    encoded = try engine.encode(capture)
                } catch {
                    // The engine's failure, not the connection's: reconnecting would not help.
                    release(capture)
                    fail(error)
                    return
                }
                let (delta, statistics) = encoded
                metrics.encode.recordNanoseconds(Int64(statistics.encodeNanoseconds + statistics.compressNanoseconds))
                observer?(capture, statistics)
                release(capture)
                try connection.send(precopy ? .precopy : .epoch, delta)
                lastSendNanoseconds.store(MonotonicClock.nanoseconds(), ordering: .relaxed)
                if precopy {
                    metrics.precopyBytes.increment(by: Int64(delta.count))
                } else {
                    metrics.epochsSent.increment()
                    metrics.bytesSent.increment(by: Int64(delta.count))
                    metrics.pagesWritten.increment(by: Int64(statistics.pagesWritten))
                }
                metrics.blocksSent.increment(by: Int64(statistics.blocksDirty))
                metrics.sharedHits.increment(by: Int64(statistics.sharedHits))
                shared.withLock {
                    $0.statistics.lastSynchronisation?.pagesAlreadyHeld += statistics.pagesAlreadyHeld
                    if precopy {
                        $0.statistics.precopyFrames += 1
                        $0.statistics.precopyBytes += delta.count
                    } else {
                        $0.statistics.epochsSent += 1
                        $0.statistics.bytesSent += delta.count
                        $0.statistics.pagesWritten += statistics.pagesWritten
                    }
                    $0.statistics.blocksSent += statistics.blocksDirty
                    $0.statistics.sharedHits += statistics.sharedHits
                }
            } catch {
                sessionFailed(error)
                return
            }
        }
    }

    private func acknowledgementLoop(_ connection: FrameConnection) {
        while true {
            do {
                let frame = try connection.receive()
                switch frame.type {
                case .ack:
                    var reader = PayloadReader(frame.payload)
                    let epoch = try reader.u64()
                    try reader.finish("ack")
                    let (continuations, lag) = shared.withLock { shared -> ([AsyncStream<UInt64>.Continuation], UInt64) in
                        shared.statistics.lastCommittedEpoch = epoch
                        return (Array(shared.continuations.values), shared.statistics.lag)
                    }
                    metrics.epochsCommitted.increment()
                    metrics.lastCommittedEpoch.record(Int64(epoch))
                    metrics.lag.record(Int64(lag))
                    for continuation in continuations { continuation.yield(epoch) }
                case .heartbeat:
                    continue
                case .error:
                    throw WireError.refused(String(decoding: frame.payload, as: UTF8.self))
                default:
                    throw WireError.unexpected("\(frame.type) from the backup")
                }
            } catch {
                if connected.load(ordering: .acquiring) { sessionFailed(error) }
                return
            }
        }
    }

    private func heartbeatLoop(_ connection: FrameConnection) {
        let interval = configuration.heartbeatInterval.wholeNanoseconds
        // Heartbeats go on through stop()'s final epoch, until the connection is closed on purpose.
        while connected.load(ordering: .acquiring) {
            MonotonicClock.sleep(nanoseconds: interval / 2)
            let idle = MonotonicClock.nanoseconds() - lastSendNanoseconds.load(ordering: .relaxed)
            guard idle >= interval, connected.load(ordering: .acquiring) else { continue }
            var stamp: [UInt8] = []
            appendLittleEndian(MonotonicClock.nanoseconds(), to: &stamp)
            do {
                try connection.send(.heartbeat, stamp)
                lastSendNanoseconds.store(MonotonicClock.nanoseconds(), ordering: .relaxed)
            } catch {
                if connected.load(ordering: .acquiring) { sessionFailed(error) }
                return
            }
        }
    }

    /// The session's connection failed: record why and close it, which wakes every session thread. The
    /// checkpoint thread then reconnects or gives up.
    private func sessionFailed(_ error: Error) {
        let first = shared.withLock { shared -> Bool in
            guard shared.sessionFailure == nil else { return false }
            shared.sessionFailure = error
            return true
        }
        if first { link.withLock { $0?.close() } }
    }

    /// Replication stops for good.
    private func fail(_ error: Error) {
        shared.withLock { shared in
            if shared.failure == nil { shared.failure = error }
        }
        running.store(false, ordering: .releasing)
        link.withLock { $0?.close() }
        finishCommits()
    }

    private func finishCommits() {
        let continuations = shared.withLock { shared -> [AsyncStream<UInt64>.Continuation] in
            defer { shared.continuations.removeAll() }
            return Array(shared.continuations.values)
        }
        for continuation in continuations { continuation.finish() }
    }

    // MARK: - Output commit and status

    /// The last epoch the backup acknowledged as applied, or nil before the first.
    public var committedEpoch: UInt64? { shared.withLock { $0.statistics.lastCommittedEpoch } }

    /// Counters and recent pause times.
    public var statistics: ReplicationStatistics { shared.withLock { $0.statistics } }

    /// Why replication stopped on its own (the backup was lost or refused), or nil.
    public var failure: Error? { shared.withLock { $0.failure } }

    /// Whether the epoch loop is running.
    public var isRunning: Bool { running.load(ordering: .acquiring) }

    /// Every epoch the backup acknowledges from now on, in order. Output produced during epoch N may be
    /// released once N (or a later epoch) arrives here. The stream ends when replication stops.
    public func commits() -> AsyncStream<UInt64> {
        AsyncStream { continuation in
            let id = shared.withLock { shared -> Int in
                shared.nextContinuation += 1
                shared.continuations[shared.nextContinuation] = continuation
                return shared.nextContinuation
            }
            continuation.onTermination = { [weak self] _ in
                _ = self?.shared.withLock { $0.continuations.removeValue(forKey: id) }
            }
        }
    }

    /// The epoch whose commit covers every write the guest made before this call, for output commit: call it
    /// after the writes an output depends on (with the guest's writers outside their pause gate), then
    /// release the output once ``waitForCommit(_:timeout:)`` (or ``commits()``) reaches it. Conservative:
    /// it may name one epoch more than needed, never one too few.
    public var epochCoveringWritesSoFar: UInt64 {
        shared.withLock { $0.statistics.lastCapturedEpoch.map { $0 + 1 } ?? 0 }
    }

    /// Blocks until the backup has acknowledged `epoch` (or a later one); false on timeout or failure.
    public func waitForCommit(_ epoch: UInt64, timeout: Duration) -> Bool {
        waitForCommit(epoch, timeout: timeout, orSessionFailure: false)
    }

    /// As ``waitForCommit(_:timeout:)``; with `orSessionFailure`, also gives up when the session fails (stop()
    /// does not reconnect, so its final epoch can no longer commit then).
    private func waitForCommit(_ epoch: UInt64, timeout: Duration, orSessionFailure: Bool) -> Bool {
        let deadline = MonotonicClock.nanoseconds() + timeout.wholeNanoseconds
        while MonotonicClock.nanoseconds() < deadline {
            let (committed, failed) = shared.withLock {
                ($0.statistics.lastCommittedEpoch, $0.failure != nil || (orSessionFailure && $0.sessionFailure != nil))
            }
            if let committed, committed >= epoch { return true }
            if failed { return false }
            MonotonicClock.sleep(nanoseconds: 200_000)
        }
        return false
    }

    /// Stops replication. With `finalEpoch`, first cuts one last epoch (everything written up to now) and
    /// waits until the backup acknowledges it. Tells the backup replication ended on purpose, then releases
    /// the connection and the trackers. Returns the last committed epoch.
    ///
    /// - Throws: the failure that stopped replication earlier, if any (or the session's, when stop() finds
    ///   the backup lost and not yet back); or the final epoch's error.
    @discardableResult
    public func stop(finalEpoch: Bool = true) throws -> UInt64? {
        let wasRunning = running.exchange(false, ordering: .acquiringAndReleasing)
        join("fgbi-checkpoint")
        var finalError: Error? = shared.withLock { $0.failure ?? $0.sessionFailure }
        if finalError == nil, !connected.load(ordering: .acquiring) {
            finalError = WireError.unexpected("replication stopped while no backup was connected")
        }
        if wasRunning, finalEpoch, finalError == nil {
            do {
                let last = try checkpoint()
                if !waitForCommit(last, timeout: configuration.backupTimeout, orSessionFailure: true) {
                    let failure: Error? = shared.withLock { $0.failure ?? $0.sessionFailure }
                    finalError = failure ?? WireError.timedOut(milliseconds: configuration.backupTimeout.wholeMilliseconds)
                }
            } catch {
                finalError = error
            }
        }
        let connection = link.withLock { $0 }
        // On failure the sender may be stuck in a send the backup no longer reads: closing frees it.
        if finalError != nil { connection?.close() }
        queues.withLock { $0.senderShouldExit = true }
        readyCount.signal()
        join("fgbi-sender")
        if finalError == nil, let connection {
            // Bye, then FIN, then read until the backup closes: closing with its heartbeats unread would
            // reset the connection, and a reset can destroy the bye before the backup reads it.
            try? connection.send(.bye)
            connected.store(false, ordering: .releasing)
            connection.finishSending()
            join("fgbi-acks")
        }
        closeSession()
        for tracker in trackers { try? tracker.stop() }
        if let finalError {
            shared.withLock { if $0.failure == nil { $0.failure = finalError } }
        }
        finishCommits()
        if let finalError { throw finalError }
        return committedEpoch
    }
}
