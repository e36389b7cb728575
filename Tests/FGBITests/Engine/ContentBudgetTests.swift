import Testing

@testable import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// The content index's budget: an engine whose budget would hold more copies than the index's entries can
/// name is refused when it is made, with the numbers, rather than trapping in the index.
@Suite("Content budget")
struct ContentBudgetTests {
    @Test("an engine refuses a content budget over the index's copies")
    func budgetOverTheIndexIsRefused() throws {
        // Address space only: reserved, never touched, so no memory is committed for the 33 GiB.
        let length = 33 << 30
        let reservation = mmap(nil, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let reservation, reservation != MAP_FAILED else {
            Issue.record("could not reserve \(length) bytes of address space: errno \(errno)")
            return
        }
        defer { munmap(reservation, length) }
        let region = try GuestMemory.adopting(address: reservation, length: length)
        var configuration = EngineConfiguration()
        configuration.contentBudgetBytes = length
        do {
            _ = try PrimaryEngine(regions: [region], configuration: configuration)
            Issue.record("a budget of \(length / 64) copies was taken")
        } catch let error as FGBIError {
            #expect("\(error)".contains("\(length / 64) copies"), "\(error)")
            #expect("\(error)".contains("\(ContentIndex.maximumCopies)"), "\(error)")
        }
    }

    /// One number sets the memory of both caches, so modes compared side by side (`--cache-mib`) get the same.
    @Test func oneCacheBudgetSetsBothModes() {
        var configuration = EngineConfiguration()
        #expect(configuration.contentBudgetBytes == 64 << 20)
        #expect(configuration.pageCacheBudgetBytes == 64 << 20)
        configuration.setCacheBudget(bytes: 16 << 20)
        #expect(configuration.contentBudgetBytes == 16 << 20)
        #expect(configuration.pageCacheBudgetBytes == 16 << 20)
    }
}
