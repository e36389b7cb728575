import FGBI
import Foundation
import Logging

/// Decides through etcd whether a ``Backup`` may take over a guest: the ``FailoverArbiter`` of a backup
/// coordinated through etcd.
///
/// After the primary falls silent, ``decide(lastEpoch:)`` looks at the guest's `primary` key:
/// - present: the primary's lease is still alive (it may be cut from this backup only), so wait;
/// - absent: the lease expired or was given up. One transaction, comparing the `primary` key (still absent)
///   and the `term` key (unchanged), writes the next term, this node's ``PrimaryRecord`` on a new lease of its
///   own, and the `committed` record with the epoch the replica holds. If it succeeds this backup is promoted;
///   if another node got there first, it looks again next time.
/// - etcd unreachable: wait. Losing etcd never promotes anyone.
///
/// After a promotion, ``promotedLease`` holds primaryship (renewing) for whatever serves the guest next.
public final class EtcdFailoverArbiter: FailoverArbiter, @unchecked Sendable {
    public let keys: GuestKeys
    public let node: String
    public let ttlSeconds: Int
    public let pollInterval: Duration
    let logger: Logger
    private let knownTerm = LockedState<UInt64>(0)
    private let promoted = LockedState<EtcdPrimaryLease?>(nil)
    /// With several backups: this node's candidacy for the term lost (its lease), while it stands.
    let candidacy = LockedState<Candidacy.Held?>(nil)
    /// With several backups: a term newer than the lost one that no node held when last asked, and since when.
    let orphanedTerm = LockedState<(term: UInt64, since: UInt64)?>(nil)
    /// The last malformed-keys error logged while deciding among several backups (logged once while it lasts).
    let lastCriticalError = LockedState("")
    let client: EtcdClient

    /// - Throws: ``CoordinationError/invalidName(_:_:)`` for a bad node name.
    public init(
        client: EtcdClient, keys: GuestKeys, node: String, ttlSeconds: Int, pollInterval: Duration = .milliseconds(100),
        logger: Logger = Logger(label: "fgbi.etcd")
    ) throws {
        try GuestKeys.validate(node, what: "node")
        self.client = client
        self.keys = keys
        self.node = node
        self.ttlSeconds = ttlSeconds
        self.pollInterval = pollInterval
        self.logger = logger
    }

    /// Primaryship taken by the promotion, renewing; nil before one. Release it once the guest is served
    /// elsewhere, or hand it to a ``Primary`` as its ``PrimaryConfiguration/authority``.
    public var promotedLease: EtcdPrimaryLease? { promoted.withLock { $0 } }

    /// Whether this node was promoted already.
    var wasPromoted: Bool { promoted.withLock { $0 } != nil }

    /// The newest term in etcd, or the newest seen when etcd cannot be reached now.
    public func currentTerm() -> UInt64 {
        if let value = try? client.get(keys.term), let term = try? TermValue.decode(value.value, key: keys.term) {
            return knownTerm.withLock {
                $0 = max($0, term)
                return $0
            }
        }
        return knownTerm.withLock { $0 }
    }

    /// A claim on primaryship at epoch `lastEpoch`: the next term, on a new lease of this node's own.
    /// With `expectingTerm`, only while the newest term granted is still that one (the candidacies were
    /// weighed for it).
    func claim(at lastEpoch: UInt64, expectingTerm: UInt64? = nil) throws -> FailoverDecision {
        let sent = MonotonicClock.nanoseconds()
        let lease = try client.grantLease(ttlSeconds: ttlSeconds)
        let claim: EtcdPrimaryLease.Claim
        do {
            claim = try EtcdPrimaryLease.claim(
                client: client, keys: keys, record: { PrimaryRecord(node: self.node, term: $0) },
                leaseID: lease.id, committedEpoch: lastEpoch, expectingTerm: expectingTerm)
        } catch {
            // The transaction may or may not have happened: give the lease up either way (if it did, the
            // key goes with it and the next look claims a newer term).
            _ = try? client.revoke(lease.id)
            throw error
        }
        switch claim {
        case .granted(let record):
            let term = record.term
            knownTerm.withLock { $0 = max($0, term) }
            let held = EtcdPrimaryLease(
                client: client, keys: keys, record: record, leaseID: lease.id,
                ttlSeconds: lease.ttlSeconds, grantSent: sent, logger: logger)
            promoted.withLock { $0 = held }
            logger.notice(
                "guest \(keys.guest): promoted node \(node) to primary with term \(term) at epoch \(lastEpoch)")
            return .promote(term: term)
        case .held(let record, _):
            _ = try? client.revoke(lease.id)
            return .wait("node \(record.node) became primary with term \(record.term) first")
        case .raced:
            _ = try? client.revoke(lease.id)
            return .wait("the term moved while promoting; looking again")
        }
    }

    public func decide(lastEpoch: UInt64?) -> FailoverDecision { decideAlone(lastEpoch: lastEpoch, heldTerm: nil) }

    /// As ``decide(lastEpoch:)``, and never while the guest's `commit-group` record says a newer primaryship
    /// than the one whose epoch this backup holds confirmed commits (they may be missing here), nor while it
    /// says that commits were confirmed by a primary with several backups (only their election, among
    /// candidates, can tell which of them holds the last: this backup waits).
    public func decide(lastEpoch: UInt64?, heldTerm: UInt64) -> FailoverDecision {
        decideAlone(lastEpoch: lastEpoch, heldTerm: heldTerm)
    }

    private func decideAlone(lastEpoch: UInt64?, heldTerm: UInt64?) -> FailoverDecision {
        if wasPromoted { return .standDown("this node was already promoted") }
        do {
            if let holder = try client.get(keys.primary) {
                let record = try PrimaryRecord.decode(holder.value, key: keys.primary)
                knownTerm.withLock { $0 = max($0, record.term) }
                let left = holder.lease == 0 ? nil : (try? client.timeToLive(holder.lease)).flatMap { $0 }
                return .wait(
                    "node \(record.node) is primary with term \(record.term)"
                        + (left.map { " and its lease has \($0) s left" } ?? ""))
            }
            guard let lastEpoch else {
                return .standDown(
                    "the primary's lease expired, but this backup holds no committed epoch to take over with")
            }
            if let record = try CommitGroupRecord.read(client, keys: keys)?.record {
                if let heldTerm, record.term > heldTerm {
                    return .wait(
                        """
                        term \(record.term) confirmed commits after the epoch this backup holds (of term \(heldTerm)): \
                        one of that term's backups must take over
                        """
                    )
                }
                if record.backups > 1 {
                    return .wait(
                        """
                        term \(record.term) confirmed commits with \(record.backups) backups (quorum \
                        \(record.quorum)): only an election among them can tell which holds the last
                        """
                    )
                }
            }
            return try claim(at: lastEpoch)
        } catch let error as CoordinationError {
            // The guest's keys hold what no FGBI node writes (a malformed record, a term at its maximum): no
            // promotion can be sound on them, and waiting would wait for ever. Stand down, saying why.
            logger.critical("guest \(keys.guest): \(error)")
            return .standDown("\(error)")
        } catch {
            return .wait("cannot ask etcd (\(error)); losing etcd never promotes anyone")
        }
    }
}
