import CSupport
import Testing

@testable import FGBI

/// The general compressor spent only where it pays (``DeltaAssembler``): a small body is its own sample, and
/// a decision made for small bodies is kept apart from one made for large bodies.
@Suite("Delta assembler")
struct DeltaAssemblerTests {
    /// Assembles `body` as epoch `epoch`; returns the outcome and the header the backup would read.
    private static func assemble(
        _ assembler: DeltaAssembler, _ body: [UInt8], epoch: Int
    ) throws -> (outcome: DeltaAssembler.Outcome, header: DeltaHeader) {
        var delta = ByteWriter()
        var scratch = ByteWriter()
        DeltaAssembler.start(&delta)
        body.withUnsafeBytes { delta.raw($0.baseAddress!, count: $0.count) }
        let outcome = try assembler.finish(epoch: UInt64(epoch), records: 1, delta: &delta, scratch: &scratch)
        let header = try DeltaHeader.read(UnsafeRawBufferPointer(delta.bytes))
        #expect(header.bodyLength == body.count)
        return (outcome, header)
    }

    private static func assembler(minimumSaving: Double = 0.10) throws -> DeltaAssembler {
        DeltaAssembler(
            mode: .fgbi, compression: .lz4, geometry: try BlockGeometry(blockSize: 64), regionCount: 1,
            minimumSaving: minimumSaving)
    }

    /// `count` bytes, the first `zeros` of them zero and the rest random: LZ4 saves about `zeros` bytes.
    private static func body(count: Int, zeros: Int, seed: UInt64) -> [UInt8] {
        var random = SeededRandom(seed: seed)
        return (0..<count).map { $0 < zeros ? 0 : UInt8(truncatingIfNeeded: random.next()) }
    }

    /// A 100 KiB body that LZ4 shrinks by about 5%: the trial's output is sent (it is paid for), then the
    /// next 15 bodies are stored as they are with no compressor run, and the 17th is a trial again.
    @Test func aSmallBodyIsItsOwnSample() throws {
        let assembler = try Self.assembler()
        let body = Self.body(count: 100 << 10, zeros: 5 << 10, seed: 5)
        let first = try Self.assemble(assembler, body, epoch: 0)
        #expect(!first.outcome.storedRaw, "a trial that saves anything is sent compressed")
        #expect(first.header.storedLength < body.count)
        #expect(first.header.compressionCode == Compression.lz4.wireCode)
        #expect(assembler.samples == 1)
        for epoch in 1..<16 {
            let next = try Self.assemble(assembler, body, epoch: epoch)
            #expect(next.outcome.storedRaw, "epoch \(epoch): 5% is under the tenth asked")
            #expect(next.header.compressionCode == Compression.none.wireCode)
            #expect(next.header.storedLength == body.count)
        }
        #expect(assembler.samples == 1, "the decision holds for 16 epochs")
        _ = try Self.assemble(assembler, body, epoch: 16)
        #expect(assembler.samples == 2)
    }

    /// Random bytes, which LZ4 cannot shrink: even the trial is stored as it is.
    @Test func anIncompressibleSmallBodyIsStoredAsItIs() throws {
        let assembler = try Self.assembler()
        let outcome = try Self.assemble(assembler, Self.body(count: 64 << 10, zeros: 0, seed: 6), epoch: 0)
        #expect(outcome.outcome.storedRaw)
        #expect(outcome.header.compressionCode == Compression.none.wireCode)
    }

    /// A small body that compresses well is compressed, and so are the next.
    @Test func aCompressibleSmallBodyIsCompressed() throws {
        let assembler = try Self.assembler()
        let body = Self.body(count: 100 << 10, zeros: 60 << 10, seed: 7)
        for epoch in 0..<3 {
            let outcome = try Self.assemble(assembler, body, epoch: epoch)
            #expect(!outcome.outcome.storedRaw)
            #expect(outcome.header.storedLength < body.count / 2)
        }
    }

    /// A large random body (a pre-copy round) is stored as it is by its sample; that decision does not hold
    /// for the small compressible bodies after it, which are compressed at once.
    @Test func aLargeBodysDecisionDoesNotHoldForSmallOnes() throws {
        let assembler = try Self.assembler()
        let large = try Self.assemble(assembler, Self.body(count: 2 << 20, zeros: 0, seed: 8), epoch: 0)
        #expect(large.outcome.storedRaw)
        let small = try Self.assemble(assembler, Self.body(count: 100 << 10, zeros: 60 << 10, seed: 9), epoch: 1)
        #expect(!small.outcome.storedRaw)
        #expect(small.header.compressionCode == Compression.lz4.wireCode)
    }

    /// Large incompressible bodies of 2 MiB: each sample that confirms the decision (store) makes it last twice as
    /// long, up to four times the base life: samples at bodies 0, 3, 9 and 21 of 30, where an unstretched
    /// cadence would take one every third (10).
    @Test func aLargeBodysConfirmedDecisionLastsLonger() throws {
        let assembler = try Self.assembler()
        let body = Self.body(count: 2 << 20, zeros: 0, seed: 11)
        var sampledAt: [Int] = []
        for epoch in 0..<30 {
            let before = assembler.samples
            #expect(try Self.assemble(assembler, body, epoch: epoch).outcome.storedRaw)
            if assembler.samples > before { sampledAt.append(epoch) }
        }
        #expect(sampledAt == [0, 3, 9, 21])
    }

    /// With no minimum saving every body is compressed, even one that grows.
    @Test func withNoMinimumSavingEveryBodyIsCompressed() throws {
        let assembler = try Self.assembler(minimumSaving: 0)
        let body = Self.body(count: 64 << 10, zeros: 0, seed: 10)
        let outcome = try Self.assemble(assembler, body, epoch: 0)
        #expect(!outcome.outcome.storedRaw)
        #expect(outcome.header.compressionCode == Compression.lz4.wireCode)
        #expect(outcome.header.storedLength > body.count, "random bytes grow under LZ4")
        #expect(assembler.samples == 0)
    }
}
