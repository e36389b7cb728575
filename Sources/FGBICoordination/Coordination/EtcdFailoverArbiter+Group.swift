import FGBI

extension EtcdFailoverArbiter {
    /// One of several backups: once the lost primary's lease is gone, this backup stands as a candidate with
    /// the epoch it holds and the term that produced it, and is promoted when ``GroupElection`` finds it holds
    /// every committed epoch (the first by held term and epoch among enough candidates). A primary of a newer
    /// term than the lost one means another was promoted: stand down, and serve on as its backup. A newer term
    /// granted that no node holds any more means that node lost primaryship before it served this backup (it
    /// died while it took over, say): after two lease times to live (a promoted node that gave its lease up
    /// to acquire anew has that long), the backups elect again, for that term.
    public func decide(
        lastEpoch: UInt64?, heldTerm: UInt64, sessionTerms: [UInt64], group: BackupGroup, lostTerm: UInt64
    ) -> FailoverDecision {
        if wasPromoted { return .standDown("this node was already promoted") }
        do {
            if let holder = try client.get(keys.primary) {
                let record = try PrimaryRecord.decode(holder.value, key: keys.primary)
                orphanedTerm.withLock { $0 = nil }
                if record.term > lostTerm {
                    withdrawCandidacy()
                    return .standDown("node \(record.node) is primary with term \(record.term)")
                }
                return .wait("node \(record.node) still holds primaryship with term \(record.term)")
            }
            let granted = try client.get(keys.term).map { try TermValue.decode($0.value, key: keys.term) } ?? 0
            let electionTerm = max(lostTerm, granted)
            if granted > lostTerm, let wait = waitForOrphanedTerm(granted, lostTerm: lostTerm) {
                withdrawCandidacy()
                return .wait(wait)
            }
            guard let lastEpoch else {
                withdrawCandidacy()
                return .wait("the primary's lease expired; this backup holds no committed epoch, so it is no candidate")
            }
            try standAsCandidate(
                Candidacy(
                    node: node, term: electionTerm, epoch: lastEpoch, heldTerm: heldTerm,
                    sessionTerms: sessionTerms))
            let standing = try client.getPrefix(keys.candidates).compactMap { keyValue -> Candidacy? in
                Candidacy(node: String(keyValue.key.dropFirst(keys.candidates.count)), value: keyValue.value)
            }.filter { $0.term == electionTerm }
            let record = try CommitGroupRecord.read(client, keys: keys)?.record
            if case .wait(let why) = GroupElection.verdict(
                standing: standing, record: record, knownGroup: group, node: node)
            {
                return .wait(why)
            }
            let decision = try claim(at: lastEpoch, expectingTerm: electionTerm)
            if case .promote = decision { withdrawCandidacy() }
            return decision
        } catch let error as CoordinationError {
            // Asked every poll: said once for as long as it lasts.
            if lastCriticalError.withLock({ last in
                defer { last = "\(error)" }
                return last != "\(error)"
            }) {
                logger.critical("guest \(keys.guest): \(error)")
            }
            return .wait("\(error)")
        } catch {
            return .wait("cannot ask etcd (\(error)); losing etcd never promotes anyone")
        }
    }

    /// Why to wait still for the node granted `term` (newer than the lost one, and held by no node now) to
    /// serve, or nil once two lease times to live passed since this backup first saw it so.
    private func waitForOrphanedTerm(_ term: UInt64, lostTerm: UInt64) -> String? {
        let now = MonotonicClock.nanoseconds()
        let since = orphanedTerm.withLock { seen -> UInt64 in
            if seen?.term != term { seen = (term, now) }
            return seen!.since
        }
        let grace = 2 * UInt64(ttlSeconds) * 1_000_000_000
        guard now - since < grace else { return nil }
        return """
            term \(term) was granted after the lost term \(lostTerm) and no node holds it now: waiting up to \
            \(2 * ttlSeconds) s for its node to serve before electing again
            """
    }

    /// Writes (or keeps alive) this node's candidacy.
    private func standAsCandidate(_ mine: Candidacy) throws {
        let now = MonotonicClock.nanoseconds()
        let held = candidacy.withLock { $0 }
        if let held, held.candidacy == mine {
            // Renewed at a third of its time to live; the key is on the lease, so it stays while renewed.
            if now - held.renewedAt > UInt64(ttlSeconds) * 1_000_000_000 / 3 {
                if try client.keepAlive(held.leaseID) == nil {
                    candidacy.withLock { $0 = nil }
                    return try standAsCandidate(mine)
                }
                candidacy.withLock { $0?.renewedAt = now }
            }
            return
        }
        withdrawCandidacy()
        let lease = try client.grantLease(ttlSeconds: ttlSeconds)
        do {
            try client.put(keys.candidate(node), value: mine.encoded, lease: lease.id)
        } catch {
            _ = try? client.revoke(lease.id)
            throw error
        }
        candidacy.withLock { $0 = Candidacy.Held(candidacy: mine, leaseID: lease.id, renewedAt: now) }
        logger.notice(
            """
            guest \(keys.guest): node \(node) stands as a candidate for the lost term \(mine.term) at epoch \
            \(mine.epoch) (of term \(mine.heldTerm))
            """
        )
    }

    /// Takes this node's candidacy back (its key goes with its lease).
    func withdrawCandidacy() {
        guard
            let held = candidacy.withLock({ state -> Candidacy.Held? in
                defer { state = nil }
                return state
            })
        else { return }
        _ = try? client.revoke(held.leaseID)
    }
}
