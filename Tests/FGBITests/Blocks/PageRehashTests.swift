import CSupport
import Testing

@testable import FGBI

/// The page rehash (`CSupport_rehash_page`), which hashes 64-byte blocks eight at a time with AVX-512 where the
/// CPU has it, must give exactly XXH3-64's values (the block tables, the zero-block hash and the backup's
/// checks all assume them), and report the changed blocks and previous hashes right.
@Suite("Page rehash")
struct PageRehashTests {
    /// A page of one kind: random bytes, zeros, all ones (the products' carries at their largest), words of
    /// small values, or a mix of those by block.
    private static func page(kind: Int, random: inout SeededRandom) -> [UInt8] {
        (0..<(4096 / 8)).flatMap { word -> [UInt8] in
            let value: UInt64
            switch kind == 4 ? (word / 8) % 4 : kind {
            case 0: value = random.next()
            case 1: value = 0
            case 2: value = ~0
            default: value = random.next() >> 28
            }
            return withUnsafeBytes(of: value.littleEndian) { Array($0) }
        }
    }

    @Test(
        "a page's blocks get XXH3-64's values, the old ones and the changed ones", arguments: [64, 128, 4096],
        [false, true])
    func rehashGivesXXH3(blockSize: Int, portable: Bool) throws {
        let was = CSupport_block_hash_select_portable(portable ? 1 : 0)
        defer { _ = CSupport_block_hash_select_portable(was) }
        let blocks = 4096 / blockSize
        var random = SeededRandom(seed: 4242 &+ UInt64(blockSize))
        for trial in 0..<200 {
            let bytes = Self.page(kind: trial % 5, random: &random)
            let expected = (0..<blocks).map { block in
                bytes.withUnsafeBytes { CSupport_xxh3_64($0.baseAddress! + block * blockSize, blockSize) }
            }
            // Old hashes: some blocks already hold the new content's hash, the others something else.
            let old = (0..<blocks).map { block in random.next() % 3 == 0 ? expected[block] : random.next() }
            var hashes = old
            var previous = [UInt64](repeating: 0, count: blocks)
            let changed = bytes.withUnsafeBytes { page in
                CSupport_rehash_page(page.baseAddress!, blockSize, blocks, &hashes, &previous)
            }
            try #require(
                hashes == expected, "trial \(trial), kind \(trial % 5), \(blockSize)-byte blocks, portable \(portable)")
            #expect(previous == old)
            let expectedChanged = (0..<blocks).reduce(UInt64(0)) {
                $0 | (old[$1] != expected[$1] ? 1 << UInt64($1) : 0)
            }
            #expect(changed == expectedChanged)
        }
    }

    @Test(
        "the mask of differing hashes, against another page's or one value, on every path",
        arguments: [1, 8, 16, 63, 64], [false, true])
    func mismatchMask(count: Int, portable: Bool) {
        let was = CSupport_block_hash_select_portable(portable ? 1 : 0)
        defer { _ = CSupport_block_hash_select_portable(was) }
        var random = SeededRandom(seed: 77 &+ UInt64(count))
        for trial in 0..<100 {
            let value = random.next()
            let a = (0..<count).map { _ in random.next() % 3 == 0 ? value : random.next() % 4 }
            let b = (0..<count).map { block in random.next() % 2 == 0 ? a[block] : random.next() % 4 }
            let expected = (0..<count).reduce(UInt64(0)) { $0 | (a[$1] != b[$1] ? 1 << UInt64($1) : 0) }
            let expectedValue = (0..<count).reduce(UInt64(0)) { $0 | (a[$1] != value ? 1 << UInt64($1) : 0) }
            #expect(CSupport_hash_mismatch_mask(a, b, 0, count) == expected, "trial \(trial)")
            #expect(CSupport_hash_mismatch_mask(a, nil, value, count) == expectedValue, "trial \(trial)")
        }
    }
}
