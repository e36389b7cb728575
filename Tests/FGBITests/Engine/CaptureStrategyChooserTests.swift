import Testing

@testable import FGBI

/// The `auto` capture strategy (``CaptureStrategyChooser``): both strategies measured first, the cheaper pause
/// per page used, the other re-measured now and then, and a one-off expensive first capture forgotten as soon
/// as a normal one is measured.
@Suite("Capture strategy chooser")
struct CaptureStrategyChooserTests {
    /// Records `strategy` at `perPage` nanoseconds per page for an epoch of 1,000 pages.
    private func record(_ chooser: inout CaptureStrategyChooser, _ strategy: CaptureStrategy, _ perPage: UInt64) {
        chooser.record(strategy, nanoseconds: perPage * 1_000, pages: 1_000)
    }

    /// The strategies chosen for the next `epochs` epochs, each measured at its cost in `costs`.
    private func run(
        _ chooser: inout CaptureStrategyChooser, epochs: Int, costs: [CaptureStrategy: UInt64],
        favouringCopy: Bool = false, stagingReady: Bool = false
    ) -> [CaptureStrategy] {
        (0..<epochs).map { _ in
            let strategy = chooser.choose(
                rehashAllowed: true, favouringCopy: favouringCopy, stagingReady: stagingReady)
            record(&chooser, strategy, costs[strategy]!)
            return strategy
        }
    }

    @Test func measuresBothThenUsesTheCheaperAndExploresTheOther() {
        var chooser = CaptureStrategyChooser()
        let chosen = run(&chooser, epochs: 96, costs: [.rehash: 700, .copyPages: 400])
        #expect(Array(chosen.prefix(2)) == [.rehash, .copyPages])
        let rehashed = chosen.dropFirst(2).filter { $0 == .rehash }.count
        #expect(rehashed == 96 / CaptureStrategyChooser.exploreEvery, "rehash only when explored: \(chosen)")
    }

    @Test func aCostlyFirstCopyIsForgottenAtItsNextMeasurement() {
        var chooser = CaptureStrategyChooser()
        // The first copy faults its staging memory in: ten times its usual cost.
        _ = chooser.choose(rehashAllowed: true)
        record(&chooser, .rehash, 700)
        _ = chooser.choose(rehashAllowed: true)
        record(&chooser, .copyPages, 4_000)
        let chosen = run(
            &chooser, epochs: 2 * CaptureStrategyChooser.exploreEvery, costs: [.rehash: 700, .copyPages: 400])
        let firstCopy = chosen.firstIndex(of: .copyPages) ?? chosen.count
        let copiesAfter = chosen[firstCopy...].filter { $0 == .copyPages }.count
        #expect(firstCopy < CaptureStrategyChooser.exploreEvery, "copy re-measured at the first exploration")
        #expect(copiesAfter >= chosen.count - firstCopy - 2, "then used: \(chosen)")
    }

    @Test func aCopyStillWaitingToBeRehashedForbidsRehash() {
        var chooser = CaptureStrategyChooser()
        #expect(chooser.choose(rehashAllowed: false) == .copyPages)
        // Rehash measured the cheaper, still not while a copy waits.
        _ = run(&chooser, epochs: 8, costs: [.rehash: 300, .copyPages: 900])
        #expect(chooser.choose(rehashAllowed: true) == .rehash)
        #expect(chooser.choose(rehashAllowed: false) == .copyPages)
    }

    /// While page copies pay, copy is kept unless rehash's pause is clearly cheaper.
    @Test func copyIsFavouredWhileCopiesPay() {
        for (rehash, expected) in [(UInt64(700), CaptureStrategy.copyPages), (500, .rehash)] {
            var chooser = CaptureStrategyChooser()
            _ = chooser.choose(rehashAllowed: true)
            record(&chooser, .rehash, rehash)
            _ = chooser.choose(rehashAllowed: true)
            record(&chooser, .copyPages, 800)
            #expect(chooser.choose(rehashAllowed: true, favouringCopy: true) == expected, "rehash at \(rehash) ns")
            #expect(chooser.choose(rehashAllowed: true) == .rehash, "without copies the cheaper pause")
        }
    }

    /// An epoch captured by rehash finds no page copies: while they pay, rehash is explored eight times less
    /// often (after its first measurement, which comes first: a first copy's cost is one-off).
    @Test func whileCopiesPayRehashIsExploredRarely() {
        var chooser = CaptureStrategyChooser()
        let every = CaptureStrategyChooser.exploreEvery * CaptureStrategyChooser.rehashExploreSlowdown
        let chosen = run(&chooser, epochs: 2 * every, costs: [.rehash: 700, .copyPages: 800], favouringCopy: true)
        let rehashed = chosen.indices.filter { chosen[$0] == .rehash }
        #expect(rehashed == [0, every - 1, 2 * every - 1], "rehash first, then only at its slower explorations")
        // Once copies stop paying, the cheaper pause wins and copy is the one explored.
        let after = run(&chooser, epochs: every, costs: [.rehash: 700, .copyPages: 800])
        #expect(after.filter { $0 == .copyPages }.count == every / CaptureStrategyChooser.exploreEvery)
    }

    /// With staging memory ready for the epoch's pages, copy's first measurement is fair: it comes first, and
    /// rehash follows at once unless copies pay.
    @Test func copyIsMeasuredFirstWhenTheCaptureCanStageTheEpoch() {
        var chooser = CaptureStrategyChooser()
        let chosen = run(&chooser, epochs: 4, costs: [.rehash: 700, .copyPages: 400], stagingReady: true)
        #expect(chosen == [.copyPages, .rehash, .copyPages, .copyPages])
        var notReady = CaptureStrategyChooser()
        #expect(notReady.choose(rehashAllowed: true, stagingReady: false) == .rehash, "no staging: rehash first")
    }

    /// Copy measured first while copies pay: rehash waits for its first slower exploration, so a copying
    /// workload's first epochs are not sent block by block.
    @Test func whileCopiesPayAnUnmeasuredRehashWaitsForItsSlowerExploration() {
        var chooser = CaptureStrategyChooser()
        let every = CaptureStrategyChooser.exploreEvery * CaptureStrategyChooser.rehashExploreSlowdown
        let chosen = run(
            &chooser, epochs: every, costs: [.rehash: 700, .copyPages: 800], favouringCopy: true, stagingReady: true)
        #expect(chosen.indices.filter { chosen[$0] == .rehash } == [every - 1], "rehash first measured at \(every)")
    }

    @Test func epochsOfFewPagesAreNotMeasured() {
        var chooser = CaptureStrategyChooser()
        chooser.record(.rehash, nanoseconds: 1, pages: CaptureStrategyChooser.minimumPages - 1)
        // Still unmeasured: rehash is tried first.
        #expect(chooser.choose(rehashAllowed: true) == .rehash)
    }
}
