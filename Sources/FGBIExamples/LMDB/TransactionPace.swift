import FGBI

/// Holds a writer to a steady rate of transactions, as a service under a given load commits them, rather
/// than at the full speed of its CPU. The history's first `loadTransactions` are committed at full speed (a
/// load phase that fills the database); from then on the writer sleeps after each commit until its next
/// transaction is due (the `n`th after the load phase `n / perSecond` seconds after it ended).
///
/// A writer that falls behind (a pause, a slow commit) is not held back while it catches up, so the rate
/// over a run is the one asked for whenever the writer can reach it.
public struct TransactionPace: Sendable, Equatable {
    /// The transactions per second to hold the writer to.
    public let perSecond: Int
    /// The history's transactions committed at full speed before the pace holds.
    public let loadTransactions: UInt64

    /// - Throws: ``FGBIError/invalidArgument(_:)`` unless `perSecond` is positive.
    public init(perSecond: Int, loadTransactions: UInt64 = 0) throws {
        guard perSecond > 0 else {
            throw FGBIError.invalidArgument("a transaction rate must be positive, not \(perSecond)")
        }
        self.perSecond = perSecond
        self.loadTransactions = loadTransactions
    }

    /// The nanoseconds after the paced part of a run began at which its `paced + 1`th transaction is due
    /// (`UInt64.max` past what a clock in nanoseconds can count, some 580 years).
    public func due(afterPacing paced: UInt64) -> UInt64 {
        let rate = UInt64(perSecond)
        let (whole, overflow) = (paced / rate).multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return .max }
        let (sum, overflowAgain) = whole.addingReportingOverflow(paced % rate * 1_000_000_000 / rate)
        return overflowAgain ? .max : sum
    }
}

/// A writer's progress against its ``TransactionPace``: when its paced part began and how many transactions
/// it has committed since.
struct TransactionPacer {
    let pace: TransactionPace
    private var pacedSince: UInt64?
    private var paced: UInt64 = 0

    init(_ pace: TransactionPace) { self.pace = pace }

    /// Called after the history's transaction `number` was committed: sleeps the calling thread until the
    /// next one is due (not at all in the load phase).
    mutating func committed(_ number: UInt64) {
        guard number >= pace.loadTransactions else { return }
        guard let pacedSince else {
            pacedSince = MonotonicClock.nanoseconds()
            return
        }
        paced += 1
        let (due, overflow) = pacedSince.addingReportingOverflow(pace.due(afterPacing: paced))
        let now = MonotonicClock.nanoseconds()
        if !overflow, due > now { MonotonicClock.sleep(nanoseconds: due - now) }
    }
}
