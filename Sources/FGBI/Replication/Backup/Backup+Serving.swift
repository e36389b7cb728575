import Logging

/// The backup's life as a state machine: ``serve()`` takes one ``ServeState`` to the next until it reaches
/// `finished`, one event at a time (a primary connecting, a frame, a loss, the arbiter's decision), so a reader
/// follows it state by state and a test drives it.
///
/// ```
/// listening ──► handshaking ──► synchronising ──► replicating ──► finished (bye, or stop())
///    ▲  ▲            │ (term not recorded,  │  (first epoch    │
///    │  └────────────┘  summary lost)       │   applied)       │
///    │                                      ▼                  ▼
///    └───── wait / stand down ◄────── primaryLost ◄─────────────┘ (silence, broken link, refused frame)
///           (arbiter, or one of                │
///            several with none)                ▼
///                                        failingOver ──► finished (failed over, promoted)
/// ```
/// stop() ends any state but `failingOver` in `finished` (``BackupOutcome/primaryFinished(lastEpoch:)``),
/// checked in one place between steps.
extension Backup {
    /// Where ``serve()`` stands.
    enum ServeState {
        /// Waiting for a primary's handshake to complete; `lost` while the arbiter decides about a primary lost
        /// earlier (asked again every ``FailoverArbiter/pollInterval`` until a primary connects or it decides).
        case listening(lost: LostPrimary?)
        /// A primary completed its handshake: its term is recorded and, when this backup holds an epoch, its
        /// page hashes sent. Back to `listening` (with the same `lost`) when that fails.
        case handshaking(Session, lost: LostPrimary?)
        /// Receiving the deltas that bring the replica up to date (pre-copy steps, undone if the session ends)
        /// until the session's first epoch is applied.
        case synchronising(FrameConnection)
        /// Applying and acknowledging the session's epochs.
        case replicating(FrameConnection)
        /// The primary went silent, the link broke, or it sent something refused (the replica rolled back to
        /// its last epoch, the connection closed).
        case primaryLost(reason: String)
        /// Freezing the replica at its last committed epoch and writing the image; `term` when promoted.
        case failingOver(reason: String, term: UInt64?)
        /// What ``serve()`` returns.
        case finished(BackupOutcome)

        /// The state's name, for logs and tests.
        var name: String {
            switch self {
            case .listening: "listening"
            case .handshaking: "handshaking"
            case .synchronising: "synchronising"
            case .replicating: "replicating"
            case .primaryLost: "primaryLost"
            case .failingOver: "failingOver"
            case .finished: "finished"
            }
        }
    }

    /// A lost primary whose successor the arbiter is deciding: why it was lost, the group of backups it had
    /// (nil with one backup), and the arbiter's last reason to wait (logged when it changes). `following`: one
    /// of several backups that stood down for a promoted successor and waits for it to connect, asking the
    /// arbiter still, so that a successor lost before it connects is replaced by another election.
    struct LostPrimary {
        var reason: String
        var group: BackupGroup?
        var lastWait = ""
        var following = false
    }

    /// How a primary's session ended, as a frame's handling reports it.
    enum SessionEnd {
        /// It said bye (or this backup was stopped): replication ended on purpose.
        case finished
        /// It went silent, the connection broke, or it sent something refused.
        case lost(String)
    }

    /// Serves primaries until one finishes or fails. A peer that fails the handshake (no key, wrong key,
    /// other memory layout, an older fencing term) is refused with a log line and the backup goes on
    /// listening, its replica untouched.
    ///
    /// With an ``BackupConfiguration/arbiter`` a lost primary is not failed over at once: the backup asks the
    /// arbiter every ``FailoverArbiter/pollInterval``, and meanwhile accepts the primary again if it returns
    /// (a cut link healed) until the arbiter promotes this backup or tells it to stand down.
    public func serve() throws -> BackupOutcome {
        try serve(observing: nil)
    }

    /// ``serve()``, telling `observe` every state entered (for tests).
    func serve(observing observe: ((ServeState) -> Void)?) throws -> BackupOutcome {
        if configuration.arbiter == nil {
            logger.notice(
                """
                no coordinator: failing over on heartbeats alone, which is not partition-safe (a cut link can \
                leave two primaries); in production give it a coordinator (`--etcd`, `BackupConfiguration.arbiter`)
                """
            )
        }
        var state = ServeState.listening(lost: nil)
        while true {
            observe?(state)
            if case .finished(let outcome) = state { return outcome }
            state = try step(state)
            if stopping.load(ordering: .acquiring) { state = endedByStop(state) }
        }
    }

    /// One transition.
    ///
    /// - Throws: ``PersistFailure`` when this backup cannot make an epoch durable, an error of the listening
    ///   socket, or the image's when failing over.
    func step(_ state: ServeState) throws -> ServeState {
        switch state {
        case .listening(let lost): return try listen(lost)
        case .handshaking(let session, let lost): return begin(session, lost: lost)
        case .synchronising(let connection): return try receiveFrame(on: connection, synchronised: false)
        case .replicating(let connection): return try receiveFrame(on: connection, synchronised: true)
        case .primaryLost(let reason): return primaryLost(reason)
        case .failingOver(let reason, let term): return .finished(try failOver(reason: reason, term: term))
        case .finished: return state
        }
    }

    /// What stop() makes of `state`: the end, with any session's connection closed and its unfinished
    /// synchronisation undone; a failover decided goes on.
    private func endedByStop(_ state: ServeState) -> ServeState {
        switch state {
        case .failingOver, .finished:
            return state
        case .handshaking(let session, _):
            session.connection.close()
        case .synchronising(let connection), .replicating(let connection):
            replica.rollBack()
            connection.close()
        case .listening, .primaryLost:
            break
        }
        return .finished(.primaryFinished(lastEpoch: lastEpoch))
    }

    /// Asks the arbiter about a lost primary, if any, then waits for a primary's handshake (until the arbiter's
    /// next poll while it decides).
    private func listen(_ lost: LostPrimary?) throws -> ServeState {
        var lost = lost
        var waitMilliseconds: Int?
        if let current = lost, let arbiter = configuration.arbiter {
            let decision =
                current.group.map {
                    arbiter.decide(
                        lastEpoch: lastEpoch, heldTerm: heldTerm.load(ordering: .acquiring),
                        sessionTerms: sessionTerms, group: $0, lostTerm: knownTerm.load(ordering: .acquiring))
                } ?? arbiter.decide(lastEpoch: lastEpoch, heldTerm: heldTerm.load(ordering: .acquiring))
            switch decision {
            case .promote(let term):
                return .failingOver(reason: current.reason, term: term)
            case .standDown(let why) where current.group != nil:
                // One of several backups: another is the primary now, and this one serves on as its backup,
                // still asking the arbiter until it connects (it may be lost before it does).
                if !current.following || why != current.lastWait {
                    logger.notice(
                        """
                        not taking over: \(why); serving on as a backup of the next primary (epoch \
                        \(lastEpoch.map(String.init) ?? "none"))
                        """
                    )
                }
                lost?.following = true
                lost?.lastWait = why
            case .standDown(let why):
                logger.critical("standing down: \(why)")
                return .finished(.stoodDown(lastEpoch: lastEpoch, reason: why))
            case .wait(let why):
                if why != current.lastWait { logger.warning("not taking over yet: \(why)") }
                lost?.lastWait = why
            }
            if lost?.following == true, case .wait = decision {
                // The successor lost before it connected: this backup takes part in the next election.
                lost?.following = false
            }
            // Following a successor that holds primaryship, ask less often: its loss shows first as its lease's
            // expiry, and a second election waits two lease times to live after that anyway.
            let poll = arbiter.pollInterval.wholeMilliseconds
            waitMilliseconds = lost?.following == true ? max(poll, 500) : poll
        }
        let session: Session?
        do {
            session = try gate.next(timeoutMilliseconds: waitMilliseconds) { [self] attempt, peer, peerIsLoopback in
                try handshake(attempt, peer: peer, peerIsLoopback: peerIsLoopback)
            }
        } catch {
            if stopping.load(ordering: .acquiring) { return .finished(.primaryFinished(lastEpoch: lastEpoch)) }
            throw error
        }
        // No primary within the arbiter's poll interval: ask it again.
        guard let session else { return .listening(lost: lost) }
        return .handshaking(session, lost: lost)
    }

    /// Starts replicating with a primary that completed its handshake: records its fencing term, and when this
    /// backup holds an epoch sends the page hashes it resynchronises from. Back to listening (the connection
    /// closed, with a log line) when the session cannot start.
    private func begin(_ session: Session, lost: LostPrimary?) -> ServeState {
        let (connection, hello, term, peer) = (session.connection, session.hello, session.term, session.peer)
        self.connection.withLock { $0 = connection }
        do {
            if term > knownTerm.load(ordering: .acquiring) {
                // Durable before the session goes on: a restart that cannot ask the coordinator still fences.
                try store?.recordTerm(term)
                knownTerm.store(term, ordering: .releasing)
            }
        } catch {
            logger.warning("refused \(peer): cannot record its term \(term): \(error)")
            metrics.refusedPeers.increment()
            connection.close()
            return .listening(lost: lost)
        }
        let security =
            configuration.key == nil
            ? "no key, loopback" : hello.wantsEncryption ? "authenticated, encrypted" : "authenticated"
        logger.info(
            """
            primary \(peer) connected (\(hello.mode) mode, \
            \(security)\(configuration.arbiter == nil ? "" : ", term \(term)"))
            """
        )
        if stopping.load(ordering: .acquiring) {
            connection.close()
            return .finished(.primaryFinished(lastEpoch: lastEpoch))
        }
        replica.beginSession()
        sessionTerm = term
        if sessionTerms.last != term { sessionTerms = Array((sessionTerms + [term]).suffix(8)) }
        sessionStream = hello.stream
        sessionGroup = hello.group
        lastBlockHashRun = nil
        if let held = heldEpoch {
            do {
                for payload in replica.summary.framePayloads() { try connection.send(.summary, payload) }
                logger.info("holding epoch \(held): sent page hashes so \(peer) resynchronises with what differs")
            } catch {
                logger.warning("lost \(peer) while sending the summary: \(error)")
                connection.close()
                return .listening(lost: lost)
            }
        }
        connection.setReceiveTimeout(milliseconds: configuration.primaryTimeout.wholeMilliseconds)
        return .synchronising(connection)
    }

    /// Receives and handles one frame of the session: `replicating` once an epoch was applied, `finished` on
    /// bye, `primaryLost` (replica rolled back, connection closed) when the session is lost.
    private func receiveFrame(on connection: FrameConnection, synchronised: Bool) throws -> ServeState {
        let going: ServeState = synchronised ? .replicating(connection) : .synchronising(connection)
        let end: SessionEnd?
        do {
            let frame = try connection.receive()
            switch frame.type {
            case .epoch, .precopy:
                end = try receiveDelta(frame, on: connection)
                // Applied and stored: the next delta is received into its memory.
                connection.recycle(frame.payload)
                if end == nil && frame.type == .epoch { return .replicating(connection) }
            case .blockHashRequest:
                do {
                    try answerBlockHashRequest(frame.payload, on: connection)
                    end = nil
                } catch {
                    try? connection.send(.error, Array("\(error)".utf8))
                    end = .lost("\(error)")
                }
            case .heartbeat:
                // Answered, so the primary hears from a live backup while no epoch is being acknowledged
                // (during a long synchronisation, say).
                try connection.send(.heartbeat, [UInt8](repeating: 0, count: 8))
                end = nil
            case .bye:
                logger.info("primary finished after epoch \(lastEpoch.map(String.init) ?? "none")")
                end = .finished
            case .error:
                end = .lost("the primary reported: \(PeerText.printable(frame.payload))")
            default:
                end = .lost("unexpected \(frame.type) frame from the primary")
            }
        } catch let failure as PersistFailure {
            throw failure
        } catch {
            end = .lost("\(error)")
        }
        guard let end else { return going }
        replica.rollBack()
        connection.close()
        switch end {
        case .finished: return .finished(.primaryFinished(lastEpoch: lastEpoch))
        case .lost(let reason): return .primaryLost(reason: reason)
        }
    }

    /// Decides what a lost primary means for this backup: fail over at once (heartbeats only), ask the
    /// arbiter (listening meanwhile), wait for a primary (one of several backups with no arbiter), or stand
    /// down (a former primary's memory never resynchronised).
    private func primaryLost(_ reason: String) -> ServeState {
        guard vouchesForReplica.load(ordering: .acquiring) else {
            let why =
                """
                the primary was lost (\(reason)) before this former primary's memory was resynchronised: it holds \
                no committed epoch to take over with
                """
            logger.critical("standing down: \(why)")
            return .finished(.stoodDown(lastEpoch: nil, reason: why))
        }
        if sessionGroup != nil && configuration.arbiter == nil {
            // One of several backups: which of them holds every committed epoch only a comparison among them
            // (through a coordinator) can tell, so none takes over on its own.
            logger.warning(
                """
                primary lost (\(reason)); one of several backups with no coordinator, so not taking over: waiting \
                for a primary (epoch \(lastEpoch.map(String.init) ?? "none"))
                """
            )
            return .listening(lost: nil)
        }
        guard configuration.arbiter != nil else { return .failingOver(reason: reason, term: nil) }
        metrics.primaryLosses.increment()
        logger.warning(
            """
            primary lost (\(reason)); asking the coordinator before taking over at epoch \
            \(lastEpoch.map(String.init) ?? "none")
            """
        )
        return .listening(lost: LostPrimary(reason: reason, group: sessionGroup))
    }
}
