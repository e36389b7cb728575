import Testing

@testable import FGBI

/// The encoder reads a changed block's previous content for a difference only while differences save bytes
/// (``DifferenceAdmission``): the policy's decisions, and an engine that stops reading it under rewrites of
/// unrelated content and starts again when updates are made in place, its replica exact throughout.
@Suite("Difference admission")
struct DifferenceAdmissionTests {
    @Test("thinned under 3 bytes saved per offer, restored at 3.5, judged only on enough offers")
    func policyDecisions() {
        var policy = DifferenceAdmission()
        func epoch(offered: Int, saved: Int) {
            for _ in 0..<offered { policy.countOffered() }
            policy.countSaving(saved)
            policy.endEpoch()
        }
        #expect(policy.offers(DifferenceAdmission.sampleMask), "every block is offered at first")
        epoch(offered: DifferenceAdmission.minimumOffered - 1, saved: 0)
        #expect(policy.mask == 0, "too few offers to judge by")
        epoch(offered: 2000, saved: 6000)
        #expect(policy.mask == 0, "3 bytes saved per offer: kept")
        epoch(offered: 2000, saved: 5000)
        #expect(policy.mask == DifferenceAdmission.sampleMask, "2.5 bytes per offer: thinned")
        #expect(policy.offers(0) && !policy.offers(1 << 32), "the sample is chosen by the new hash's bits")
        epoch(offered: 200, saved: 600)
        #expect(policy.mask != 0, "3 bytes per offer in the sample: still thinned (the band between)")
        epoch(offered: 100, saved: 6400)
        #expect(policy.mask != 0, "too few offers in the sample to judge by")
        epoch(offered: 200, saved: 700)
        #expect(policy.mask == 0, "3.5 bytes per offer in the sample: every block again")
    }

    @Test("the length without a base: the sparse form where shorter, else the bytes, with the operation")
    func lengthWithoutBase() {
        var block = [UInt8](repeating: 0, count: 64)
        block[3] = 1
        block[60] = 0x80
        block.withUnsafeBytes { bytes in
            #expect(DifferenceAdmission.lengthWithoutBase(bytes.baseAddress!, length: 64, sparse: true) == 1 + 8 + 2)
            #expect(DifferenceAdmission.lengthWithoutBase(bytes.baseAddress!, length: 64, sparse: false) == 65)
        }
        block = (0..<64).map { UInt8($0 | 1) }
        block.withUnsafeBytes { bytes in
            #expect(DifferenceAdmission.lengthWithoutBase(bytes.baseAddress!, length: 64, sparse: true) == 65)
        }
    }

    @Test(
        "an engine stops reading previous content that saves nothing and reads it again when it does",
        arguments: [1, 2])
    func engineThinsAndRestores(encodeThreads: Int) throws {
        var configuration = EngineConfiguration(mode: .fgbi)
        configuration.encodeThreads = encodeThreads
        configuration.parallelEncodeMinimumBlocks = 0
        configuration.choosesEncodeThreadsByTime = false
        let harness = try EngineHarness(configuration: configuration, regions: 1, pagesPerRegion: 64)
        let memory = harness.primary[0]
        let pages = 32
        let blocks = pages * 64
        var random = SeededRandom(seed: 23)
        func rewrite() {
            for word in 0..<(pages * GuestMemory.pageSize / 8) {
                memory.base.storeBytes(of: random.next(), toByteOffset: word * 8, as: UInt64.self)
            }
        }
        func touch(_ value: UInt8) {
            for block in 0..<blocks { memory.base.storeBytes(of: value, toByteOffset: block * 64 + 3, as: UInt8.self) }
        }
        let written = DirtyPageSet(pages: 0..<pages)
        rewrite()
        try harness.step([])
        // Unrelated content over held content: no difference wins, so the next epochs read a sample's only.
        for epoch in 0..<3 {
            rewrite()
            let (_, stats) = try harness.step([written])
            #expect(harness.identical, "rewrite \(epoch): first difference at \(harness.firstDifference)")
            #expect(stats.diffBlocks == 0, "rewrite \(epoch): \(stats.diffBlocks) differences")
        }
        // One byte changed in place in every block: the sample's differences win, and it restores them all.
        touch(0xA5)
        let (_, sampled) = try harness.step([written])
        #expect(harness.identical, "first difference at \(harness.firstDifference)")
        #expect(
            sampled.diffBlocks > 0 && sampled.diffBlocks < blocks / 4,
            "\(sampled.diffBlocks) differences of \(blocks) blocks in the thinned epoch (one in eight expected)")
        touch(0x5A)
        let (_, restored) = try harness.step([written])
        #expect(harness.identical, "first difference at \(harness.firstDifference)")
        #expect(restored.diffBlocks == blocks, "\(restored.diffBlocks) differences of \(blocks) blocks once restored")
    }
}
