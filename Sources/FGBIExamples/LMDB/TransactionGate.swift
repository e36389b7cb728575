import FGBI
import Foundation
import Synchronization

/// The pause gate between an LMDB writer and FGBI's epochs: the writer passes through it around each
/// transaction, and ``pause()`` returns only once no transaction is open, so every epoch cuts the database
/// between two commits. (An LMDB map copied mid-transaction would also open, on the previous commit, since
/// LMDB keeps the last two meta pages and publishes a commit by writing its transaction id last; pausing
/// between transactions keeps the epoch's copy and the commits it acknowledges in step.)
public final class TransactionGate: @unchecked Sendable {
    private let condition = NSCondition()
    private var paused = false
    private var open = 0
    /// `open`, readable without the lock: ``pause()`` spins on it.
    private let openNow = Atomic<Int>(0)
    /// How long ``pause()`` spins for the open transactions to close before it sleeps. A transaction takes
    /// microseconds; a sleeping pauser is woken by the scheduler, which on a busy CPU of a kernel without
    /// preemption (PREEMPT_NONE, as here) takes up to a tick, a millisecond the writer waits for.
    public static let spinNanoseconds: UInt64 = 200_000
    private var waitedNanoseconds: UInt64 = 0

    public init() {}

    /// Time transactions spent waiting at the gate for epochs to be cut, in total.
    public var waitingNanoseconds: UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return waitedNanoseconds
    }

    /// Waits while an epoch is being cut, then marks a transaction open.
    @inline(__always)
    public func enter() {
        condition.lock()
        if paused {
            let start = MonotonicClock.nanoseconds()
            while paused { condition.wait() }
            waitedNanoseconds += MonotonicClock.nanoseconds() - start
        }
        open += 1
        openNow.store(open, ordering: .releasing)
        condition.unlock()
    }

    /// Marks the transaction closed (committed or aborted).
    @inline(__always)
    public func leave() {
        condition.lock()
        open -= 1
        openNow.store(open, ordering: .releasing)
        if open == 0 { condition.broadcast() }
        condition.unlock()
    }

    /// Stops new transactions and waits for the open ones to close: spinning at first, then asleep.
    public func pause() {
        condition.lock()
        paused = true
        condition.unlock()
        let start = MonotonicClock.nanoseconds()
        // Yielding while it spins, in case the writer shares this CPU.
        while openNow.load(ordering: .acquiring) > 0, MonotonicClock.nanoseconds() - start < Self.spinNanoseconds {
            sched_yield()
        }
        condition.lock()
        while open > 0 { condition.wait() }
        condition.unlock()
    }

    /// Lets transactions start again.
    public func resume() {
        condition.lock()
        paused = false
        condition.broadcast()
        condition.unlock()
    }

    /// The hooks a ``Primary`` calls around each epoch's capture.
    public var hooks: PauseHooks {
        PauseHooks(pause: { [self] in pause() }, resume: { [self] in resume() })
    }
}
