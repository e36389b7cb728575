import Testing

@testable import FGBI

/// What an embedder sees when printing a primary's statistics.
@Suite("Replication statistics")
struct ReplicationStatisticsTests {
    @Test("the description is one short line with the pause percentiles, not the pause samples")
    func descriptionIsOneShortLine() {
        var statistics = ReplicationStatistics()
        statistics.epochsCaptured = 745
        statistics.epochsSent = 744
        statistics.lastCapturedEpoch = 822
        statistics.lastCommittedEpoch = 821
        statistics.bytesSent = 182_830_000
        statistics.pagesWritten = 485_928
        statistics.blocksSent = 6_000_000
        statistics.sharedHits = 586_354
        statistics.sendPath = "sendmsg"
        statistics.encrypted = true
        statistics.metadataBytes = 270_565_536
        for epoch in 0..<1000 { statistics.recordPause(milliseconds: epoch == 999 ? 40 : 1.25) }
        let text = statistics.description
        #expect(!text.contains("\n"))
        #expect(text.count < 400, "\(text.count) characters: \(text)")
        #expect(text.contains("epochs 745 captured, 744 sent, committed 821 (lag 1)"), "\(text)")
        #expect(text.contains("182.83 MB sent for 485928 pages (6000000 blocks, 586354 shared)"), "\(text)")
        #expect(text.contains("pause p50 1.25 ms, p99 1.25 ms over the last 1000 epochs"), "\(text)")
        #expect(text.contains("send path sendmsg, encrypted"), "\(text)")
        #expect(text.contains("metadata 270.57 MB"), "\(text)")
        #expect("\(statistics)" == text)
    }

    @Test func aFreshPrimarysStatisticsSayNothingIsCommitted() {
        let text = ReplicationStatistics().description
        #expect(text.contains("committed none (lag 0)"), "\(text)")
        #expect(!text.contains("pause"), "no pauses yet: \(text)")
    }
}
