import CSupport
import Testing

@testable import FGBI

/// A corrupted, truncated, replayed or hostile delta is refused whole with a clear error, and the replica
/// stays exactly at the previous epoch.
@Suite("Delta rejection")
struct DeltaRejectionTests {
    /// A harness at epoch 0 with some content, the next epoch's valid delta, and the replica's bytes before it.
    func prepared(mode: ReplicationMode = .fgbi) throws -> (EngineHarness, [UInt8], [[UInt8]]) {
        let harness = try EngineHarness(configuration: EngineConfiguration(mode: mode), regions: 2, pagesPerRegion: 16)
        var mutator = Mutator(regions: harness.primary, blockSize: 64, seed: 77)
        for _ in 0..<100 { mutator.act() }
        _ = mutator.takeDirty()
        try harness.step([])
        for _ in 0..<40 { mutator.act() }
        try harness.engine.capture(mutator.takeDirty(), into: harness.capture)
        let delta = try harness.engine.encode(harness.capture).delta
        return (harness, delta, snapshot(harness))
    }

    func snapshot(_ harness: EngineHarness) -> [[UInt8]] {
        harness.backup.map { Array(UnsafeRawBufferPointer(start: $0.base, count: $0.length)) }
    }

    func expectRejected(_ harness: EngineHarness, _ delta: [UInt8], before: [[UInt8]], _ comment: Comment) {
        #expect(throws: DeltaError.self, comment) { try harness.replica.apply(delta) }
        #expect(harness.replica.lastEpoch == 0, comment)
        let unchanged = snapshot(harness) == before
        #expect(unchanged, "replica changed by a refused delta: \(comment)")
    }

    @Test(arguments: ReplicationMode.allCases)
    func everyFlippedByteIsRejected(mode: ReplicationMode) throws {
        let (harness, delta, before) = try prepared(mode: mode)
        var random = SeededRandom(seed: 3)
        let positions = Set(
            (0..<200).map { _ in Int(random.next() % UInt64(delta.count)) } + [0, 5, 20, delta.count - 1])
        for position in positions {
            var corrupted = delta
            corrupted[position] ^= UInt8(1 + random.next() % 255)
            expectRejected(harness, corrupted, before: before, "byte \(position) of \(delta.count) flipped")
        }
        try harness.replica.apply(delta)
        #expect(harness.identical)
    }

    @Test func everyTruncationIsRejected() throws {
        let (harness, delta, before) = try prepared()
        for length in Set([0, 1, 4, 47, 48, 55, 56, delta.count / 2, delta.count - 9, delta.count - 1]) {
            expectRejected(harness, Array(delta.prefix(length)), before: before, "truncated to \(length) bytes")
        }
        var extended = delta
        extended.append(0)
        expectRejected(harness, extended, before: before, "one byte appended")
        try harness.replica.apply(delta)
        #expect(harness.identical)
    }

    @Test func replayedAndSkippedEpochsAreRejected() throws {
        let (harness, delta, _) = try prepared()
        try harness.replica.apply(delta)
        #expect(throws: DeltaError.epochOutOfOrder(expected: 2, got: 1)) { try harness.replica.apply(delta) }
    }

    @Test func deltasForOtherGeometryAreRejected() throws {
        let (_, delta, _) = try prepared()
        let other = Replica(regions: [try GuestMemory.anonymous(length: 16 * 4096)], geometry: try BlockGeometry())
        #expect(throws: DeltaError.self) { try other.apply(delta) }
        let coarse = Replica(
            regions: try (0..<2).map { _ in try GuestMemory.anonymous(length: 16 * 4096) },
            geometry: try BlockGeometry(blockSize: 128))
        #expect(throws: DeltaError.self) { try coarse.apply(delta) }
    }

    /// Bodies with a valid checksum that lie: each must be refused by the decoder's own checks.
    @Test(
        arguments: [
            ("copy from a block past the region", [0, 0, 3, 1, 0, 3, 0, 200]),
            ("copy from a region that does not exist", [0, 0, 3, 1, 0, 3, 9, 0]),
            ("copy of a later block of this epoch", [0, 0, 3, 1, 0, 4, 0]),
            ("page past the region", [0, 16, 0]),
            ("region past the last", [2, 0, 0]),
            ("unknown record kind", [0, 0, 9]),
            ("unknown block operation", [0, 0, 3, 1, 0, 7]),
            ("block index past the page", [0, 0, 3, 1, 64, 2]),
            ("zero blocks in a record", [0, 0, 3, 0]),
            ("difference running past the block", [0, 0, 3, 1, 0, 1, 3, 60, 10, 1]),
            ("truncated literal", [0, 0, 3, 1, 0, 0, 1, 2, 3]),
            ("second record's page gap past the region", [0, 3, 2, 0, 12, 2]),
            ("trailing garbage", [0, 0, 2, 42]),
        ] as [(String, [UInt8])])
    func hostileBodiesAreRejected(name: String, body: [UInt8]) throws {
        let (harness, _, before) = try prepared()
        let records = name.hasPrefix("second record") ? 2 : 1
        let assembler = DeltaAssembler(
            mode: .fgbi, compression: .lz4, geometry: harness.engine.geometry, regionCount: 2)
        var output = ByteWriter()
        _ = try body.withUnsafeBytes { try assembler.assemble(epoch: 1, records: records, body: $0, into: &output) }
        expectRejected(harness, output.array, before: before, "\(name)")
    }

    @Test func oversizedBodyLengthIsRejectedBeforeAllocating() throws {
        let (harness, _, before) = try prepared()
        let assembler = DeltaAssembler(
            mode: .fgbi, compression: .none, geometry: harness.engine.geometry, regionCount: 2)
        var output = ByteWriter()
        _ = try [UInt8]([0, 0, 2]).withUnsafeBytes {
            try assembler.assemble(epoch: 1, records: 1, body: $0, into: &output)
        }
        output.patch(UInt64(1) << 40, at: 32)
        // Recompute the checksum so only the length lies.
        var bytes = Array(output.array.dropLast(8))
        let checksum = bytes.withUnsafeBytes { CSupport_xxh3_64($0.baseAddress, $0.count) }
        withUnsafeBytes(of: checksum.littleEndian) { bytes.append(contentsOf: $0) }
        expectRejected(harness, bytes, before: before, "body length 2^40")
    }
}
