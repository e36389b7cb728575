import CSupport
import Logging
import Synchronization

/// What a primary's threads share besides its pipeline: counters, and why replication or the session stopped.
struct PrimaryState {
    var statistics = ReplicationStatistics()
    /// Why replication stopped for good.
    var failure: Error?
    /// Why the current session ended (the connection failed); the checkpoint thread reconnects.
    var sessionFailure: Error?
}

/// A primary's epoch pipeline: the checkpoint (pause the guest, collect the written pages, capture what
/// changed, resume), the pre-copy rounds that synchronise a backup while the guest runs, and the sender that
/// encodes each capture and hands the frame to the session (``sendLoop(deliver:engineFailed:sessionFailed:)``).
/// Captures travel from the checkpoint to the sender through a ``CaptureQueue`` of fixed size.
///
/// It knows nothing of backups or connections: ``Primary`` runs its loops on the checkpoint and sender threads
/// and gives the sender a way to deliver frames.
final class EpochPipeline: @unchecked Sendable {
    let regions: [GuestMemory]
    let trackers: [any DirtyTracker]
    let captures: CaptureQueue
    /// The epoch after the last one captured (0 before the first): ``Primary/epochCoveringWritesSoFar``, read
    /// by every client write of a guest with output commit, so a plain atomic and not the statistics' lock.
    let epochAfterLastCapture = Atomic<UInt64>(0)
    /// The session's engine; replaced (``restart(firstEpoch:backupHolds:)``) only while no sender runs.
    private(set) var engine: PrimaryEngine

    private let configuration: PrimaryConfiguration
    private let hooks: PauseHooks
    private let observer: Primary.CaptureObserver?
    private let logger: Logger
    private let metrics: PrimaryMetrics
    private let shared: PthreadLock<PrimaryState>
    private let running: AtomicFlag
    private let totalPages: Int
    /// Each region's written pages, filled by its tracker's collect.
    private var dirty: [DirtyPageSet]

    /// A pipeline over `regions`, with trackers of ``PrimaryConfiguration/tracker`` (not started) and an
    /// engine for a zero-filled backup numbering from ``PrimaryConfiguration/continuesAfterEpoch``.
    ///
    /// - Throws: as ``PrimaryEngine`` and the tracker's set-up do.
    init(
        regions: [GuestMemory], configuration: PrimaryConfiguration, hooks: PauseHooks,
        observer: Primary.CaptureObserver?,
        logger: Logger, metrics: PrimaryMetrics, shared: PthreadLock<PrimaryState>, running: AtomicFlag
    ) throws {
        self.regions = regions
        self.configuration = configuration
        self.hooks = hooks
        self.observer = observer
        self.logger = logger
        self.metrics = metrics
        self.shared = shared
        self.running = running
        totalPages = regions.reduce(0) { $0 + $1.pageCount }
        engine = try PrimaryEngine(
            regions: regions, configuration: configuration.engineForSession,
            firstEpoch: configuration.continuesAfterEpoch.map { $0 + 1 } ?? 0)
        let hotPages = configuration.engine.mode.sendsOnlyChanges ? configuration.hotPages : .off
        trackers = try regions.map { try configuration.tracker.makeTracker(for: $0, hotPages: hotPages) }
        try engine.attachWitnesses(trackers.map { $0 as? any WrittenPageWitness })
        // The engine reports unchanged pages only where a tracker listens (hot pages' early end of leases).
        let listens = configuration.tracker == .uffdAsync && hotPages.isEnabled && hotPages.demotesUnchanged
        captures = CaptureQueue(buffers: configuration.captureBuffers, recordsUnchangedPages: listens)
        dirty = regions.map { region in
            var set = DirtyPageSet()
            set.reserveCapacity(runs: min(region.pageCount, 1 << 16))
            return set
        }
    }

    /// A new engine for a session whose backups hold `summary` (nil: zero-filled), numbering from `firstEpoch`.
    func restart(firstEpoch: UInt64, backupHolds summary: ReplicaSummary?) throws {
        engine = try PrimaryEngine(
            regions: regions, configuration: configuration.engineForSession, firstEpoch: firstEpoch,
            backupHolds: summary)
        try engine.attachWitnesses(trackers.map { $0 as? any WrittenPageWitness })
    }

    /// A free capture buffer; waits (backpressure) while all are in use, but not past a failure.
    func acquireCapture() throws -> EpochCapture {
        try captures.acquire(
            waiting: {
                shared.withLock { $0.statistics.backpressureWaits += 1 }
                metrics.backpressureWaits.increment()
            }, failure: { shared.withLock { $0.failure ?? $0.sessionFailure } })
    }

    func release(_ capture: EpochCapture) {
        captures.release(capture, totalPages: totalPages)
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
            // (``Primary/epochCoveringWritesSoFar`` then names a later one).
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
            if $0.statistics.lastSynchronisation?.epoch == capture.epoch {
                $0.statistics.lastSynchronisation?.pauseMilliseconds = paused
            }
            $0.statistics.recordPause(milliseconds: paused)
        }
        captures.enqueue(capture)
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
        while running.load() {
            if let failure = shared.withLock({ $0.sessionFailure }) { throw failure }
            try checkpoint()
            next += interval
            let now = MonotonicClock.nanoseconds()
            if next <= now {
                next = now // fell behind: start the next epoch at once, do not burst to catch up
                continue
            }
            // Sleep in short steps so stop() is prompt.
            // One clock reading per step: reading it again after the comparison could pass `next` (a
            // preempted thread) and underflow.
            while running.load() {
                let now = MonotonicClock.nanoseconds()
                guard now < next else { break }
                MonotonicClock.sleep(nanoseconds: min(next - now, 5_000_000))
            }
        }
    }

    /// The sender: encodes each queued capture in order and hands the frame to `deliver` (type, epoch for an
    /// epoch frame, payload), until the queue is told to stop. An engine failure goes to `engineFailed` (a new
    /// session would not help), a delivery failure to `sessionFailed`; either ends the loop.
    func sendLoop(
        deliver: (WireFormat.FrameType, UInt64?, UnsafeRawBufferPointer) throws -> Void,
        engineFailed: (Error) -> Void, sessionFailed: (Error) -> Void
    ) {
        // Encoding is throughput work; the checkpoint thread's pause is on the guest's critical path. When
        // they share a busy CPU, the sender yields (a higher nice value for this thread only).
        if configuration.senderNiceIncrement > 0 {
            // Best effort: a thread may always raise its own nice value; failing leaves it as it was.
            _ = CSupport_raise_thread_nice(Int32(min(configuration.senderNiceIncrement, 19)))
        }
        while let capture = captures.nextReady() {
            let precopy = capture.isPrecopy
            let firstPass = capture.isFirstPass
            // Read now: once released, the capture is the checkpoint thread's to reset for the next epoch.
            let epoch: UInt64? = precopy ? nil : capture.epoch
            // Encoded into the engine's buffer and sent from there: no per-epoch copy or allocation.
            var delivered = false
            let sent: (bytes: Int, statistics: EpochStatistics)
            do {
                sent = try engine.encode(capture) { delta, statistics in
                    delivered = true
                    metrics.encode.recordNanoseconds(
                        Int64(statistics.encodeNanoseconds + statistics.compressNanoseconds))
                    observer?(capture, statistics)
                    noteUnchangedPages(of: capture)
                    release(capture)
                    if !precopy { FaultPoints.reach(.primarySend) }
                    try deliver(precopy ? .precopy : .epoch, epoch, delta)
                    return (delta.count, statistics)
                }
            } catch  where !delivered {
                // The engine's failure, not the connection's: reconnecting would not help.
                release(capture)
                engineFailed(error)
                return
            } catch {
                sessionFailed(error)
                return
            }
            record(sent.statistics, bytes: sent.bytes, precopy: precopy, firstPass: firstPass)
        }
    }

    /// Counts a sent frame in the metrics and statistics.
    private func record(_ statistics: EpochStatistics, bytes: Int, precopy: Bool, firstPass: Bool) {
        if precopy {
            metrics.precopyBytes.increment(by: Int64(bytes))
        } else {
            metrics.epochsSent.increment()
            metrics.bytesSent.increment(by: Int64(bytes))
            metrics.pagesWritten.increment(by: Int64(statistics.pagesWritten))
        }
        metrics.blocksSent.increment(by: Int64(statistics.blocksDirty))
        metrics.sharedHits.increment(by: Int64(statistics.sharedHits))
        shared.withLock {
            $0.statistics.lastSynchronisation?.pagesAlreadyHeld += statistics.pagesAlreadyHeld
            if firstPass { $0.statistics.lastSynchronisation?.firstPassBytes += bytes }
            if precopy || statistics.epoch == $0.statistics.lastSynchronisation?.epoch {
                let nanoseconds = statistics.encodeNanoseconds + statistics.compressNanoseconds
                $0.statistics.lastSynchronisation?.encodeMilliseconds += Double(nanoseconds) / 1e6
            }
            if precopy {
                $0.statistics.precopyFrames += 1
                $0.statistics.precopyBytes += bytes
            } else {
                $0.statistics.epochsSent += 1
                $0.statistics.bytesSent += bytes
                $0.statistics.pagesWritten += statistics.pagesWritten
            }
            $0.statistics.blocksSent += statistics.blocksDirty
            $0.statistics.sharedHits += statistics.sharedHits
            $0.statistics.indexEntries = statistics.indexEntries
        }
    }

    /// Tells each region's tracker which pages `capture` found unchanged (hot pages that keep being captured
    /// unwritten lose their lease).
    private func noteUnchangedPages(of capture: EpochCapture) {
        let unchanged = capture.unchangedPages
        guard !unchanged.isEmpty else { return }
        for (region, tracker) in trackers.enumerated() {
            tracker.noteUnchanged(unchanged.lazy.filter { $0.region == region }.map(\.block))
        }
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
            logger.notice(
                "no pre-copy with the scan tracker: the first epoch captures every page with the guest paused")
            return
        }
        let start = MonotonicClock.nanoseconds()
        // Everything written before now is covered by the first pass: forget it.
        for (index, tracker) in trackers.enumerated() { try tracker.collect(into: &dirty[index]) }
        var rounds: [Int] = []
        var all: [PrimaryEngine.PageSpan] = []
        for (index, region) in regions.enumerated() {
            all.append(.init(region: index, start: 0, count: region.pageCount))
        }
        try precopy(all, firstPass: true)
        guard running.load() else { return } // stopped midway: the final epoch is a full one
        engine.completeFirstPass()
        rounds.append(totalPages)
        var collected = MonotonicClock.nanoseconds()
        var lastRound = (pages: 0, nanoseconds: UInt64(0))
        while rounds.count < policy.maximumRounds, running.load() {
            var spans: [PrimaryEngine.PageSpan] = []
            for (index, tracker) in trackers.enumerated() {
                try tracker.collect(into: &dirty[index])
                for run in dirty[index].runs { spans.append(.init(region: index, start: run.start, count: run.count)) }
            }
            let pages = spans.reduce(0) { $0 + $1.count }
            let now = MonotonicClock.nanoseconds()
            (lastRound, collected) = ((pages, now - collected), now)
            rounds.append(pages)
            try precopy(spans, firstPass: false)
            if pages <= policy.convergedPages || Double(pages) > Double(rounds[rounds.count - 2]) * policy.minimumShrink
            {
                break
            }
        }
        reserveForEpochs(after: lastRound)
        let milliseconds = Double(MonotonicClock.nanoseconds() - start) / 1e6
        shared.withLock {
            $0.statistics.lastSynchronisation?.rounds = rounds.count
            $0.statistics.lastSynchronisation?.pagesPerRound = rounds
            $0.statistics.lastSynchronisation?.milliseconds = milliseconds
            $0.statistics.lastSynchronisation?.epoch = engine.upcomingEpoch
        }
        logger.info(
            "pre-copy done; the next epoch ends the synchronisation",
            metadata: ["rounds": "\(rounds.count)", "pages_per_round": "\(rounds)", "ms": "\(Int(milliseconds))"])
    }

    /// Makes the captures ready to stage the first epochs' pages whole, from the pages the synchronisation's
    /// last round found written over its `nanoseconds`, scaled up to an epoch interval when the round was
    /// shorter (unless every epoch is captured by rehash, which stages changed blocks only). Without it the
    /// first copy capture would fault its staging memory in with the guest paused, and the `auto` strategy
    /// would measure rehash first (Docs/ARCHITECTURE.md).
    private func reserveForEpochs(after lastRound: (pages: Int, nanoseconds: UInt64)) {
        let engineConfiguration = engine.configuration
        guard engineConfiguration.mode != .fgbi || engineConfiguration.captureStrategy != .rehash,
            lastRound.pages > 0, lastRound.nanoseconds > 0
        else { return }
        let interval = Double(configuration.epochInterval.wholeNanoseconds)
        let scale = max(1, interval / Double(lastRound.nanoseconds))
        let pages = min(Int((Double(lastRound.pages) * scale).rounded(.up)), totalPages)
        captures.expectEpochs(ofPages: pages, pageSize: engine.geometry.pageSize)
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
            captures.enqueue(capture)
            pieces.removeAll(keepingCapacity: true)
            filled = 0
        }
        for var span in spans {
            while span.count > 0 {
                // Only the first pass may be abandoned (the final epoch is then a full one); a later round
                // holds pages its collect took from the tracker, which no later capture would see again.
                guard running.load() || !firstPass else { return }
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
