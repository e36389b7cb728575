import Testing

@testable import FGBI

/// The page-key index the page-copy finder looks sources up in: entries of pages whose key has changed since
/// (stale) give way before those of pages left alone, and never answer a lookup.
@Suite("Page key index")
struct PageKeyIndexTests {
    /// 64 pages: a table of 16 buckets of 8, so keys whose low 4 bits are zero share bucket 0.
    static func index() -> PageKeyIndex { PageKeyIndex(regionPageCounts: [64]) }

    /// Distinct keys of bucket 0, differing in the high bits an entry keeps.
    static func key(_ n: Int) -> UInt64 { UInt64(n + 1) << 40 }

    @Test func pagesLeftAloneStayFoundWhileOthersAreRewritten() {
        let index = Self.index()
        for page in 0..<4 { index.record(region: 0, page: page, key: Self.key(page)) }
        // Forty other pages each pass through bucket 0 and are rewritten at once with a key of bucket 1: their
        // entries in bucket 0 go stale, and would push out the entries of the pages left alone.
        for page in 8..<48 {
            index.record(region: 0, page: page, key: Self.key(100 + page))
            index.record(region: 0, page: page, key: Self.key(200 + page) | 1)
        }
        for page in 0..<4 {
            let found = index.candidate(key: Self.key(page))
            #expect(found?.region == 0 && found?.page == page, "page \(page) left alone: \(String(describing: found))")
        }
        for page in 40..<48 { #expect(index.candidate(key: Self.key(200 + page) | 1)?.page == page, "page \(page)") }
    }

    @Test func aStaleEntryNeverLeads() {
        let index = Self.index()
        index.record(region: 0, page: 3, key: Self.key(1))
        #expect(index.lead(key: Self.key(1)) == 3)
        index.record(region: 0, page: 3, key: Self.key(2) | 5) // another bucket
        #expect(index.lead(key: Self.key(1)) == nil)
        #expect(index.candidate(key: Self.key(1)) == nil)
        #expect(index.lead(key: Self.key(2) | 5) == 3)
        index.forget(region: 0, page: 3)
        #expect(index.lead(key: Self.key(2) | 5) == nil)
    }

    @Test func aCapturedPageIsNoAnswer() {
        let index = Self.index()
        index.record(region: 0, page: 9, key: Self.key(7))
        index.setCaptured(region: 0, page: 9, true)
        #expect(index.lead(key: Self.key(7)) == nil)
        index.setCaptured(region: 0, page: 9, false)
        #expect(index.lead(key: Self.key(7)) == 9)
    }
}
