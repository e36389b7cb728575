import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The backup's door: accepts connections and runs their handshakes at the same time, each on a thread of
/// its own under the handshake's one deadline, so that connections that never finish (a stranger's, idle or
/// dripping a byte at a time) cannot keep the real primary waiting behind them.
///
/// Bounded: at most ``HandshakeLimits/concurrent`` handshakes at a time, and ``HandshakeLimits/perSource`` from one
/// address. A
/// newcomer over a bound evicts a pending handshake instead of being turned away: of its own source when that
/// source is at its bound, else of any source; the one that has got least far first (no well-formed hello
/// yet, before one that sent its hello), the oldest among those. A real primary sends its hello as soon as it
/// connects, so a flood of connections that send nothing, or drip bytes, never evicts it; only `concurrent`
/// newer connections that each send a well-formed hello during its handshake (milliseconds) could. Evicted
/// and failed handshakes are logged at most ``refusalsLoggedPerWindow`` times per 10 s, then counted.
/// How many handshakes a backup runs at once (``BackupConfiguration/handshakeLimits``).
package struct HandshakeLimits: Sendable, Equatable {
    /// Handshakes in progress at once, over every source.
    public var concurrent: Int
    /// Handshakes in progress at once from one address.
    public var perSource: Int

    public init(concurrent: Int = 64, perSource: Int = 16) {
        self.concurrent = concurrent
        self.perSource = perSource
    }
}

final class HandshakeGate<Outcome>: @unchecked Sendable {
    /// One connection's handshake, for the handshake body to report progress on.
    final class Attempt: @unchecked Sendable {
        let socket: Socket
        /// The peer's address, without port: what the per-source bound counts.
        let source: String
        let started = MonotonicClock.nanoseconds()
        fileprivate let greetedFlag = Atomic<Bool>(false)
        fileprivate let finished = Atomic<Bool>(false)
        /// Set under the gate's lock: shut by the gate to make room, or because another handshake won.
        fileprivate var evicted = false
        fileprivate var abandoned = false
        /// Written by the handshake's thread before `finished` is set; read after.
        fileprivate var outcome: Result<Outcome, Error>?
        fileprivate var thread: JoinableThread?

        fileprivate init(socket: Socket, source: String) {
            self.socket = socket
            self.source = source
        }

        /// The peer sent a well-formed hello: evicted only after every attempt that has not.
        func greeted() { greetedFlag.store(true, ordering: .releasing) }

        fileprivate var isGreeted: Bool { greetedFlag.load(ordering: .acquiring) }
    }

    /// A handshake: runs on its attempt's thread with the accepted socket, the peer's address and whether
    /// that is loopback; returns the session's outcome or throws why the peer was refused.
    typealias Handshake = @Sendable (_ attempt: Attempt, _ peer: String, _ peerIsLoopback: Bool) throws -> Outcome

    /// Failed or evicted handshakes logged one by one in each 10 s window; the rest are counted.
    static var refusalsLoggedPerWindow: Int { 10 }

    private let listener: Socket
    private let limits: HandshakeLimits
    private let logger: Logger
    private let refused: @Sendable () -> Void
    private let attempts = PthreadLock<[Attempt]>([])
    /// Written by a handshake's thread when it finishes, to wake ``next(timeoutMilliseconds:_:)``.
    private let wake: (read: Int32, write: Int32)
    private var logWindowStart: UInt64 = 0
    private var loggedInWindow = 0
    private var unloggedInWindow = 0

    /// A gate on `listener`; `refused` is called once per handshake that failed or was evicted (for a metric).
    init(listener: Socket, limits: HandshakeLimits, logger: Logger, refused: @escaping @Sendable () -> Void)
        throws(SystemError)
    {
        self.listener = listener
        self.limits = HandshakeLimits(concurrent: max(limits.concurrent, 1), perSource: max(limits.perSource, 1))
        self.logger = logger
        self.refused = refused
        var ends: [Int32] = [0, 0]
        try Syscall.libc("pipe") { pipe(&ends) }
        for end in ends {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
        }
        wake = (ends[0], ends[1])
    }

    deinit {
        abandonAll()
        for attempt in attempts.withLock({ $0 }) { attempt.thread?.join() }
        close(wake.read)
        close(wake.write)
    }

    /// Handshakes in progress (or finished and not yet collected).
    var pendingCount: Int { attempts.withLock { $0.count } }

    /// Accepts connections and runs `handshake` on each until one succeeds, and returns its outcome, every
    /// other pending handshake abandoned (its connection shut, its thread left to end). Returns nil when
    /// `timeoutMilliseconds` passes first (nil: no limit). Throws when accepting fails: the listener was shut
    /// down (the backup stopping), or the process is out of descriptors for longer than a second.
    func next(timeoutMilliseconds: Int?, _ handshake: @escaping Handshake) throws -> Outcome? {
        let deadline = timeoutMilliseconds.map { MonotonicClock.nanoseconds() + UInt64(max($0, 0)) * 1_000_000 }
        var acceptFailures = 0
        while true {
            if let winner = collectFinished() {
                abandonAll()
                return winner
            }
            var wait: Int32 = -1
            if let deadline {
                let now = MonotonicClock.nanoseconds()
                guard now < deadline else { return nil }
                wait = Int32(clamping: (deadline - now + 999_999) / 1_000_000)
            }
            var entries = [
                pollfd(fd: listener.descriptor, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&entries, 2, wait)
            if ready < 0 {
                guard errno == EINTR else { throw SystemError(operation: "poll", errno: errno) }
                continue
            }
            if entries[1].revents != 0 { drainWake() }
            guard entries[0].revents != 0 else { continue }
            let accepted: (socket: Socket, peer: String, peerIsLoopback: Bool)
            do {
                accepted = try listener.accept()
                acceptFailures = 0
            } catch {
                // Out of descriptors (a flood beyond the bounds): pending handshakes end and free them.
                if error.errno == EMFILE || error.errno == ENFILE, acceptFailures < 100 {
                    acceptFailures += 1
                    MonotonicClock.sleep(nanoseconds: 10_000_000)
                    continue
                }
                throw error
            }
            try admit(
                Attempt(socket: accepted.socket, source: accepted.peer), peerIsLoopback: accepted.peerIsLoopback,
                handshake)
        }
    }

    /// Shuts every pending handshake's connection: their threads see it closed, fail and end.
    func abandonAll() {
        let pending: [Attempt] = attempts.withLock { attempts in
            let pending = attempts.filter { !$0.finished.load(ordering: .acquiring) }
            for attempt in pending { attempt.abandoned = true }
            return pending
        }
        for attempt in pending { attempt.socket.shutdownBoth() }
    }

    /// Starts `attempt`'s handshake, evicting one pending handshake first when a bound is reached.
    private func admit(_ attempt: Attempt, peerIsLoopback: Bool, _ handshake: @escaping Handshake) throws {
        let victim: Attempt? = attempts.withLock { attempts in
            let live = attempts.filter { !$0.evicted && !$0.finished.load(ordering: .acquiring) }
            let sameSource = live.filter { $0.source == attempt.source }
            let pool = sameSource.count >= limits.perSource ? sameSource : live.count >= limits.concurrent ? live : []
            // Least far first (no hello yet), oldest among them.
            guard let victim = pool.min(by: { ($0.isGreeted ? 1 : 0, $0.started) < ($1.isGreeted ? 1 : 0, $1.started) })
            else { return nil }
            victim.evicted = true
            return victim
        }
        if let victim { victim.socket.shutdownBoth() }
        let wakeEnd = wake.write
        do {
            attempt.thread = try JoinableThread(name: "fgbi-handshake") { [attempt] in
                let result = Result { try handshake(attempt, attempt.source, peerIsLoopback) }
                attempt.outcome = result
                attempt.finished.store(true, ordering: .releasing)
                var one: UInt8 = 1
                _ = write(wakeEnd, &one, 1)
            }
        } catch {
            // No thread to be had: refuse this one connection, keep the gate open.
            attempt.socket.shutdownBoth()
            report(attempt.source, error)
            return
        }
        attempts.withLock { $0.append(attempt) }
    }

    /// Collects finished handshakes: returns the first that succeeded (later winners are closed), reports the
    /// failed ones.
    private func collectFinished() -> Outcome? {
        let done: [Attempt] = attempts.withLock { attempts in
            let done = attempts.filter { $0.finished.load(ordering: .acquiring) }
            attempts.removeAll { $0.finished.load(ordering: .acquiring) }
            return done
        }
        var winner: Outcome?
        for attempt in done {
            attempt.thread?.join()
            switch attempt.outcome {
            case .success(let outcome)? where winner == nil:
                winner = outcome
            case .success?:
                attempt.socket.shutdownBoth()
                report(attempt.source, WireError.refused("another primary completed its handshake first"))
            case .failure(let error)?:
                // One dropped because another primary's handshake won is not a refusal worth a log line.
                report(
                    attempt.source,
                    attempt.evicted
                        ? WireError.refused(
                            """
                            evicted: more pending handshakes than the gate's bounds (\(limits.concurrent), \
                            \(limits.perSource) per address)
                            """
                        ) : error,
                    log: !attempt.abandoned)
            case nil:
                break
            }
        }
        return winner
    }

    /// Counts a refusal and logs it, at most ``refusalsLoggedPerWindow`` per 10 s.
    private func report(_ peer: String, _ error: Error, log: Bool = true) {
        refused()
        guard log else { return }
        let now = MonotonicClock.nanoseconds()
        if now - logWindowStart > 10_000_000_000 {
            if unloggedInWindow > 0 {
                logger.warning(
                    """
                    refused \(unloggedInWindow) more connections in the last 10 s without logging each (a flood \
                    of connections?)
                    """
                )
            }
            logWindowStart = now
            loggedInWindow = 0
            unloggedInWindow = 0
        }
        if loggedInWindow < Self.refusalsLoggedPerWindow {
            loggedInWindow += 1
            logger.warning("refused \(PeerText.printable(Array(peer.utf8))): \(error)")
        } else {
            unloggedInWindow += 1
        }
    }

    private func drainWake() {
        var bytes = [UInt8](repeating: 0, count: 256)
        while read(wake.read, &bytes, bytes.count) > 0 {}
    }
}
