import Synchronization

/// A primary's output-commit bookkeeping: what each backup acknowledged, the newest epoch the
/// ``CommitPolicy`` counts as committed from that, and the clients waiting for commits.
///
/// Committed epochs only grow: an acknowledgement says the backup applied the epoch whole, which stays true
/// when the backup is later lost.
final class CommitTracker: @unchecked Sendable {
    private struct State {
        var acknowledged: [UInt64?]
        var committed: UInt64?
        var continuations: [Int: AsyncStream<UInt64>.Continuation] = [:]
        var nextContinuation = 0
        /// Whether `beforeFirstCommit` succeeded (or there is none).
        var firstCommitCleared: Bool
    }

    let policy: CommitPolicy
    private let state: PthreadLock<State>
    /// Asked, outside the lock, before the first epoch is counted as committed; false holds commits back until
    /// the next acknowledgement asks again (``PrimaryAuthority/recordFirstCommit(backups:quorum:)``).
    private let beforeFirstCommit: (() -> Bool)?

    init(policy: CommitPolicy, backups: Int, beforeFirstCommit: (() -> Bool)? = nil) {
        self.policy = policy
        self.beforeFirstCommit = beforeFirstCommit
        state = PthreadLock(
            State(acknowledged: Array(repeating: nil, count: backups), firstCommitCleared: beforeFirstCommit == nil))
    }

    /// The newest committed epoch, or nil before the first.
    var committed: UInt64? { state.withLock { $0.committed } }

    /// What each backup acknowledged last (nil: nothing yet).
    var acknowledged: [UInt64?] { state.withLock { $0.acknowledged } }

    /// Backup `index` acknowledged `epoch` (or, rejoining, holds it). Returns the newly committed epoch when
    /// this advanced it, after telling every ``commits()`` stream.
    @discardableResult
    func acknowledge(_ epoch: UInt64, from index: Int) -> UInt64? {
        var cleared = false
        while true {
            let (step, continuations) = state.withLock { state -> (Step, [AsyncStream<UInt64>.Continuation]) in
                state.acknowledged[index] = max(state.acknowledged[index] ?? 0, epoch)
                guard let candidate = policy.committed(state.acknowledged),
                    state.committed.map({ candidate > $0 }) ?? true
                else {
                    return (.none, [])
                }
                if cleared { state.firstCommitCleared = true }
                guard state.firstCommitCleared else { return (.askFirst, []) }
                state.committed = candidate
                return (.committed(candidate), Array(state.continuations.values))
            }
            switch step {
            case .none:
                return nil
            case .askFirst:
                // Once per primaryship (a few threads may ask at once: the record is the same), outside the lock,
                // which readers of the commits and the stop path take.
                guard beforeFirstCommit?() ?? true else { return nil }
                cleared = true
            case .committed(let advanced):
                for continuation in continuations { continuation.yield(advanced) }
                return advanced
            }
        }
    }

    /// What one look under the lock found.
    private enum Step {
        case none
        case askFirst
        case committed(UInt64)
    }

    /// Every epoch committed from now on, in order (epochs committed together arrive as the newest).
    func commits() -> AsyncStream<UInt64> {
        AsyncStream { continuation in
            let id = state.withLock { state -> Int in
                state.nextContinuation += 1
                state.continuations[state.nextContinuation] = continuation
                return state.nextContinuation
            }
            continuation.onTermination = { [weak self] _ in
                _ = self?.state.withLock { $0.continuations.removeValue(forKey: id) }
            }
        }
    }

    /// Blocks until `epoch` (or a later one) is committed; false at `deadlineNanoseconds` or as soon as
    /// `hasFailed` says commits can no longer come.
    func wait(for epoch: UInt64, deadlineNanoseconds: UInt64, hasFailed: () -> Bool) -> Bool {
        while MonotonicClock.nanoseconds() < deadlineNanoseconds {
            if let committed, committed >= epoch { return true }
            if hasFailed() { return false }
            MonotonicClock.sleep(nanoseconds: 200_000)
        }
        return false
    }

    /// Ends every ``commits()`` stream (replication stopped).
    func finish() {
        let continuations = state.withLock { state -> [AsyncStream<UInt64>.Continuation] in
            defer { state.continuations.removeAll() }
            return Array(state.continuations.values)
        }
        for continuation in continuations { continuation.finish() }
    }
}
