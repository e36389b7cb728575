import FGBI

/// What a backup of several says in etcd once it lost its primary: the term it lost and the epoch it holds
/// (`term=T epoch=E`), under `candidates/<node>` on a lease of its own, so a candidate that dies drops out.
struct Candidacy: Equatable {
    var node: String
    var term: UInt64
    var epoch: UInt64

    /// This node's candidacy as it stands in etcd.
    struct Held {
        var term: UInt64
        var epoch: UInt64
        var leaseID: Int64
        var renewedAt: UInt64
    }

    var encoded: [UInt8] { Array("term=\(term) epoch=\(epoch)".utf8) }

    /// Nil for a value no FGBI node writes (it does not count).
    init?(node: String, value: [UInt8]) {
        let fields = String(decoding: value, as: UTF8.self).split(separator: " ")
        guard fields.count == 2, fields[0].hasPrefix("term="), fields[1].hasPrefix("epoch="),
            let term = UInt64(fields[0].dropFirst(5)), let epoch = UInt64(fields[1].dropFirst(6))
        else { return nil }
        self.init(node: node, term: term, epoch: epoch)
    }

    init(node: String, term: UInt64, epoch: UInt64) {
        self.node = node
        self.term = term
        self.epoch = epoch
    }

    /// Who goes first: the newest epoch, then (for a tie) the smallest node name.
    static func first(_ candidates: [Candidacy]) -> Candidacy? {
        candidates.min { ($1.epoch, $0.node) < ($0.epoch, $1.node) }
    }
}

extension EtcdFailoverArbiter {
    /// One of several backups: once the lost primary's lease is gone, this backup stands as a candidate with
    /// the epoch it holds, and is promoted only when at least ``BackupGroup/candidatesNeeded`` candidates of
    /// the lost term stand and it holds the newest epoch among them (ties: the smallest node name). Any such
    /// set holds a backup that acknowledged every committed epoch (a quorum and the candidates intersect), so
    /// the promoted one holds every committed epoch. A primary of a newer term than the lost one means
    /// another was promoted: stand down, and serve on as its backup.
    public func decide(lastEpoch: UInt64?, group: BackupGroup, lostTerm: UInt64) -> FailoverDecision {
        if wasPromoted { return .standDown("this node was already promoted") }
        do {
            if let holder = try client.get(keys.primary) {
                let record = try PrimaryRecord.decode(holder.value, key: keys.primary)
                if record.term > lostTerm {
                    withdrawCandidacy()
                    return .standDown("node \(record.node) is primary with term \(record.term)")
                }
                return .wait("node \(record.node) still holds primaryship with term \(record.term)")
            }
            // A newer term with no primary holding it: a backup was promoted and is on its way to serving (a
            // promoted `fgbi backup --then-primary` gives its lease up and acquires the next term as `fgbi
            // primary`). Follow it rather than elect another.
            if let termValue = try client.get(keys.term),
                case let term = try TermValue.decode(termValue.value, key: keys.term), term > lostTerm
            {
                withdrawCandidacy()
                return .standDown(
                    "term \(term) was granted after the lost term \(lostTerm): another backup was promoted")
            }
            guard let lastEpoch else {
                withdrawCandidacy()
                return .wait("the primary's lease expired; this backup holds no committed epoch, so it is no candidate")
            }
            try standAsCandidate(term: lostTerm, epoch: lastEpoch)
            let standing = try client.getPrefix(keys.candidates).compactMap { keyValue -> Candidacy? in
                Candidacy(node: String(keyValue.key.dropFirst(keys.candidates.count)), value: keyValue.value)
            }.filter { $0.term == lostTerm }
            guard standing.count >= group.candidatesNeeded else {
                return .wait(
                    """
                    \(standing.count) of the \(group.candidatesNeeded) candidates needed (of \(group.backups) \
                    backups,\u{20}
                    """
                        + "quorum \(group.quorum)) have said which epoch they hold")
            }
            guard let first = Candidacy.first(standing), first.node == node else {
                let first = Candidacy.first(standing)
                return .wait(
                    """
                    node \(first?.node ?? "?") holds epoch \(first?.epoch ?? 0), newer than this backup's \
                    \(lastEpoch) (or first by name)
                    """
                )
            }
            let decision = try claim(at: lastEpoch)
            if case .promote = decision { withdrawCandidacy() }
            return decision
        } catch let error as CoordinationError {
            logger.critical("guest \(keys.guest): \(error)")
            return .wait("\(error)")
        } catch {
            return .wait("cannot ask etcd (\(error)); losing etcd never promotes anyone")
        }
    }

    /// Writes (or keeps alive) this node's candidacy for `term` at `epoch`.
    private func standAsCandidate(term: UInt64, epoch: UInt64) throws {
        let now = MonotonicClock.nanoseconds()
        let held = candidacy.withLock { $0 }
        if let held, held.term == term, held.epoch == epoch {
            // Renewed at a third of its time to live; the key is on the lease, so it stays while renewed.
            if now - held.renewedAt > UInt64(ttlSeconds) * 1_000_000_000 / 3 {
                if try client.keepAlive(held.leaseID) == nil {
                    candidacy.withLock { $0 = nil }
                    return try standAsCandidate(term: term, epoch: epoch)
                }
                candidacy.withLock { $0?.renewedAt = now }
            }
            return
        }
        withdrawCandidacy()
        let lease = try client.grantLease(ttlSeconds: ttlSeconds)
        do {
            try client.put(
                keys.candidate(node), value: Candidacy(node: node, term: term, epoch: epoch).encoded, lease: lease.id)
        } catch {
            _ = try? client.revoke(lease.id)
            throw error
        }
        candidacy.withLock { $0 = Candidacy.Held(term: term, epoch: epoch, leaseID: lease.id, renewedAt: now) }
        logger.notice(
            "guest \(keys.guest): node \(node) stands as a candidate for the lost term \(term) at epoch \(epoch)")
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
