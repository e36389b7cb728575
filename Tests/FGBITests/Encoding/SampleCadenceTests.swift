import Testing

@testable import FGBI

/// How often the encoder's sampled decisions are made again (``SampleCadence``): until the bytes seen since a
/// sample reach 16 times its bytes, or for 16 epochs.
@Suite("Sample cadence")
struct SampleCadenceTests {
    /// Samples taken over `epochs` epochs of `bytes` each, each sample of `sampleBytes`.
    private static func samples(epochs: Int, bytes: Int, sampleBytes: Int) -> Int {
        var cadence = SampleCadence()
        for _ in 0..<epochs where !cadence.reuses(bytes: bytes) { cadence.sampled(bytes: sampleBytes) }
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
            for _ in 0..<48 where !cadence.reuses(bytes: bytes) { cadence.sampled(bytes: 384 << 10) }
            return cadence.samples
        }
        #expect(samples(8 << 20) == 16, "8 MiB: every third epoch")
        #expect(samples(32 << 20) == 48, "over 24 MiB: every epoch")
        #expect(samples(100 << 10) == 3, "small: every 17th epoch")
    }

    /// The assembler's decision to compress a large body follows the cadence: bodies of 2 MiB are sampled
    /// every third epoch (every epoch before), those of 8 MiB every epoch.
    @Test func theAssemblerSamplesLargeBodiesByTheCadence() throws {
        for (megabytes, expected) in [(2, 16), (8, 48)] {
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
