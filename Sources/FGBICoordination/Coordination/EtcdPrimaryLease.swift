import Dispatch
import FGBI
import Foundation
import Logging

/// Primaryship of one guest, held as an etcd lease: the ``PrimaryAuthority`` of a ``Primary`` coordinated
/// through etcd.
///
/// ``acquire(client:keys:node:ttlSeconds:wait:logger:)`` grants a lease and, in one transaction that
/// compares the guest's `primary` key (absent) and `term` key (unchanged), writes the next term and this
/// node's ``PrimaryRecord`` attached to the lease. A thread then renews the lease every third of its time to
/// live. Each renewal that succeeds extends ``validUntilNanoseconds`` to the moment it was *sent* plus the
/// time to live etcd granted: etcd counts from when it processed the renewal, never earlier, so this process
/// stops confirming epochs no later than the lease can expire, and a backup promoted after that expiry
/// never overlaps with it.
///
/// Each renewal first checks, in one transaction, that the guest's `primary` key still holds this node's
/// record on this lease: a key deleted or rewritten by someone else (the lease alone would go on renewing,
/// and a backup would be promoted at the next link loss) ends primaryship at once.
///
/// When renewals fail (etcd unreachable, or the lease already gone) the right runs out at that deadline and
/// is lost for good: the renewer then revokes the lease (best effort) so a backup need not wait out the
/// rest of it, and stops.
public final class EtcdPrimaryLease: PrimaryAuthority, @unchecked Sendable {
    public let keys: GuestKeys
    public let node: String
    public let term: UInt64
    public let leaseID: Int64
    /// What this node wrote at the guest's `primary` key: each renewal checks it is still there.
    let record: PrimaryRecord
    /// The time to live etcd granted (it raises values below its minimum, 2 s with default timing).
    public let ttlSeconds: Int
    let client: EtcdClient
    let logger: Logger

    struct State {
        var validUntil: UInt64
        var reason = "held"
        var released = false
        /// Handed to the process that replaces this one (``handOver()``): not renewed, not revoked.
        var handedOver = false
        var lastRenewalSent: UInt64
    }
    /// A pthread-based lock (NSLock), which ThreadSanitizer models, over the renewal state.
    let state: LockedState<State>
    let renewerDone = DispatchSemaphore(value: 0)

    /// Acquires primaryship of `keys.guest` for `node`. While another node holds it, or etcd does not answer
    /// in time, tries again until `wait` has passed (its lease may be about to expire), then throws.
    ///
    /// - Throws: ``CoordinationError/primaryHeld(guest:by:secondsLeft:)`` when another node holds it;
    ///   ``EtcdError`` when etcd cannot be reached within `wait`.
    public static func acquire(
        client: EtcdClient, keys: GuestKeys, node: String, ttlSeconds: Int,
        wait: Duration = .zero, logger: Logger = Logger(label: "fgbi.etcd")
    ) throws -> EtcdPrimaryLease {
        try acquire(
            client: client, keys: keys, node: node, ttlSeconds: ttlSeconds, wait: wait, logger: logger,
            expectingTerm: nil, compare: [])
    }

    /// The acquire loop; with `expectingTerm`, only while that is the newest term granted and `extra` holds,
    /// else ``FGBIError/invalidState(_:)`` at once.
    static func acquire(
        client: EtcdClient, keys: GuestKeys, node: String, ttlSeconds: Int, wait: Duration, logger: Logger,
        expectingTerm: UInt64?, compare extra: [EtcdCompare]
    ) throws -> EtcdPrimaryLease {
        try GuestKeys.validate(node, what: "node")
        guard (1...3600).contains(ttlSeconds) else {
            throw FGBIError.invalidArgument("lease TTL \(ttlSeconds) s: use 1 to 3600")
        }
        let deadline = MonotonicClock.nanoseconds() + wait.wholeNanoseconds
        var raced = 0
        while true {
            let sent = MonotonicClock.nanoseconds()
            let lease: EtcdLease
            let outcome: Claim
            do {
                lease = try client.grantLease(ttlSeconds: ttlSeconds)
                do {
                    outcome = try claim(
                        client: client, keys: keys, record: { PrimaryRecord(node: node, term: $0) }, leaseID: lease.id,
                        committedEpoch: nil, expectingTerm: expectingTerm, compare: extra)
                } catch {
                    // The transaction may or may not have happened: give the lease up either way (the key goes with
                    // it).
                    _ = try? client.revoke(lease.id)
                    throw error
                }
            } catch let error as EtcdError where MonotonicClock.nanoseconds() + 100_000_000 < deadline {
                // etcd slow or briefly away: try again while the wait lasts.
                logger.warning("guest \(keys.guest): cannot take primaryship yet (\(error)); trying again")
                MonotonicClock.sleep(nanoseconds: 100_000_000)
                continue
            }
            switch outcome {
            case .granted(let record):
                if lease.ttlSeconds != ttlSeconds {
                    logger.notice(
                        """
                        etcd granted a lease of \(lease.ttlSeconds) s for the \(ttlSeconds) s asked (its minimum \
                        follows its election timeout)
                        """
                    )
                }
                return EtcdPrimaryLease(
                    client: client, keys: keys, record: record, leaseID: lease.id,
                    ttlSeconds: lease.ttlSeconds, grantSent: sent, logger: logger)
            case .held(let record, let leaseOfHolder):
                _ = try? client.revoke(lease.id)
                if MonotonicClock.nanoseconds() >= deadline {
                    let left = leaseOfHolder == 0 ? nil : (try? client.timeToLive(leaseOfHolder)).flatMap { $0 }
                    throw CoordinationError.primaryHeld(guest: keys.guest, by: record, secondsLeft: left)
                }
                MonotonicClock.sleep(nanoseconds: 100_000_000)
            case .raced:
                _ = try? client.revoke(lease.id)
                if let expectingTerm {
                    throw FGBIError.invalidState(
                        """
                        guest \(keys.guest): a term after \(expectingTerm) was granted, or another promotion recorded, \
                        since this node's promotion: continuing its replica could undo epochs committed since
                        """
                    )
                }
                raced += 1
                if raced >= 10 { throw CoordinationError.contended(guest: keys.guest, attempts: raced) }
            }
        }
    }

    /// What one attempt to take primaryship found.
    enum Claim {
        /// This node is primary: the record written, with its term.
        case granted(PrimaryRecord)
        /// Another node is primary (its record and lease).
        case held(PrimaryRecord, Int64)
        /// The term moved between reading and writing it: look again.
        case raced
    }

    /// One transaction that makes `record(newTerm)` the guest's primary on `leaseID`, if no one is primary
    /// and the term did not move since it was read; with `committedEpoch`, also records the takeover. With
    /// `expectingTerm`, ``Claim/raced`` unless the newest term granted is that one; `compare` adds conditions.
    static func claim(
        client: EtcdClient, keys: GuestKeys, record: (UInt64) -> PrimaryRecord, leaseID: Int64,
        committedEpoch: UInt64?, expectingTerm: UInt64? = nil, compare extra: [EtcdCompare] = []
    ) throws -> Claim {
        let termKey = try client.get(keys.term)
        let current = try termKey.map { try TermValue.decode($0.value, key: keys.term) } ?? 0
        if let expectingTerm, current != expectingTerm { return .raced }
        guard current < UInt64.max else { throw CoordinationError.termExhausted(keys.term) }
        let next = current + 1
        var primary = record(next)
        primary.epoch = committedEpoch
        var success: [EtcdOperation] = [
            .put(key: keys.term, value: TermValue.encode(next)),
            .put(key: keys.primary, value: primary.encoded, lease: leaseID),
        ]
        if committedEpoch != nil { success.append(.put(key: keys.committed, value: primary.encoded)) }
        let transaction = EtcdTransaction(
            compare: [
                .absent(keys.primary),
                termKey.map { EtcdCompare(key: keys.term, .modRevision($0.modRevision)) } ?? .absent(keys.term),
            ] + extra,
            success: success,
            failure: [.range(key: keys.primary)])
        let result = try client.transaction(transaction)
        if result.succeeded { return .granted(primary) }
        if let holder = result.keyValues.first {
            return .held(try PrimaryRecord.decode(holder.value, key: keys.primary), holder.lease)
        }
        return .raced
    }

    init(
        client: EtcdClient, keys: GuestKeys, record: PrimaryRecord, leaseID: Int64, ttlSeconds: Int,
        grantSent: UInt64, logger: Logger
    ) {
        self.client = client
        self.keys = keys
        self.record = record
        node = record.node
        term = record.term
        self.leaseID = leaseID
        self.ttlSeconds = ttlSeconds
        self.logger = logger
        state = LockedState(
            State(validUntil: grantSent + UInt64(ttlSeconds) * 1_000_000_000, lastRenewalSent: grantSent))
        Thread.detachNewThread { [self] in
            renewLoop()
            renewerDone.signal()
        }
    }

    deinit {
        if !state.withLock({ $0.handedOver }) { release() }
    }

    public var validUntilNanoseconds: UInt64 { state.withLock { $0.validUntil } }

    public var lossReason: String { state.withLock { $0.reason } }

    /// Whether the right still surely holds now.
    public var isHeld: Bool { MonotonicClock.nanoseconds() < validUntilNanoseconds }

    /// Gives primaryship up: stops renewing and revokes the lease, so the `primary` key vanishes at once
    /// (after a clean stop, no backup need wait out the lease). Idempotent.
    public func release() {
        let first = state.withLock { state -> Bool in
            defer { state.released = true }
            if !state.released {
                state.validUntil = 0
                state.reason = "released"
            }
            return !state.released
        }
        guard first else { return }
        renewerDone.wait()
        do {
            _ = try client.revoke(leaseID)
        } catch {
            logger.warning(
                "could not revoke lease \(leaseID) of guest \(keys.guest): \(error); it expires within \(ttlSeconds) s")
        }
    }

    private func renewLoop() {
        let ttl = UInt64(ttlSeconds) * 1_000_000_000
        let interval = ttl / 3
        var nextRenewal = state.withLock { $0.lastRenewalSent } + interval
        while true {
            let (released, validUntil) = state.withLock { ($0.released, $0.validUntil) }
            if released { return }
            let now = MonotonicClock.nanoseconds()
            if now >= validUntil {
                lose(reason: state.withLock { $0.reason })
                return
            }
            if now < nextRenewal {
                MonotonicClock.sleep(nanoseconds: min(nextRenewal - now, 10_000_000))
                continue
            }
            let sent = MonotonicClock.nanoseconds()
            do {
                guard try ownsPrimaryKey() else {
                    state.withLock { $0.validUntil = 0 }
                    lose(
                        reason:
                            """
                            the guest's primary key (\(keys.primary)) no longer holds this node's record on its \
                            lease:\u{20}
                            """
                                + "deleted or rewritten by someone else")
                    return
                }
                if let granted = try client.keepAlive(leaseID) {
                    state.withLock { state in
                        guard !state.released else { return }
                        state.validUntil = max(state.validUntil, sent + UInt64(granted) * 1_000_000_000)
                        state.lastRenewalSent = sent
                        state.reason = "held"
                    }
                    nextRenewal = sent + interval
                } else {
                    state.withLock { $0.validUntil = 0 }
                    lose(reason: "etcd says lease \(leaseID) expired (renewals were late)")
                    return
                }
            } catch {
                let left = Double(Int64(validUntil) - Int64(MonotonicClock.nanoseconds())) / 1e9
                state.withLock { $0.reason = "cannot renew the lease: \(error)" }
                logger.warning(
                    """
                    guest \(keys.guest): cannot renew lease (\(error)); primaryship runs out in \
                    \(String(format: "%.2f", max(left, 0))) s
                    """
                )
                nextRenewal = MonotonicClock.nanoseconds() + min(interval, 100_000_000)
            }
        }
    }

    /// Whether the guest's `primary` key still holds this node's record on this lease: one transaction
    /// comparing its value and its lease, read at one revision. A key deleted or rewritten by anyone else (the
    /// lease alone would go on renewing) means another node may be promoted: stop confirming.
    func ownsPrimaryKey() throws -> Bool {
        let check = EtcdTransaction(
            compare: [
                EtcdCompare(key: keys.primary, .value(record.encoded)), EtcdCompare(key: keys.primary, .lease(leaseID)),
            ],
            success: [], failure: [])
        return try client.transaction(check).succeeded
    }

    /// The right ran out: mark it lost and revoke the lease so a backup need not wait for it to expire.
    private func lose(reason: String) {
        state.withLock {
            $0.validUntil = 0
            $0.reason = reason
        }
        logger.critical("guest \(keys.guest): lost primaryship of term \(term): \(reason)")
        _ = try? client.revoke(leaseID)
    }
}

/// A value behind an NSLock (pthread mutex): ThreadSanitizer models it, where it does not model the futex
/// behind `Synchronization.Mutex`.
final class LockedState<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
