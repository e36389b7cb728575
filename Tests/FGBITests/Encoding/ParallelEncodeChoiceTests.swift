import Testing

@testable import FGBI

/// An epoch that several encode threads could split goes the way measured faster (``ParallelEncodeChoice``):
/// the policy's decisions, and an engine on two threads whose deltas stay the one thread's bytes whichever
/// way each epoch went.
@Suite("Parallel encode choice")
struct ParallelEncodeChoiceTests {
    @Test(
        "each way measured first, then the faster (the split by 10%), the other every 16 epochs; unmeasured: split"
    )
    func decisions() {
        var choice = ParallelEncodeChoice(measures: true)
        #expect(choice.next() == .split, "the split is measured first")
        choice.record(.split, nanoseconds: 90_000_000, blocks: 100_000)
        #expect(choice.next() == .split, "its first epoch (buffers growing) is not counted")
        choice.record(.split, nanoseconds: 2_000_000, blocks: 100_000) // 20 ns per block
        #expect(choice.next() == .alone, "then the calling thread alone")
        choice.record(.alone, nanoseconds: 90_000_000, blocks: 100_000)
        #expect(choice.next() == .alone)
        choice.record(.alone, nanoseconds: 1_000_000, blocks: 100_000) // 10 ns per block
        #expect(choice.splitNanosecondsPerBlock == 20 && choice.aloneNanosecondsPerBlock == 10)
        var ways: [ParallelEncodeChoice.Way] = []
        for _ in 0..<(2 * ParallelEncodeChoice.exploreEvery) {
            let way = choice.next()
            ways.append(way)
            choice.record(way, nanoseconds: way == .split ? 2_000_000 : 1_000_000, blocks: 100_000)
        }
        #expect(ways.filter { $0 == .split }.count == 2, "the slower way tried once every 16 epochs: \(ways)")
        #expect(ways[ParallelEncodeChoice.exploreEvery - 1] == .split, "\(ways)")
        #expect(choice.splitNanosecondsPerBlock == 20 && choice.aloneNanosecondsPerBlock == 10)

        // The split becomes faster (a heavier epoch mix, or a host with bandwidth to share): its next try, 16
        // epochs after the last (the loop ended on one), replaces its old figure, and it is taken.
        for _ in 0..<(ParallelEncodeChoice.exploreEvery - 1) {
            choice.record(.alone, nanoseconds: 1_000_000, blocks: 100_000)
        }
        choice.record(.split, nanoseconds: 500_000, blocks: 100_000)
        #expect(choice.splitNanosecondsPerBlock == 5, "a fresh figure, not weighted into the old one")
        #expect(choice.next() == .split)
        choice.record(.split, nanoseconds: 700_000, blocks: 100_000)
        #expect(choice.splitNanosecondsPerBlock == 5.5, "weighted in while measured often")

        // Within 10% of each other: the calling thread alone (the split spends the helpers' CPU too).
        for _ in 0..<8 { choice.record(.split, nanoseconds: 950_000, blocks: 100_000) }
        #expect((choice.splitNanosecondsPerBlock ?? 0) < 10 && (choice.splitNanosecondsPerBlock ?? 0) > 9)
        #expect(choice.next() == .alone)

        choice.record(.alone, nanoseconds: 1, blocks: 0)
        #expect(choice.aloneNanosecondsPerBlock == 10, "an epoch of no blocks is not judged by")

        var always = ParallelEncodeChoice(measures: false)
        always.record(.split, nanoseconds: 9_000_000, blocks: 1)
        always.record(.alone, nanoseconds: 1, blocks: 1)
        #expect((0..<40).allSatisfy { _ in always.next() == .split }, "not measured: every epoch is split")
    }

    @Test("two encode threads choosing by time write the one thread's bytes and an exact replica")
    func choosingKeepsTheBytes() throws {
        let harnesses = try [1, 2].map { threads in
            var configuration = EngineConfiguration(mode: .fgbi, blockSize: 64)
            configuration.captureStrategy = .rehash
            configuration.encodeThreads = threads
            configuration.parallelEncodeMinimumBlocks = 0
            configuration.contentBudgetBytes = 512 << 10
            return try EngineHarness(configuration: configuration, regions: 2, pagesPerRegion: 256)
        }
        var mutators = harnesses.map { Mutator(regions: $0.primary, blockSize: 64, seed: 29) }
        var split = 0
        for epoch in 0..<40 {
            var deltas: [[UInt8]] = []
            for index in harnesses.indices {
                for _ in 0..<(epoch == 0 ? 400 : 150) { mutators[index].act() }
                let (delta, statistics) = try harnesses[index].step(mutators[index].takeDirty())
                deltas.append(delta)
                if index == 1 { split += statistics.epochsEncodedSplit }
                #expect(harnesses[index].identical, "epoch \(epoch), harness \(index)")
            }
            #expect(deltas[1] == deltas[0], "epoch \(epoch): the two threads' delta differs from one thread's")
        }
        // The split is measured at least at the start and once in every 16 epochs after.
        #expect(split >= 2, "epochs split: \(split) of 40")
    }
}
