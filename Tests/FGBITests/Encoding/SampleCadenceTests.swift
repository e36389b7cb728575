import Testing

@testable import FGBI

/// How often the encoder's sampled decisions are made again (``SampleCadence``): until the bytes seen since a
/// sample reach 16 times its bytes, or for 16 epochs, each bound doubled (up to a chosen stretch) while samples
/// keep confirming the decision.
@Suite("Sample cadence")
struct SampleCadenceTests {
    /// Samples taken over `epochs` epochs of `bytes` each, each sample of `sampleBytes` and changing the decision
    /// (the base cadence).
    private static func samples(epochs: Int, bytes: Int, sampleBytes: Int) -> Int {
        var cadence = SampleCadence()
        for _ in 0..<epochs where !cadence.reuses(bytes: bytes) {
            cadence.sampled(bytes: sampleBytes, confirming: false)
        }
        return cadence.samples
    }

    @Test func aDecisionLastsSixteenTimesItsSampleOrSixteenEpochs() {
        let sample = 384 << 10
        #expect(Self.samples(epochs: 48, bytes: 8 << 20, sampleBytes: sample) == 48, "over 6 MiB: every epoch")
        #expect(Self.samples(epochs: 48, bytes: 2 << 20, sampleBytes: sample) == 16, "2 MiB: every third")
        #expect(Self.samples(epochs: 48, bytes: 4 << 20, sampleBytes: sample) == 24, "4 MiB: every second")
        // A small epoch is its own whole sample: every 16th epoch.
        #expect(Self.samples(epochs: 48, bytes: 100 << 10, sampleBytes: 100 << 10) == 3)
        // Epochs that shrink after a large sample still resample every 16th epoch.
        #expect(Self.samples(epochs: 48, bytes: 1 << 10, sampleBytes: sample) == 3)
    }

    /// With a larger factor a decision lasts longer by bytes, never past 16 epochs.
    @Test func aLargerFactorStretchesTheBytesNotTheEpochs() {
        func samples(_ bytes: Int) -> Int {
            var cadence = SampleCadence(bytesFactor: 64)
            for _ in 0..<48 where !cadence.reuses(bytes: bytes) { cadence.sampled(bytes: 384 << 10, confirming: false) }
            return cadence.samples
        }
        #expect(samples(8 << 20) == 16, "8 MiB: every third epoch")
        #expect(samples(32 << 20) == 48, "over 24 MiB: every epoch")
        #expect(samples(100 << 10) == 3, "small: every 17th epoch")
    }

    /// Samples that confirm the decision double its life, up to four times the base one; a sample that changes
    /// it brings the base life back.
    @Test func confirmedDecisionsLastLongerUntilOneChanges() {
        var cadence = SampleCadence(maximumStretch: 4)
        var sampledAt: [Int] = []
        var stretches: [Int] = []
        for epoch in 0..<160 where !cadence.reuses(bytes: 1 << 10) {
            sampledAt.append(epoch)
            cadence.sampled(bytes: 384 << 10, confirming: epoch != 115)
            stretches.append(cadence.stretch)
        }
        // 16 epochs, then 32, then 64 at most; the sample at 115 changes the decision: 16 again, then 32.
        #expect(sampledAt == [0, 17, 50, 115, 132], "sampled at \(sampledAt)")
        #expect(stretches == [1, 2, 4, 1, 2], "stretches \(stretches)")
    }

    /// The assembler's decision to compress a large body follows the cadence, stretched up to four times while
    /// samples confirm it: bodies of 2 MiB are sampled 6 times in 48 (every third epoch unstretched: 16), those
    /// of 8 MiB 17 times (every epoch unstretched: 48).
    @Test func theAssemblerSamplesLargeBodiesByTheCadence() throws {
        for (megabytes, expected) in [(2, 6), (8, 17)] {
            let assembler = DeltaAssembler(
                mode: .fgbi, compression: .lz4, geometry: try BlockGeometry(blockSize: 64), regionCount: 1,
                minimumSaving: 0.10)
            var random = SeededRandom(seed: 3)
            let body = (0..<(megabytes << 17)).flatMap { _ in withUnsafeBytes(of: random.next()) { Array($0) } }
            var delta = ByteWriter()
            var scratch = ByteWriter()
            for epoch in 0..<48 {
                DeltaAssembler.start(&delta)
                body.withUnsafeBytes { delta.raw($0.baseAddress!, count: $0.count) }
                let outcome = try assembler.finish(epoch: UInt64(epoch), records: 1, delta: &delta, scratch: &scratch)
                #expect(outcome.storedRaw, "random bytes do not compress")
            }
            #expect(assembler.samples == expected, "\(megabytes) MiB bodies: \(assembler.samples) samples in 48")
        }
    }
}
