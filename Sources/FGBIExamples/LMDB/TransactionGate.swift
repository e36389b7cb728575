import FGBI
import Foundation

/// The pause gate between an LMDB writer and FGBI's epochs: the writer passes through it around each
/// transaction, and ``pause()`` returns only once no transaction is open, so every epoch cuts the database
/// between two commits. (An LMDB map copied mid-transaction would also open, on the previous commit, since
/// LMDB keeps the last two meta pages and publishes a commit by writing its transaction id last; pausing
/// between transactions keeps the epoch's copy and the commits it acknowledges in step.)
public final class TransactionGate: @unchecked Sendable {
    private let condition = NSCondition()
    private var paused = false
    private var open = 0

    public init() {}

    /// Waits while an epoch is being cut, then marks a transaction open.
    @inline(__always)
    public func enter() {
        condition.lock()
        while paused { condition.wait() }
        open += 1
        condition.unlock()
    }

    /// Marks the transaction closed (committed or aborted).
    @inline(__always)
    public func leave() {
        condition.lock()
        open -= 1
        if open == 0 { condition.broadcast() }
        condition.unlock()
    }

    /// Stops new transactions and waits for the open ones to close.
    public func pause() {
        condition.lock()
        paused = true
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
