import FGBI
import Foundation
import Logging

/// Primaryship that outlives the process holding it, and the one record a primaryship writes for its
/// successors:
/// - ``handOver()`` and ``adopt(client:keys:node:handover:logger:)``: a promoted backup that replaces itself with
///   `fgbi primary` (execv) keeps the very lease it was promoted with, so the guest's `primary` key never
///   vanishes between the two (other backups would elect again in that gap);
/// - ``acquire(client:keys:node:ttlSeconds:continuingAfter:wait:logger:)``: a node that was promoted and gave its
///   lease up (to an `--on-failover` service) acquires anew only if no other promotion happened since;
/// - ``recordFirstCommit(backups:quorum:)``: the `commit-group` record a promotion among several backups reads.
extension EtcdPrimaryLease {
    /// What a process needs to adopt a lease handed over: `LEASE:TERM` (decimal).
    public struct Handover: Sendable, Equatable, CustomStringConvertible {
        public var leaseID: Int64
        public var term: UInt64

        public init(leaseID: Int64, term: UInt64) {
            self.leaseID = leaseID
            self.term = term
        }

        /// - Throws: ``FGBIError/invalidArgument(_:)`` unless `text` is `LEASE:TERM`.
        public init(parsing text: String) throws {
            let parts = text.split(separator: ":")
            guard parts.count == 2, let lease = Int64(parts[0]), lease != 0, let term = UInt64(parts[1]) else {
                throw FGBIError.invalidArgument("lease handover '\(text)': expected LEASE:TERM (decimal)")
            }
            self.init(leaseID: lease, term: term)
        }

        public var description: String { "\(leaseID):\(term)" }
    }

    /// Stops renewing without giving the lease up, after renewing it once more, so the process that replaces
    /// this one (execv) adopts it with as much of its time to live left as possible. The `primary` key stays.
    ///
    /// - Throws: ``LostPrimaryship``-like ``FGBIError/invalidState(_:)`` when the right no longer holds.
    public func handOver() throws -> Handover {
        let (alreadyReleased, validUntilAtHandover) = state.withLock { state -> (Bool, UInt64) in
            defer {
                state.released = true
                state.handedOver = true
                state.reason = "handed over"
                state.validUntil = 0
            }
            return (state.released, state.validUntil)
        }
        guard !alreadyReleased else { throw FGBIError.invalidState("the lease of term \(term) was already released") }
        renewerDone.wait()
        // One renewal more, tried again while the lease surely lives (etcd may be slow for a moment).
        let deadline = validUntilAtHandover
        while true {
            do {
                guard try ownsPrimaryKey(), try client.keepAlive(leaseID) != nil else {
                    throw FGBIError.invalidState("primaryship of term \(term) was lost before it could be handed over")
                }
                return Handover(leaseID: leaseID, term: term)
            } catch let error as EtcdError where MonotonicClock.nanoseconds() + 100_000_000 < deadline {
                logger.warning("guest \(keys.guest): cannot renew the lease to hand it over (\(error)); trying again")
                MonotonicClock.sleep(nanoseconds: 50_000_000)
            }
        }
    }

    /// Gives up a lease handed over that no process will adopt (the execv failed): best effort, logged.
    public func revokeUnadopted() {
        do {
            _ = try client.revoke(leaseID)
        } catch {
            logger.warning("could not revoke lease \(leaseID) of guest \(keys.guest): \(error); it expires on its own")
        }
    }

    /// Takes over a lease handed over by the process this one replaced (``handOver()``): the guest's `primary`
    /// key must still hold `node`'s record of that term on that lease. The right holds from this process's
    /// own first renewal.
    ///
    /// - Throws: ``FGBIError/invalidState(_:)`` when the key holds anything else, or the lease expired;
    ///   ``EtcdError`` when etcd cannot be reached.
    public static func adopt(
        client: EtcdClient, keys: GuestKeys, node: String, handover: Handover,
        logger: Logger = Logger(label: "fgbi.etcd")
    ) throws -> EtcdPrimaryLease {
        guard let holder = try client.get(keys.primary) else {
            throw FGBIError.invalidState(
                "guest \(keys.guest): the lease handed over (term \(handover.term)) expired before it was adopted")
        }
        let record = try PrimaryRecord.decode(holder.value, key: keys.primary)
        guard record.node == node, record.term == handover.term, holder.lease == handover.leaseID else {
            throw FGBIError.invalidState(
                """
                guest \(keys.guest): the primary key holds node \(record.node), term \(record.term), not the lease \
                handed over to node \(node) (term \(handover.term))
                """
            )
        }
        let sent = MonotonicClock.nanoseconds()
        guard let granted = try client.keepAlive(handover.leaseID) else {
            throw FGBIError.invalidState(
                "guest \(keys.guest): the lease handed over (term \(handover.term)) expired before it was adopted")
        }
        return EtcdPrimaryLease(
            client: client, keys: keys, record: record, leaseID: handover.leaseID, ttlSeconds: granted,
            grantSent: sent, logger: logger)
    }

    /// ``acquire(client:keys:node:ttlSeconds:wait:logger:)`` for a node that was promoted at `epoch` and
    /// serves its replica again: only while the guest's `committed` record still names this node at that epoch,
    /// no term was granted since (no other backup was promoted meanwhile, which may have confirmed epochs this
    /// replica lacks), and no commit was confirmed under the term of its promotion (a primary that adopted that
    /// lease did, after this replica's epoch).
    ///
    /// - Throws: ``FGBIError/invalidState(_:)`` when another promotion happened since, none named this node,
    ///   or commits came after the epoch; as the plain acquire otherwise.
    public static func acquire(
        client: EtcdClient, keys: GuestKeys, node: String, ttlSeconds: Int, continuingAfter epoch: UInt64,
        wait: Duration = .zero, logger: Logger = Logger(label: "fgbi.etcd")
    ) throws -> EtcdPrimaryLease {
        let committed = try client.get(keys.committed)
        let record = try committed.map { try PrimaryRecord.decode($0.value, key: keys.committed) }
        guard let committed, let record, record.node == node, record.epoch == epoch else {
            let last = record.map { "node \($0.node) at epoch \($0.epoch.map(String.init) ?? "none"), term \($0.term)" }
            throw FGBIError.invalidState(
                """
                guest \(keys.guest): the last promotion recorded in etcd is \(last ?? "none"), not node \(node) at \
                epoch \(epoch): continuing this replica could undo epochs committed since; rejoin as a backup \
                (fgbi backup --rejoin) instead
                """
            )
        }
        let commitGroup = try CommitGroupRecord.read(client, keys: keys)
        if let commitGroup, commitGroup.record.term >= record.term {
            throw FGBIError.invalidState(
                """
                guest \(keys.guest): term \(record.term), this node's promotion at epoch \(epoch), has confirmed \
                commits since: this replica may lack them; rejoin as a backup (fgbi backup --rejoin) instead
                """
            )
        }
        return try acquire(
            client: client, keys: keys, node: node, ttlSeconds: ttlSeconds, wait: wait, logger: logger,
            expectingTerm: record.term,
            compare: [
                EtcdCompare(key: keys.committed, .modRevision(committed.modRevision)),
                CommitGroupRecord.unchanged(commitGroup, keys: keys),
            ])
    }

    /// Records in `commit-group` that this primaryship confirms its first commit, with `backups` backups of
    /// which `quorum` acknowledged it, while its `primary` key still holds this lease (a
    /// ``PrimaryAuthority`` requirement). False, logged, when etcd cannot be reached, a newer term recorded a
    /// commit, or primaryship was lost.
    public func recordFirstCommit(backups: Int, quorum: Int) -> Bool {
        let mine = CommitGroupRecord(term: term, backups: backups, quorum: quorum)
        do {
            for _ in 0..<10 {
                guard isHeld else {
                    logger.error("guest \(keys.guest): primaryship of term \(term) lapsed before its first commit")
                    return false
                }
                let current = try CommitGroupRecord.read(client, keys: keys)
                if let recorded = current?.record {
                    if recorded == mine { return true }
                    if recorded.term > term {
                        logger.critical(
                            "guest \(keys.guest): term \(recorded.term) confirmed commits, newer than this \(term)")
                        return false
                    }
                }
                let transaction = EtcdTransaction(
                    compare: [
                        EtcdCompare(key: keys.primary, .value(record.encoded)),
                        EtcdCompare(key: keys.primary, .lease(leaseID)),
                        CommitGroupRecord.unchanged(current, keys: keys),
                    ],
                    success: [.put(key: keys.commitGroup, value: mine.encoded)], failure: [])
                if try client.transaction(transaction).succeeded { return true }
                guard try ownsPrimaryKey() else {
                    logger.critical("guest \(keys.guest): the primary key no longer holds term \(term)'s record")
                    return false
                }
            }
            logger.error("guest \(keys.guest): could not record the first commit of term \(term): contended")
        } catch {
            logger.error("guest \(keys.guest): could not record the first commit of term \(term): \(error)")
        }
        return false
    }
}
