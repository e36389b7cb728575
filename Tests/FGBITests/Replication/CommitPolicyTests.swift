import Testing

@testable import FGBI

/// The pieces of several backups that need no network: the commit policy's count, the backlog that keeps
/// frames for backups behind, the handshake's stream, and the summary several backups share.
@Suite("Commit policy and backlog")
struct CommitPolicyTests {
    @Test func quorumCountsTheKthNewestAcknowledgement() {
        #expect(CommitPolicy.all.committed([5, 7, 6]) == 5)
        #expect(CommitPolicy.all.committed([5, nil, 6]) == nil)
        #expect(CommitPolicy.quorum(2).committed([5, nil, 6]) == 5)
        #expect(CommitPolicy.quorum(2).committed([9, 7, 6]) == 7)
        #expect(CommitPolicy.quorum(1).committed([nil, 3, nil]) == 3)
        #expect(CommitPolicy.quorum(3).committed([nil, 3, 4]) == nil)
    }

    @Test func policiesParseAndCheckTheirCount() throws {
        #expect(CommitPolicy("all") == .all)
        #expect(CommitPolicy("quorum:2") == .quorum(2))
        #expect(CommitPolicy("quorum:x") == nil)
        #expect(CommitPolicy("most") == nil)
        #expect(CommitPolicy.quorum(2).description == "quorum:2")
        try CommitPolicy.quorum(3).check(backups: 3)
        #expect(throws: FGBIError.self) { try CommitPolicy.quorum(4).check(backups: 3) }
        #expect(throws: FGBIError.self) { try CommitPolicy.quorum(0).check(backups: 3) }
    }

    @Test func commitsOnlyGrowAndReachEveryStream() async {
        let tracker = CommitTracker(policy: .quorum(2), backups: 3)
        let stream = tracker.commits()
        #expect(tracker.acknowledge(4, from: 0) == nil)
        #expect(tracker.acknowledge(3, from: 1) == 3)
        #expect(tracker.acknowledge(2, from: 2) == nil, "an older acknowledgement commits nothing new")
        #expect(tracker.acknowledge(5, from: 1) == 4)
        #expect(tracker.committed == 4)
        tracker.finish()
        var seen: [UInt64] = []
        for await epoch in stream { seen.append(epoch) }
        #expect(seen == [3, 4])
    }

    func payload(_ bytes: Int) -> [UInt8] { [UInt8](repeating: 1, count: bytes) }

    @Test func backupsCatchUpFromKeptFramesAndFallOutBehindDroppedOnes() {
        let backlog = EpochBacklog(backups: 3, required: 2, budgetBytes: 1000)
        for backup in 0..<3 { backlog.attachFromStart(backup) }
        // A pre-copy frame, then epochs 10, 11, 12 of 300 bytes each: all kept.
        #expect(backlog.append(.precopy, epoch: nil, payload: payload(100), shouldStop: { false }).isEmpty)
        for epoch in 10...12 as ClosedRange<UInt64> {
            #expect(backlog.append(.epoch, epoch: epoch, payload: payload(300), shouldStop: { false }).isEmpty)
        }
        // Backups 0 and 1 send everything; backup 2 sends nothing.
        for backup in 0..<2 {
            while let entry = backlog.next(for: backup) { backlog.sent(entry.sequence, by: backup) }
        }
        #expect(backlog.next(for: 2)?.type == .precopy)
        // Epoch 13 exceeds the budget: the oldest frames go, and backup 2, which never sent them, falls out.
        #expect(backlog.append(.epoch, epoch: 13, payload: payload(300), shouldStop: { false }) == [2])
        #expect(backlog.next(for: 2) == nil)
        #expect(backlog.bytesKept <= 1000)
        // A backup holding epoch 12 of this session catches up from 13; one holding 9 cannot.
        #expect(backlog.attach(2, holding: 12))
        #expect(backlog.next(for: 2)?.epoch == 13)
        #expect(!backlog.attach(2, holding: 9))
    }

    @Test func aBackupAsItWasAtTheStartReplaysTheSessionWhileItsFirstFrameIsKept() {
        let backlog = EpochBacklog(backups: 2, required: 1, budgetBytes: 1000)
        for backup in 0..<2 { backlog.attachFromStart(backup) }
        #expect(backlog.append(.precopy, epoch: nil, payload: payload(600), shouldStop: { false }).isEmpty)
        backlog.detach(1)
        #expect(backlog.attachFromFirst(1))
        #expect(backlog.next(for: 1)?.type == .precopy)
        while let entry = backlog.next(for: 0) { backlog.sent(entry.sequence, by: 0) }
        backlog.detach(1)
        // The first frame goes (backup 0 sent it, and one backup is enough): replaying from it is over.
        #expect(backlog.append(.epoch, epoch: 5, payload: payload(600), shouldStop: { false }).isEmpty)
        #expect(!backlog.attachFromFirst(1))
    }

    @Test func theSenderWaitsRatherThanDropAFrameTooFewBackupsSent() {
        let backlog = EpochBacklog(backups: 2, required: 2, budgetBytes: 500)
        for backup in 0..<2 { backlog.attachFromStart(backup) }
        #expect(backlog.append(.epoch, epoch: 1, payload: payload(400), shouldStop: { false }).isEmpty)
        while let entry = backlog.next(for: 0) { backlog.sent(entry.sequence, by: 0) }
        // Backup 1 has not sent epoch 1: under `all` (2 of 2) it may not be dropped, so the append waits and
        // gives up only when told to.
        var asked = 0
        let dropped = backlog.append(.epoch, epoch: 2, payload: payload(400)) {
            asked += 1
            return asked > 3
        }
        #expect(dropped.isEmpty)
        #expect(asked == 4)
        #expect(backlog.next(for: 1)?.epoch == 1, "the frame backup 1 still needs is kept")
    }

    @Test func theStreamTravelsInTheHandshake() throws {
        var hello = Hello(
            mode: .fgbi, wantsAuthentication: true, blockSize: 64, pageSize: 4096, regionLengths: [1 << 20],
            nonce: [UInt8](repeating: 7, count: 32))
        #expect(try Hello(decoding: hello.encoded).stream == nil)
        hello.stream = [UInt8](repeating: 9, count: 16)
        #expect(throws: WireError.self, "a stream comes with its group") { try Hello(decoding: hello.encoded) }
        hello.group = BackupGroup(backups: 3, quorum: 2)
        let decoded = try Hello(decoding: hello.encoded)
        #expect(decoded.stream == hello.stream && decoded.group == hello.group)
        #expect(BackupGroup(backups: 3, quorum: 2).candidatesNeeded == 2)
        #expect(BackupGroup(backups: 3, quorum: 3).candidatesNeeded == 1)
        hello.group = BackupGroup(backups: 3, quorum: 4)
        #expect(throws: WireError.self) { try Hello(decoding: hello.encoded) }
        var welcome = Welcome(
            sessionID: [UInt8](repeating: 1, count: 16), nonce: [UInt8](repeating: 2, count: 32), nextEpoch: 12)
        #expect(try Welcome(decoding: welcome.encoded).heldStream == nil)
        welcome.heldStream = [UInt8](repeating: 3, count: 16)
        #expect(try Welcome(decoding: welcome.encoded) == welcome)
        #expect(throws: WireError.self) { try Welcome(decoding: welcome.encoded + [0]) }
    }

    @Test func pagesBackupsDisagreeOnAreHeldByNone() {
        let a = ReplicaSummary(pageHashes: [[1, 2, 3], [4]])
        let b = ReplicaSummary(pageHashes: [[1, 9, 3], [4]])
        let common = ReplicaSummary.common([a, b])
        #expect(common.disagreed == [[false, true, false], [false]])
        let page = [UInt8](repeating: 0, count: 4096)
        let zero = ReplicaSummary.zeroFilled(pageCounts: [2], pageSize: 4096)
        let baseline = BaselineHashes(summary: ReplicaSummary.common([zero, zero]), pageSize: 4096)
        let mixed = BaselineHashes(
            summary: ReplicaSummary.common([zero, ReplicaSummary(pageHashes: [[zero.pageHashes[0][0], 5]])]),
            pageSize: 4096)
        page.withUnsafeBytes { bytes in
            #expect(baseline.holds(region: 0, page: 1, bytes: bytes.baseAddress!))
            #expect(mixed.holds(region: 0, page: 0, bytes: bytes.baseAddress!))
            #expect(!mixed.holds(region: 0, page: 1, bytes: bytes.baseAddress!), "one backup holds another page there")
        }
    }
}
