import Testing

@testable import FGBI

/// The matcher of moved content takes every block only while its splices save bytes on the wire
/// (``SpliceAdmission``): the policy's decisions, and an engine that thins it under values updated in place
/// and takes every block again when content moves, its replica exact throughout.
@Suite("Splice admission")
struct SpliceAdmissionTests {
    @Test("thinned under 1 byte saved per operation, weighed by the compressor's share, restored at 1.5")
    func policyDecisions() {
        var policy = SpliceAdmission()
        func epoch(operations: Int, saved: Int) {
            for operation in 0..<operations {
                if operation.isMultiple(of: 2) {
                    policy.countRecord()
                } else {
                    policy.countLookup(saving: operation == 1 ? saved : 0)
                }
            }
            policy.endEpoch()
        }
        #expect(policy.admits(SpliceAdmission.sampleMask), "every block at first")
        epoch(operations: SpliceAdmission.minimumOperations - 1, saved: 0)
        #expect(!policy.thinned, "too few operations to judge by")
        epoch(operations: 10_000, saved: 10_000)
        #expect(!policy.thinned, "1 byte saved per operation: kept")
        epoch(operations: 10_000, saved: 9_000)
        #expect(policy.thinned, "0.9 bytes per operation: thinned")
        #expect(policy.admits(0) && !policy.admits(1 << 40), "the sample is chosen by the new hash's bits")
        epoch(operations: 1_000, saved: 90)
        #expect(policy.thinned, "0.09 bytes per operation in the sample, 1.44 scaled: still thinned")
        epoch(operations: 200, saved: 10_000)
        #expect(policy.thinned, "too few operations in the sample to judge by")
        epoch(operations: 1_000, saved: 100)
        #expect(!policy.thinned, "0.1 bytes per operation in the sample, 1.6 scaled: every block again")
        policy.noteStoredShare(0.25)
        epoch(operations: 10_000, saved: 30_000)
        #expect(policy.thinned, "3 bytes per operation of which the compressor keeps a quarter: thinned")
    }

    /// The admission of `harness`'s engine (one encode thread).
    private static func admission(_ harness: EngineHarness) throws -> SpliceAdmission {
        guard case .own(let encoder, _, _) = harness.engine.blockEncoder else {
            throw FGBIError.invalidArgument("not an engine with its own index on one thread")
        }
        return try #require(encoder.matcher).admission
    }

    @Test func anEngineThinsUnderRewritesInPlaceAndTakesEveryBlockWhenContentMoves() throws {
        var configuration = EngineConfiguration(mode: .fgbi)
        configuration.splicing = true
        let pages = 64
        let harness = try EngineHarness(configuration: configuration, regions: 1, pagesPerRegion: pages)
        let memory = harness.primary[0].base
        var random = SeededRandom(seed: 41)
        func fill() {
            for word in 0..<(pages * GuestMemory.pageSize / 8) {
                memory.storeBytes(of: random.next(), toByteOffset: word * 8, as: UInt64.self)
            }
        }
        fill()
        try harness.step([])
        // Values updated in place (two bytes of every block): short differences, nothing moved or found.
        for epoch in 1...2 {
            for block in 0..<(pages * GuestMemory.pageSize / 64) {
                memory.storeBytes(
                    of: UInt16(truncatingIfNeeded: random.next()), toByteOffset: block * 64 + 9, as: UInt16.self)
            }
            try harness.step([DirtyPageSet(pages: 0..<pages)])
            #expect(harness.identical, "epoch \(epoch): first difference at \(harness.firstDifference)")
        }
        #expect(try Self.admission(harness).thinned, "updates in place saved nothing: thinned")
        // Every page's bytes shifted by a few within it: found in the sample, worth taking every block again.
        for epoch in 3...4 {
            let shift = 3 + epoch
            for page in 0..<pages {
                let start = memory + page * GuestMemory.pageSize
                start.copyMemory(from: start + shift, byteCount: GuestMemory.pageSize - shift)
            }
            try harness.step([DirtyPageSet(pages: 0..<pages)])
            #expect(harness.identical, "epoch \(epoch): first difference at \(harness.firstDifference)")
        }
        #expect(try !Self.admission(harness).thinned, "moved content saved bytes: every block again")
    }
}
