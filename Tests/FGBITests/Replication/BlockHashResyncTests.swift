import FGBIBench
import Foundation
import Testing

@testable import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// A resynchronisation by block hashes: a backup holding an older version of the memory (one word written
/// since in each of 2,000 pages) is asked for the block hashes of the pages that differ and receives only the
/// blocks that differ; without block hashes those pages go whole. Both end byte-equal.
@Suite("Resynchronising by block hashes", .serialized)
struct BlockHashResyncTests {
    typealias Served = LoopbackReplicationTests.Served

    /// Resynchronises a backup holding `memory` as it was before `pages` one-word writes; returns the
    /// synchronisation report.
    func resynchronise(fetchingBlockHashes: Bool, pages: Int, wholePages: Bool = false) throws -> SynchronisationReport
    {
        let length = 16 << 20
        let primaryMemory = try GuestMemory.anonymous(length: length)
        let backupMemory = try GuestMemory.anonymous(length: length)
        try primaryMemory.prefault()
        SyntheticWorkload.fillInitial(primaryMemory, seed: 3)
        backupMemory.base.copyMemory(from: primaryMemory.base, byteCount: length)
        if wholePages {
            // Every word of the first `pages` pages rewritten: every block differs.
            for word in 0..<(pages * GuestMemory.pageSize / 8) {
                primaryMemory.base.storeBytes(of: UInt64(word) &* 0x9E37_79B9, toByteOffset: word * 8, as: UInt64.self)
            }
        } else {
            TakeoverTests.scribble(primaryMemory, seed: 9, pages: pages)
        }
        let backup = try Backup(
            regions: [backupMemory], configuration: TakeoverTests.backupConfiguration(), holding: .committedEpoch(40))
        let served = Served(backup)
        var configuration = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backup.port))
        configuration.continuesAfterEpoch = 40
        configuration.precopy.fetchesBlockHashes = fetchingBlockHashes
        let primary = try Primary(regions: [primaryMemory], configuration: configuration)
        try primary.start()
        let report = try #require(primary.statistics.lastSynchronisation)
        #expect(primary.waitForCommit(report.epoch, timeout: .seconds(60)))
        let last = try #require(try primary.stop())
        #expect(try served.outcome() == .primaryFinished(lastEpoch: last))
        #expect(
            memcmp(primaryMemory.base, backupMemory.base, length) == 0,
            "the backup differs from the primary at epoch \(last)")
        return try #require(primary.statistics.lastSynchronisation)
    }

    @Test func onlyTheBlocksThatDifferAreSent() throws {
        let pages = 2_000
        let byBlocks = try resynchronise(fetchingBlockHashes: true, pages: pages)
        let byPages = try resynchronise(fetchingBlockHashes: false, pages: pages)
        // 2,000 random pages of 4,096, some drawn twice: about 1,580 distinct ones differ.
        #expect((1_400...pages).contains(byBlocks.blockHashPages), "\(byBlocks)")
        print(
            """
            block hash resync of \(byBlocks.blockHashPages) differing pages: first pass \
            \(byBlocks.firstPassBytes) bytes plus\u{20}
            """
                + """
                \(byBlocks.blockHashBytes) of block hashes from the backup, against \(byPages.firstPassBytes) by \
                pages
                """
        )
        #expect(byBlocks.blockHashBytes >= byBlocks.blockHashPages * 64 * 8, "8 bytes per block of each page asked for")
        #expect(byPages.blockHashPages == 0)
        #expect(byBlocks.pagesAlreadyHeld == byPages.pagesAlreadyHeld)
        // One 64-byte block per differing page, against a page each.
        #expect(
            byBlocks.firstPassBytes * 8 < byPages.firstPassBytes,
            "first pass: \(byBlocks.firstPassBytes) bytes by blocks, \(byPages.firstPassBytes) by pages")
        #expect(
            byBlocks.firstPassBytes < byBlocks.blockHashPages * 200,
            "\(byBlocks.firstPassBytes) bytes for \(byBlocks.blockHashPages) blocks")
    }

    @Test func pagesRewrittenWholeGoWholeAfterTheSample() throws {
        let report = try resynchronise(fetchingBlockHashes: true, pages: 500, wholePages: true)
        #expect(report.blockHashPages == Primary.blockHashSamplePages, "only the sample was asked for: \(report)")
        let runs = [
            BlockHashExchange.Run(region: 0, start: 0, count: 40), .init(region: 0, start: 50, count: 40),
            .init(region: 1, start: 0, count: 9),
        ]
        let (first, rest) = Primary.split(runs, afterPages: 64)
        #expect(first == [.init(region: 0, start: 0, count: 40), .init(region: 0, start: 50, count: 24)])
        #expect(rest == [.init(region: 0, start: 74, count: 16), .init(region: 1, start: 0, count: 9)])
    }

    @Test func requestsAndAnswersAreChecked() throws {
        let runs = [BlockHashExchange.Run(region: 0, start: 2, count: 3), .init(region: 1, start: 0, count: 1)]
        let payloads = BlockHashExchange.requestPayloads(runs)
        #expect(try BlockHashExchange.decodeRequest(payloads[0], pageCounts: [8, 4], after: nil) == runs)
        #expect(throws: WireError.self, "past the region") {
            try BlockHashExchange.decodeRequest(payloads[0], pageCounts: [4, 4], after: nil)
        }
        #expect(throws: WireError.self, "overlapping an earlier run") {
            try BlockHashExchange.decodeRequest(
                payloads[0], pageCounts: [8, 4], after: .init(region: 0, start: 0, count: 3))
        }
        #expect(throws: WireError.self, "cut short") {
            try BlockHashExchange.decodeRequest(Array(payloads[0].dropLast()), pageCounts: [8, 4], after: nil)
        }
        let memory = try GuestMemory.anonymous(length: 8 * GuestMemory.pageSize)
        let geometry = try BlockGeometry(blockSize: 64)
        let answers = BlockHashExchange.answerPayloads([runs[0]], regions: [memory], geometry: geometry)
        let (count, hashes) = try BlockHashExchange.decodeAnswer(
            answers[0], expecting: runs[0], from: 2, blocksPerPage: 64)
        #expect(count == 3 && hashes.count == 3 * 64 && hashes.allSatisfy { $0 == geometry.zeroBlockHash })
        #expect(throws: WireError.self, "another page than expected") {
            try BlockHashExchange.decodeAnswer(answers[0], expecting: runs[0], from: 3, blocksPerPage: 64)
        }
        #expect(throws: WireError.self, "a hash missing") {
            try BlockHashExchange.decodeAnswer(
                Array(answers[0].dropLast(8)), expecting: runs[0], from: 2, blocksPerPage: 64)
        }
    }
}
