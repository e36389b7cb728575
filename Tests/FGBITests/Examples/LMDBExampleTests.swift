import CSupport
import FGBI
import FGBIBench
import FGBIExamples
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The LMDB example: the history, the verifier (which must catch a lost or altered transaction), an
/// in-process replication whose backup copy LMDB opens, and kill -9 of a real primary process at random
/// moments, after which the backup's image must hold every acknowledged transaction.
@Suite("LMDB example", .serialized)
struct LMDBExampleTests {
    static let directory = "/dev/shm"

    /// A scratch directory on tmpfs, removed by the caller.
    static func scratch(_ name: String) throws -> URL {
        let url = URL(fileURLWithPath: directory).appendingPathComponent(
            "fgbi-test-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func historyIsDeterministicAndItsValuesCheckThemselves() throws {
        let a = try KeyValueHistory(seed: 7, keyCount: 1000)
        let b = try KeyValueHistory(seed: 7, keyCount: 1000)
        let c = try KeyValueHistory(seed: 8, keyCount: 1000)
        func operations(_ history: KeyValueHistory, _ number: UInt64) -> [KeyValueHistory.Operation] {
            var list: [KeyValueHistory.Operation] = []
            history.forEachOperation(in: number) { list.append($0) }
            return list
        }
        #expect(operations(a, 5) == operations(b, 5))
        #expect(operations(a, 5) != operations(c, 5))
        #expect(operations(a, 5) != operations(a, 6))
        #expect(operations(a, 1).count == a.writesPerTransaction)
        var deletes = 0
        for number in 1...2000 as ClosedRange<UInt64> {
            for operation in operations(a, number) {
                switch operation {
                case .put(let key, let version): #expect(key < 1000 && version == number)
                case .delete(let key):
                    deletes += 1
                    #expect(key < 1000)
                }
            }
        }
        #expect(deletes > 800 && deletes < 2400, "about one write in ten deletes (\(deletes) of 16000)")
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: KeyValueHistory.maximumValueLength, alignment: 8)
        defer { buffer.deallocate() }
        var lengths = Set<Int>()
        for key in 0..<200 as Range<UInt64> {
            let length = KeyValueHistory.writeValue(key: key, version: 3, into: buffer)
            #expect((16...KeyValueHistory.maximumValueLength).contains(length))
            #expect(buffer.load(fromByteOffset: 0, as: UInt64.self) == key)
            lengths.insert(length)
        }
        #expect(lengths.count > 50, "value lengths vary")
        #expect(throws: FGBIError.self) { _ = try KeyValueHistory(seed: 1, keyCount: 5) }
    }

    @Test func verifierAcceptsTheHistoryAndCatchesLossAndDamage() throws {
        let scratch = try Self.scratch("verify")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let path = scratch.appendingPathComponent("data.mdb").path
        let history = try KeyValueHistory(seed: 3, keyCount: 2000)
        let mapBytes = 8 << 20
        do {
            let environment = try LMDBEnvironment(path: path, mapBytes: mapBytes, options: [.writeMap, .noSync])
            let writer = KeyValueWriter(environment: environment, history: history, gate: nil)
            for _ in 0..<500 { try writer.commitNext() }
        }
        let report = try LMDBReplicaVerifier.compare(path: path, mapBytes: mapBytes, history: history)
        #expect(report.transactions == 500)
        #expect(report.keys == history.state(after: 500).count)

        // Acknowledged beyond what the database holds: a lost transaction.
        #expect(throws: LMDBReplicaVerifier.Mismatch.self) {
            _ = try LMDBReplicaVerifier.verify(path: path, mapBytes: mapBytes, history: history, acknowledged: 501)
        }
        // Another history (as if transactions were replayed wrongly): values and keys differ.
        #expect(throws: LMDBReplicaVerifier.Mismatch.self) {
            _ = try LMDBReplicaVerifier.compare(
                path: path, mapBytes: mapBytes, history: try KeyValueHistory(seed: 4, keyCount: 2000))
        }
        // One value byte changed in the file: found.
        let damaged = scratch.appendingPathComponent("damaged.mdb").path
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: KeyValueHistory.maximumValueLength, alignment: 8)
        defer { buffer.deallocate() }
        let (key, version) = try #require(history.state(after: 500).first)
        let length = KeyValueHistory.writeValue(key: key, version: version, into: buffer)
        let value = Data(UnsafeRawBufferPointer(rebasing: buffer[0..<length]))
        // Every copy (LMDB copies pages on write, so freed pages may hold an old copy too).
        var copies = 0
        var searchFrom = bytes.startIndex
        while let at = bytes.range(of: value, in: searchFrom..<bytes.endIndex) {
            bytes[at.lowerBound + length - 1] ^= 0x40
            copies += 1
            searchFrom = at.upperBound
        }
        #expect(copies >= 1, "the value is stored in the file as written")
        try bytes.write(to: URL(fileURLWithPath: damaged))
        #expect(throws: LMDBReplicaVerifier.Mismatch.self) {
            _ = try LMDBReplicaVerifier.compare(path: damaged, mapBytes: mapBytes, history: history)
        }
        // Taking over: a transaction commits on the verified copy.
        let taken = try LMDBReplicaVerifier.verify(path: path, mapBytes: mapBytes, history: history, acknowledged: 500)
        #expect(taken.transactions == 500)
        #expect(try LMDBReplicaVerifier.compare(path: path, mapBytes: mapBytes, history: history).transactions == 501)
    }

    /// LMDB's map is a shared file mapping: uffd-async tracks it where this kernel write-protects shmem, scan
    /// otherwise.
    @Test func replicatedDatabaseOpensOnTheBackupWithEveryAcknowledgedTransaction() throws {
        let scratch = try Self.scratch("replicate")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let history = try KeyValueHistory(seed: 11, keyCount: 5000)
        let mapBytes = 16 << 20
        let region = try GuestMemory.anonymous(length: mapBytes)
        let backup = try Backup(
            regions: [region], geometry: try BlockGeometry(),
            configuration: BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0)))
        let serving = BackupThread(backup)
        var configuration = PrimaryConfiguration(backup: Endpoint(host: "127.0.0.1", port: backup.port))
        configuration.tracker = Kernel.supportsAsyncWP ? .uffdAsync : .scan
        configuration.epochInterval = .milliseconds(20)
        let store = try ReplicatedKeyValueStore(
            path: scratch.appendingPathComponent("data.mdb").path, mapBytes: mapBytes,
            history: history, configuration: configuration)
        let released = AtomicCounter()
        let statistics = try store.run(until: { $0.seconds >= 0.6 }, acknowledged: { released.raise(to: $0) })
        #expect(statistics.transactions > 100, "the writer ran (\(statistics.transactions) transactions)")
        #expect(statistics.acknowledged == statistics.transactions, "the final epoch releases every transaction")
        #expect(released.value == statistics.transactions)
        #expect(!statistics.acknowledgementMilliseconds.isEmpty)
        #expect((statistics.replication?.epochsSent ?? 0) >= 3)
        #expect(try serving.result(within: .seconds(120)) == .primaryFinished(lastEpoch: backup.lastEpoch))
        #expect(memcmp(region.base, store.memory.base, mapBytes) == 0, "the backup's map equals the primary's")

        let image = scratch.appendingPathComponent("replica.mdb").path
        try ReplicaImage.write([region], geometry: try BlockGeometry(), epoch: backup.lastEpoch, to: image)
        let report = try LMDBReplicaVerifier.verify(
            path: image, mapBytes: mapBytes, history: history, acknowledged: statistics.acknowledged)
        #expect(report.transactions == statistics.transactions)
    }

    /// A paced writer commits its load phase at full speed, then never runs ahead of its rate (it sleeps
    /// until each transaction is due; sleeps do not end early).
    @Test func pacedWriterLoadsAtFullSpeedThenHoldsItsRate() throws {
        let pace = try TransactionPace(perSecond: 400, loadTransactions: 300)
        #expect(pace.due(afterPacing: 0) == 0)
        #expect(pace.due(afterPacing: 1) == 2_500_000)
        #expect(pace.due(afterPacing: 401) == 1_002_500_000)
        #expect(pace.due(afterPacing: 1_000_000_000_001) == 2_500_000_000_002_500_000)
        #expect(pace.due(afterPacing: UInt64(1) << 62) == .max, "past a clock's reach it saturates")
        #expect(throws: FGBIError.self) { _ = try TransactionPace(perSecond: 0) }

        let scratch = try Self.scratch("paced")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let store = try ReplicatedKeyValueStore(
            path: scratch.appendingPathComponent("data.mdb").path, mapBytes: 16 << 20,
            history: try KeyValueHistory(seed: 3, keyCount: 5000), configuration: nil)
        let statistics = try store.run(until: { $0.seconds >= 0.5 }, pace: pace)
        let ceiling = Double(pace.loadTransactions) + Double(pace.perSecond) * statistics.writingSeconds + 2
        #expect(statistics.transactions > pace.loadTransactions, "the load phase ran and pacing began")
        #expect(
            Double(statistics.transactions) <= ceiling,
            "\(statistics.transactions) transactions in \(statistics.writingSeconds) s: ahead of 400/s after 300")
    }

    /// kill -9 of the primary process at a random moment (set-up, synchronisation, mid-epoch), 20 times.
    @Test(
        .requiring(
            .uffdAsync, .memfd(name: ""),
            because:
                "the drill's `fgbi example lmdb` primary tracks its shared map with uffd-async (it has no --tracker)"),
        .enabled(if: CommandRunner.executable != nil, "the fgbi executable was not built beside the tests"))
    func killedPrimaryLosesNoAcknowledgedTransaction() throws {
        let rounds = ProcessInfo.processInfo.environment["FGBI_LMDB_KILLS"].flatMap(Int.init) ?? 20
        let executable = try #require(CommandRunner.executable)
        var random = SystemRandomNumberGenerator()
        var withEpoch = 0
        var acknowledged: UInt64 = 0
        for round in 0..<rounds {
            let seed = UInt64.random(in: 1...UInt64(UInt32.max), using: &random)
            var settings = LMDBFailoverDrill.Settings(history: try KeyValueHistory(seed: seed, keyCount: 20_000))
            settings.mapBytes = 32 << 20
            settings.epochMilliseconds = 25
            settings.primaryTimeout = .milliseconds(300)
            // Mostly once replication runs (counted from the backup's first epoch, so a slow start cannot turn
            // them into set-up kills), one in five from the process's start: during set-up or synchronisation.
            let duringSetUp = round % 5 == 0
            let killAfter =
                duringSetUp ? Int.random(in: 0...250, using: &random) : Int.random(in: 0...1250, using: &random)
            settings.killAfter = .milliseconds(killAfter)
            settings.killClock = duringSetUp ? .processStart : .firstEpoch
            let outcome = try LMDBFailoverDrill(settings: settings, executable: executable).run()
            if let replica = outcome.replica {
                withEpoch += 1
                acknowledged += outcome.acknowledged
                #expect(
                    replica.transactions >= outcome.acknowledged, "round \(round) seed \(seed) kill \(killAfter) ms")
            } else {
                #expect(
                    settings.killClock != .firstEpoch,
                    "round \(round) seed \(seed): killed after the first epoch, yet no replica")
                #expect(
                    outcome.acknowledged == 0, "round \(round) seed \(seed): acknowledged with no epoch on the backup")
            }
        }
        #expect(
            withEpoch >= rounds - (rounds + 4) / 5,
            "kills after the first epoch each left a replica (\(withEpoch) of \(rounds))")
        #expect(acknowledged > 0)
    }
}

/// The high-availability cycle through processes (Docs/RELIABILITY.md, promise 5d): two nodes, each in turn
/// the primary of the database killed with SIGKILL, the backup taking over and going on committing, the
/// killed node rejoining on the memory it still holds as the new primary's backup.
@Suite("LMDB example: alternating failovers", .serialized)
struct LMDBAlternatingFailoverTests {
    @Test(
        .requiring(.uffdAsync, .memfd(name: ""), because: "the nodes track their shared LMDB map with uffd-async"),
        .enabled(if: CommandRunner.executable != nil, "the fgbi executable was not built beside the tests"))
    func everyTakeoverHoldsEveryAcknowledgedTransactionAndTheKilledNodeRejoins() throws {
        let failovers = ProcessInfo.processInfo.environment["FGBI_LMDB_FAILOVERS"].flatMap(Int.init) ?? 20
        let executable = try #require(CommandRunner.executable)
        var settings = LMDBAlternatingDrill.Settings(
            history: try KeyValueHistory(seed: UInt64.random(in: 1...UInt64(UInt32.max)), keyCount: 20_000))
        settings.failovers = failovers
        settings.mapBytes = 16 << 20
        settings.seed = settings.history.seed
        // The drill throws on a takeover missing an acknowledged transaction, a replica that is not a prefix of
        // the history, or a node that ends, stands down or stops reporting.
        let outcome = try LMDBAlternatingDrill(settings: settings, executable: executable).run()
        #expect(outcome.failovers.count == failovers, "seed \(settings.history.seed)")
        #expect(Set(outcome.failovers.map(\.killed)) == ["A", "B"], "both nodes were primary and were killed")
        for (round, failover) in outcome.failovers.enumerated() {
            #expect(
                failover.transactions >= failover.acknowledged,
                "round \(round): took over with every acknowledged transaction")
            #expect(failover.unprotectedTransactions > 0, "round \(round): the new primary committed transactions")
            // Only what differed: the first pass sends no more than the pages that differed, whole (and the
            // records' headers).
            #expect(
                Double(failover.rejoinFirstPassBytes) <= Double(failover.rejoinPagesDiffering * GuestMemory.pageSize)
                    * 1.05 + 4096,
                """
                round \(round): first pass \(failover.rejoinFirstPassBytes) bytes for \
                \(failover.rejoinPagesDiffering) differing pages
                """
            )
            #expect(
                failover.rejoinPagesDiffering < failover.regionBytes / GuestMemory.pageSize,
                "round \(round): the rejoined node already held part of the region")
        }
        let epochs = outcome.failovers.map(\.epoch)
        #expect(
            epochs == epochs.sorted() && Set(epochs).count == epochs.count,
            "epoch numbers grow across takeovers: \(epochs)")
        #expect(outcome.finalReplica.transactions >= outcome.acknowledged)
    }
}

/// The highest value seen, from any thread.
final class AtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var highest: UInt64 = 0
    func raise(to value: UInt64) { lock.withLock { highest = max(highest, value) } }
    var value: UInt64 { lock.withLock { highest } }
}
