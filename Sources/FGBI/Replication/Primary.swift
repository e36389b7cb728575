import Dispatch
import Synchronization

/// The primary end of FGBI replication: tracks the regions, cuts epochs, and streams them to a backup.
///
/// Threads, each with one job:
/// - checkpoint: every `epochInterval`, pauses the guest (``PauseHooks``), collects the written pages,
///   captures what changed, resumes the guest, and queues the capture. When every capture buffer is still
///   being encoded or sent it waits before pausing, so the epoch grows instead of memory (backpressure);
/// - sender: encodes queued captures in order and sends them as epoch frames;
/// - acknowledgements: reads the backup's acks and publishes each committed epoch (``commits()``,
///   ``waitForCommit(_:timeout:)``), the moment output of that epoch may be released;
/// - heartbeat: sends a heartbeat whenever nothing else went out for `heartbeatInterval`.
public final class Primary: @unchecked Sendable {
    public let regions: [GuestMemory]
    public let configuration: PrimaryConfiguration
    private let hooks: PauseHooks
    private let engine: PrimaryEngine
    private let trackers: [any DirtyTracker]
    private var connection: FrameConnection?

    private struct Queues {
        var free: [EpochCapture]
        var ready: [EpochCapture] = []
        var senderShouldExit = false
    }
    private let queues: Mutex<Queues>
    private let freeCount: DispatchSemaphore
    private let readyCount = DispatchSemaphore(value: 0)

    private struct Shared {
        var statistics = ReplicationStatistics()
        var failure: Error?
        var continuations: [Int: AsyncStream<UInt64>.Continuation] = [:]
        var nextContinuation = 0
    }
    private let shared = Mutex(Shared())
    /// The epoch loop runs (cleared by stop() and by a failure).
    private let running = Atomic<Bool>(false)
    /// The connection is open and its threads serve it (cleared only when this side closes it on purpose).
    private let connected = Atomic<Bool>(false)
    private let lastSendNanoseconds = Atomic<UInt64>(0)
    private let threads = Mutex<[String: JoinableThread]>([:])
    private var dirty: [DirtyPageSet]

    /// Prepares replication of `regions` (nothing is tracked or sent until ``start()``).
    ///
    /// - Throws: ``FGBIError`` for a bad configuration, ``SystemError`` or ``FGBIError/unsupported(feature:neededBy:hint:)``
    ///   when the tracker cannot run here.
    public init(regions: [GuestMemory], configuration: PrimaryConfiguration, hooks: PauseHooks = .none) throws {
        guard configuration.captureBuffers >= 1 else { throw FGBIError.invalidArgument("captureBuffers must be at least 1") }
        self.regions = regions
        self.configuration = configuration
        self.hooks = hooks
        engine = try PrimaryEngine(regions: regions, configuration: configuration.engine)
        trackers = try regions.map { try configuration.tracker.makeTracker(for: $0) }
        queues = Mutex(Queues(free: (0..<configuration.captureBuffers).map { _ in EpochCapture() }))
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
        if connected.load(ordering: .acquiring) { _ = try? stop(finalEpoch: false) }
    }

    /// Connects to the backup, authenticates, starts tracking and the epoch loop. Epoch 0, sent first, is
    /// the full copy a new backup needs.
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
        let socket = try Socket.connect(to: configuration.backup)
        let connection = FrameConnection(socket: socket, peer: configuration.backup.description, isPrimary: true,
                                         maximumPayload: 64 << 10)
        connection.setReceiveTimeout(milliseconds: configuration.backupTimeout.wholeMilliseconds)
        var hello = Hello(mode: configuration.engine.mode, wantsAuthentication: configuration.key != nil,
                          blockSize: engine.geometry.blockSize, pageSize: engine.geometry.pageSize,
                          regionLengths: regions.map(\.length), nonce: randomBytes(32))
        hello.wantsEncryption = configuration.encrypt
        let welcome = try SessionSetup.openAsPrimary(connection, hello: hello, key: configuration.key)
        guard welcome.nextEpoch == 0 else {
            connection.close()
            throw WireError.refused("the backup holds epoch \(welcome.nextEpoch - 1) of an earlier session; "
                                    + "resynchronising a backup that holds state is not supported yet: restart it empty")
        }
        self.connection = connection
        do {
            for tracker in trackers { try tracker.start() }
            connected.store(true, ordering: .releasing)
            running.store(true, ordering: .releasing)
            lastSendNanoseconds.store(MonotonicClock.nanoseconds(), ordering: .relaxed)
            try spawn("fgbi-sender") { [self] in senderLoop() }
            try spawn("fgbi-acks") { [self] in acknowledgementLoop() }
            try spawn("fgbi-heartbeat") { [self] in heartbeatLoop() }
            try spawn("fgbi-checkpoint") { [self] in checkpointLoop() }
        } catch {
            // Undo what started: threads see the failure and end, trackers stop, the connection closes.
            fail(error)
            _ = try? stop(finalEpoch: false)
            throw error
        }
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

    /// One epoch boundary: pause, collect, capture, resume, queue. Returns the epoch captured.
    @discardableResult
    private func checkpoint() throws -> UInt64 {
        if freeCount.wait(timeout: .now()) == .timedOut {
            shared.withLock { $0.statistics.backpressureWaits += 1 }
            // Wait for the sender, but not past a failure (the sender may be gone).
            while freeCount.wait(timeout: .now() + .milliseconds(20)) == .timedOut {
                if let failure = shared.withLock({ $0.failure }) { throw failure }
            }
        }
        let capture = queues.withLock { $0.free.removeLast() }
        let start = MonotonicClock.nanoseconds()
        hooks.pause()
        do {
            defer { hooks.resume() }
            for (index, tracker) in trackers.enumerated() { try tracker.collect(into: &dirty[index]) }
            try engine.capture(dirty, into: capture)
        } catch {
            queues.withLock { $0.free.append(capture) }
            freeCount.signal()
            throw error
        }
        let paused = Double(MonotonicClock.nanoseconds() - start) / 1e6
        shared.withLock {
            $0.statistics.epochsCaptured += 1
            $0.statistics.recordPause(milliseconds: paused)
        }
        queues.withLock { $0.ready.append(capture) }
        readyCount.signal()
        return capture.epoch
    }

    private func checkpointLoop() {
        let interval = configuration.epochInterval.wholeNanoseconds
        var next = MonotonicClock.nanoseconds()
        while running.load(ordering: .acquiring) {
            do {
                try checkpoint()
            } catch {
                fail(error)
                return
            }
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

    private func senderLoop() {
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
                let encoded: (delta: [UInt8], statistics: EpochStatistics)
                do {
                    encoded = try engine.encode(capture)
                } catch {
                    queues.withLock { $0.free.append(capture) }
                    freeCount.signal()
                    throw error
                }
                let (delta, statistics) = encoded
                queues.withLock { $0.free.append(capture) }
                freeCount.signal()
                try connection?.send(.epoch, delta)
                lastSendNanoseconds.store(MonotonicClock.nanoseconds(), ordering: .relaxed)
                shared.withLock {
                    $0.statistics.epochsSent += 1
                    $0.statistics.bytesSent += delta.count
                    $0.statistics.blocksSent += statistics.blocksDirty
                    $0.statistics.sharedHits += statistics.sharedHits
                }
            } catch {
                fail(error)
                return
            }
        }
    }

    private func acknowledgementLoop() {
        guard let connection else { return }
        while true {
            do {
                let frame = try connection.receive()
                switch frame.type {
                case .ack:
                    var reader = PayloadReader(frame.payload)
                    let epoch = try reader.u64()
                    try reader.finish("ack")
                    let continuations = shared.withLock { shared -> [AsyncStream<UInt64>.Continuation] in
                        shared.statistics.lastCommittedEpoch = epoch
                        return Array(shared.continuations.values)
                    }
                    for continuation in continuations { continuation.yield(epoch) }
                case .heartbeat:
                    continue
                case .error:
                    throw WireError.refused(String(decoding: frame.payload, as: UTF8.self))
                default:
                    throw WireError.unexpected("\(frame.type) from the backup")
                }
            } catch {
                if connected.load(ordering: .acquiring) { fail(error) }
                return
            }
        }
    }

    private func heartbeatLoop() {
        let interval = configuration.heartbeatInterval.wholeNanoseconds
        // Heartbeats go on through stop()'s final epoch, until the connection is closed on purpose.
        while connected.load(ordering: .acquiring) {
            MonotonicClock.sleep(nanoseconds: interval / 2)
            let idle = MonotonicClock.nanoseconds() - lastSendNanoseconds.load(ordering: .relaxed)
            guard idle >= interval, connected.load(ordering: .acquiring) else { continue }
            var stamp: [UInt8] = []
            appendLittleEndian(MonotonicClock.nanoseconds(), to: &stamp)
            do {
                try connection?.send(.heartbeat, stamp)
                lastSendNanoseconds.store(MonotonicClock.nanoseconds(), ordering: .relaxed)
            } catch {
                fail(error)
                return
            }
        }
    }

    private func fail(_ error: Error) {
        let first = shared.withLock { shared -> Bool in
            guard shared.failure == nil else { return false }
            shared.failure = error
            return true
        }
        running.store(false, ordering: .releasing)
        if first { connection?.close() }
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

    /// Blocks until the backup has acknowledged `epoch` (or a later one); false on timeout or failure.
    public func waitForCommit(_ epoch: UInt64, timeout: Duration) -> Bool {
        let deadline = MonotonicClock.nanoseconds() + timeout.wholeNanoseconds
        while MonotonicClock.nanoseconds() < deadline {
            let (committed, failed) = shared.withLock { ($0.statistics.lastCommittedEpoch, $0.failure != nil) }
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
    /// - Throws: the failure that stopped replication earlier, if any; or the final epoch's error.
    @discardableResult
    public func stop(finalEpoch: Bool = true) throws -> UInt64? {
        let wasRunning = running.exchange(false, ordering: .acquiringAndReleasing)
        join("fgbi-checkpoint")
        var finalError: Error? = shared.withLock { $0.failure }
        if wasRunning, finalEpoch, finalError == nil {
            do {
                let last = try checkpoint()
                if !waitForCommit(last, timeout: configuration.backupTimeout) {
                    let failure: Error? = shared.withLock { $0.failure }
                    finalError = failure ?? WireError.timedOut(milliseconds: configuration.backupTimeout.wholeMilliseconds)
                }
            } catch {
                finalError = error
            }
        }
        // On failure the sender may be stuck in a send the backup no longer reads: closing frees it.
        if finalError != nil { connection?.close() }
        queues.withLock { $0.senderShouldExit = true }
        readyCount.signal()
        join("fgbi-sender")
        if finalError == nil { try? connection?.send(.bye) }
        connected.store(false, ordering: .releasing)  // from here the connection closes on purpose
        connection?.close()
        join("fgbi-heartbeat")
        join("fgbi-acks")
        for tracker in trackers { try? tracker.stop() }
        finishCommits()
        if let finalError { throw finalError }
        return committedEpoch
    }
}
