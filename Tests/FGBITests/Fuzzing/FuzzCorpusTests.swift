import FGBIBench
import FGBILab
import Foundation
import Testing

@testable import FGBI

/// The fuzz targets' seed corpus (Tests/FuzzCorpus/TARGET): made from real encodings, accepted by the
/// entry points, and replayed with everything the fuzzers kept or found, so a fixed crash stays fixed.
/// `FGBI_WRITE_FUZZ_SEEDS=1 swift test --filter FuzzCorpusTests` rewrites the seeds.
@Suite("Fuzz corpus")
struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("FuzzCorpus")

    /// Real epoch deltas for the fuzz replica's regions, one per mode, uncompressed (the fuzzer compresses).
    static func deltas() throws -> [String: [UInt8]] {
        var seeds: [String: [UInt8]] = [:]
        for mode in ReplicationMode.allCases {
            let regions = try DeltaFuzzer.makeRegions()
            let engine = try PrimaryEngine(
                regions: regions, configuration: EngineConfiguration(mode: mode, compression: Compression.none))
            // A changed block, a zeroed page, a block copied from elsewhere, a diff-sized change, region 1 too.
            regions[0].bytes.storeBytes(of: UInt64(0xDEAD_BEEF), toByteOffset: 100, as: UInt64.self)
            memset(regions[0].page(2), 0, GuestMemory.pageSize)
            memcpy(regions[0].page(3) + 64, regions[0].page(5) + 128, 64)
            regions[0].page(4).storeBytes(of: UInt8(7), toByteOffset: 999, as: UInt8.self)
            memcpy(regions[1].page(1), regions[0].page(6), GuestMemory.pageSize)
            let dirty = [DirtyPageSet(pages: [0, 2, 3, 4]), DirtyPageSet(pages: [1])]
            let capture = EpochCapture()
            try engine.capture(dirty, into: capture)
            seeds["\(mode)"] = try engine.encode(capture).delta
        }
        seeds["fgbi-spliced"] = try splicedDelta()
        seeds["fgbi-page-copies"] = try pageCopiedDelta()
        return seeds
    }

    /// A delta of the `fgbi` encoder with `page-copy` and `page-zero` records, vouched for by real uffd-async
    /// trackers: page 1 a copy of page 5, page 2 zeros, page 3 a copy of region 1's page 0, and region 1's
    /// page 2 a copy of region 0's page 6.
    static func pageCopiedDelta() throws -> [UInt8] {
        let regions = try DeltaFuzzer.makeRegions()
        var configuration = EngineConfiguration(mode: .fgbi, compression: Compression.none)
        configuration.captureStrategy = .copyPages
        let engine = try PrimaryEngine(regions: regions, configuration: configuration)
        let trackers = try regions.map { try AsyncWriteProtectTracker(memory: $0) }
        try engine.attachWitnesses(trackers.map { $0 })
        for tracker in trackers { try tracker.start() }
        defer { for tracker in trackers { try? tracker.stop() } }
        let first = EpochCapture()
        try engine.capture([], into: first)
        _ = try engine.encode(first)
        memcpy(regions[0].page(1), regions[0].page(5), GuestMemory.pageSize)
        memset(regions[0].page(2), 0, GuestMemory.pageSize)
        memcpy(regions[0].page(3), regions[1].page(0), GuestMemory.pageSize)
        memcpy(regions[1].page(2), regions[0].page(6), GuestMemory.pageSize)
        var dirty: [DirtyPageSet] = []
        for tracker in trackers {
            var set = DirtyPageSet()
            try tracker.collect(into: &set)
            dirty.append(set)
        }
        let capture = EpochCapture()
        try engine.capture(dirty, into: capture)
        let (delta, statistics) = try engine.encode(capture)
        #expect(statistics.pagesCopied == 3, "\(statistics.pagesCopied) pages copied")
        return delta
    }

    /// A delta of the `fgbi` encoder with splicing, with every kind of piece: after an epoch that wrote page 6
    /// of fresh words, page 1 of fresh words and page 2 the same bytes shifted by 3 (splices of the epoch's
    /// earlier bytes), page 7 page 6's bytes shifted by 3 with a few changed (held in the same region), and
    /// region 1's page 0 page 6's shifted by 5 (held in another region).
    static func splicedDelta() throws -> [UInt8] {
        let regions = try DeltaFuzzer.makeRegions()
        var configuration = EngineConfiguration(mode: .fgbi, compression: Compression.none)
        configuration.splicing = true
        let engine = try PrimaryEngine(regions: regions, configuration: configuration)
        var random = SeededRandom(seed: 3)
        func fill(_ page: UnsafeMutableRawPointer) {
            for word in 0..<(GuestMemory.pageSize / 8) {
                page.storeBytes(of: random.next(), toByteOffset: word * 8, as: UInt64.self)
            }
        }
        fill(regions[0].page(6))
        let first = EpochCapture()
        try engine.capture([DirtyPageSet(pages: [6]), DirtyPageSet(pages: [])], into: first)
        _ = try engine.encode(first)
        fill(regions[0].page(1))
        memcpy(regions[0].page(2) + 3, regions[0].page(1), GuestMemory.pageSize - 3)
        memcpy(regions[0].page(7) + 3, regions[0].page(6), GuestMemory.pageSize - 3)
        for edit in 0..<8 { regions[0].page(7).storeBytes(of: UInt8(edit), toByteOffset: edit * 500, as: UInt8.self) }
        memcpy(regions[1].page(0) + 5, regions[0].page(6), GuestMemory.pageSize - 5)
        let capture = EpochCapture()
        try engine.capture([DirtyPageSet(pages: [1, 2, 7]), DirtyPageSet(pages: [0])], into: capture)
        let (delta, statistics) = try engine.encode(capture)
        #expect(statistics.splicedBlocks > 3 * 32, "\(statistics.splicedBlocks) blocks spliced")
        return delta
    }

    static func frameSeeds() throws -> [String: [UInt8]] {
        func stream(_ selector: UInt8, key: SymmetricKey?, encrypt: Bool) throws -> [UInt8] {
            var sealer = FrameSealer(direction: 1)
            sealer.startSession(key: key, encryptionKey: encrypt ? key : nil)
            var bytes: [UInt8] = [selector]
            let payloads: [(WireFormat.FrameType, [UInt8])] = [
                (.heartbeat, []), (.ack, Array(repeating: 1, count: 8)), (.epoch, Array(repeating: 0xAB, count: 100)),
            ]
            for (type, payload) in payloads {
                let sealed = try payload.withUnsafeBytes { try sealer.seal(type, payload: $0) }
                bytes += sealed.header + (sealed.encrypted ?? payload) + sealed.mac
            }
            return bytes
        }
        let key = SymmetricKey(data: Array(repeating: 0x5A, count: 32))
        return [
            "plain": try stream(0, key: nil, encrypt: false), "authenticated": try stream(1, key: key, encrypt: false),
            "encrypted": try stream(2, key: key, encrypt: true),
        ]
    }

    static func handshakeSeeds() -> [String: [UInt8]] {
        let hello = Hello(
            mode: .fgbi, wantsAuthentication: true, blockSize: 64, pageSize: 4096, regionLengths: [1 << 20, 4096],
            nonce: Array(repeating: 3, count: 32))
        let welcome = Welcome(
            sessionID: Array(repeating: 1, count: 16), nonce: Array(repeating: 2, count: 32), nextEpoch: 9)
        return ["hello": hello.encoded, "welcome": welcome.encoded]
    }

    static func summarySeeds() -> [String: [UInt8]] {
        var bytes: [UInt8] = []
        for payload in ReplicaSummary(pageHashes: [(0..<16).map { UInt64($0) }, [7, 8, 9]]).framePayloads() {
            bytes.append(UInt8((payload.count - 16) / 8))
            bytes += payload
        }
        return ["complete": bytes]
    }

    static func traceSeeds() -> [String: [UInt8]] {
        [
            "two-images": [1, 0b000_111] + Array(#"{"epoch_ms": 100, "source": "fuzz"}"#.utf8),
            "no-metadata": [2, 0b111_000],
        ]
    }

    static func seeds() throws -> [String: [String: [UInt8]]] {
        [
            "delta": try deltas().mapValues { try #require(DeltaFuzzer.input(carrying: $0)) },
            "frame": try frameSeeds(), "handshake": handshakeSeeds(), "summary": summarySeeds(), "trace": traceSeeds(),
        ]
    }

    @Test func seedsAreAcceptedByTheirTargets() throws {
        let all = try Self.seeds()
        #expect(all["delta"]?.count == ReplicationMode.allCases.count + 2)
        for (name, delta) in try Self.deltas() {
            for precopy in [false, true] {
                let input = try #require(DeltaFuzzer.input(carrying: delta, precopy: precopy))
                let fuzzer = try DeltaFuzzer()
                #expect(input.withUnsafeBytes { fuzzer.apply($0) }, "the \(name) delta applies (pre-copy: \(precopy))")
            }
        }
        for seed in try #require(all["trace"]).values {
            #expect(seed.withUnsafeBytes { TraceDirectoryFuzzing.run($0) }, "the trace seed opens")
        }
        for (name, seed) in try #require(all["frame"]) {
            #expect(seed.withUnsafeBytes { FuzzEntryPoints.frameStream($0) }, "the \(name) frame stream is accepted")
        }
        for (name, seed) in try #require(all["handshake"]) {
            #expect(seed.withUnsafeBytes { FuzzEntryPoints.handshake($0) }, "the \(name) seed decodes")
        }
        for seed in try #require(all["summary"]).values {
            #expect(seed.withUnsafeBytes { FuzzEntryPoints.summary($0) }, "the summary seed assembles")
        }
        if ProcessInfo.processInfo.environment["FGBI_WRITE_FUZZ_SEEDS"] != nil {
            for (target, seeds) in all {
                let directory = Self.corpus.appendingPathComponent(target)
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                for (name, seed) in seeds { try Data(seed).write(to: directory.appendingPathComponent("seed-\(name)")) }
            }
        }
    }

    /// Every file under Tests/FuzzCorpus (seeds, and inputs the fuzzers kept or crashed on) runs through its
    /// target without a crash; the delta target also checks refused deltas change nothing.
    @Test(arguments: ["frame", "delta", "handshake", "summary", "trace"])
    func corpusReplaysWithoutACrash(target: String) throws {
        let directory = Self.corpus.appendingPathComponent(target)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(!files.isEmpty, "Tests/FuzzCorpus/\(target) holds the seeds")
        let fuzzer = try DeltaFuzzer()
        for file in files {
            let data = try Data(contentsOf: directory.appendingPathComponent(file))
            _ = data.withUnsafeBytes { bytes in
                switch target {
                case "frame": FuzzEntryPoints.frameStream(bytes)
                case "delta": fuzzer.apply(bytes)
                case "handshake": FuzzEntryPoints.handshake(bytes)
                case "summary": FuzzEntryPoints.summary(bytes)
                default: TraceDirectoryFuzzing.run(bytes)
                }
            }
        }
    }
}
