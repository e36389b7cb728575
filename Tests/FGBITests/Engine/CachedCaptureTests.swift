import Testing

@testable import FGBI

/// A capture of whole pages is copied with plain stores up to ``EngineConfiguration/cachedCaptureBytes`` and
/// with streaming stores above: only where the bytes sit afterwards may differ, never the bytes themselves.
@Suite("Cached captures")
struct CachedCaptureTests {
    /// The sizes sysfs writes for a cache.
    @Test func cacheSizesParse() {
        #expect(ProcessInfoLite.cacheSize("32768K") == 32 << 20)
        #expect(ProcessInfoLite.cacheSize("1M") == 1 << 20)
        #expect(ProcessInfoLite.cacheSize("2G") == 2 << 30)
        #expect(ProcessInfoLite.cacheSize("512") == 512)
        for bad in ["", "K", "-4K", "0K", "12Q", "x1M"] { #expect(ProcessInfoLite.cacheSize(bad) == nil, "\(bad)") }
    }

    /// The default is a quarter of what the kernel says the last-level cache holds, or 4 MiB without it; an
    /// engine's configuration starts with this machine's.
    @Test func theDefaultIsAQuarterOfTheLastLevelCache() {
        #expect(EngineConfiguration.cachedCaptureBytes(lastLevelCacheBytes: 32 << 20) == 8 << 20)
        #expect(EngineConfiguration.cachedCaptureBytes(lastLevelCacheBytes: 1 << 20) == 256 << 10)
        #expect(EngineConfiguration.cachedCaptureBytes(lastLevelCacheBytes: 96 << 20) == 24 << 20)
        #expect(EngineConfiguration.cachedCaptureBytes(lastLevelCacheBytes: nil) == 4 << 20)
        let host = ProcessInfoLite.lastLevelCacheBytes
        #expect(
            EngineConfiguration().cachedCaptureBytes
                == EngineConfiguration.cachedCaptureBytes(lastLevelCacheBytes: host),
            "last-level cache here: \(host.map { "\($0) bytes" } ?? "not described")")
    }

    /// Three engines on one history, their captures streamed always, never, and above 40 pages: each capture
    /// streams as its size says, and every epoch's delta is the same bytes and rebuilds the primary exactly,
    /// pre-copy steps and page modes included.
    @Test("streamed and cached captures send the same bytes", arguments: [ReplicationMode.fgbi, .xbzrle])
    func streamedAndCachedCapturesAgree(mode: ReplicationMode) throws {
        let limits = [0, Int.max, 40 * GuestMemory.pageSize]
        let harnesses = try limits.map { limit in
            var configuration = EngineConfiguration(mode: mode)
            configuration.captureStrategy = .copyPages
            configuration.cachedCaptureBytes = limit
            return try EngineHarness(configuration: configuration, regions: 2, pagesPerRegion: 128)
        }
        var mutators = harnesses.map { Mutator(regions: $0.primary, blockSize: 64, seed: 11) }
        // A pre-copy step of 64 pages (streamed above 40), then epochs both sides of the limit.
        for (harness, limit) in zip(harnesses, limits) {
            try harness.engine.capturePrecopy(
                [PrimaryEngine.PageSpan(region: 0, start: 0, count: 64)], firstPass: true, into: harness.capture)
            #expect(harness.capture.streamsPages == (64 * GuestMemory.pageSize > limit))
            try harness.replica.apply(try harness.engine.encode(harness.capture).delta)
        }
        var streamedAtTheLimit: Set<Bool> = []
        for epoch in 0..<24 {
            let actions = epoch == 0 ? 200 : [4, 30, 90][epoch % 3]
            var deltas: [[UInt8]] = []
            for (number, harness) in harnesses.enumerated() {
                for _ in 0..<actions { mutators[number].act() }
                let dirty = mutators[number].takeDirty()
                let pages = dirty.reduce(0) { $0 + $1.pageCount }
                let (delta, _) = try harness.step(dirty)
                deltas.append(delta)
                if epoch > 0 {
                    if number == 2 { streamedAtTheLimit.insert(harness.capture.streamsPages) }
                    #expect(
                        harness.capture.streamsPages == (pages * GuestMemory.pageSize > limits[number]),
                        "epoch \(epoch): \(pages) pages, limit \(limits[number])")
                }
                #expect(harness.identical, "epoch \(epoch): first difference at \(harness.firstDifference)")
            }
            #expect(deltas.allSatisfy { $0 == deltas[0] }, "epoch \(epoch): the deltas differ")
        }
        #expect(streamedAtTheLimit == [false, true], "epochs on both sides of the 40-page limit")
    }
}
