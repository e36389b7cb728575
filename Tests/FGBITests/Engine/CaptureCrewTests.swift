import CSupport
import Synchronization
import Testing

@testable import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// The paused stage's helper threads: every chunk runs once, helpers keep the CPU and priority they were
/// given, and settings the kernel refuses fail when the engine is made, not in a pause.
/// (Results are gathered under `PthreadLock`, a class: a `Mutex` captured by closures that run on several
/// threads reads to ThreadSanitizer as a modifying access, a false report.)
@Suite("Capture crew")
struct CaptureCrewTests {
    /// SCHED_FIFO at priority 5 is allowed to this process: root (CAP_SYS_NICE) or RLIMIT_RTPRIO of 5 or more.
    static let realtimeAllowed: Bool = {
        var limit = rlimit()
        // RLIMIT_RTPRIO (14): Glibc's module does not export it.
        return geteuid() == 0 || (getrlimit(__rlimit_resource_t(14), &limit) == 0 && limit.rlim_cur >= 5)
    }()

    @Test("every chunk runs exactly once, over many rounds", arguments: [0, 1, 3])
    func everyChunkOnce(helpers: Int) throws {
        let crew = try CaptureCrew(helpers: helpers, cpus: [])
        #expect(crew.participants == helpers + 1)
        for round in 0..<200 {
            let chunks = 1 + round % 17
            let runs = PthreadLock<[Int]>(Array(repeating: 0, count: chunks))
            let participants = PthreadLock<Set<Int>>([])
            crew.perform(chunks: chunks) { chunk, participant in
                runs.withLock { $0[chunk] += 1 }
                participants.withLock { _ = $0.insert(participant) }
            }
            let counts = runs.withLock { $0 }
            #expect(counts == Array(repeating: 1, count: chunks), "round \(round)")
            #expect(participants.withLock { $0.allSatisfy { (0...helpers).contains($0) } })
        }
    }

    @Test("a pinned helper does all the work; the caller waits", arguments: [1, 2])
    func pinnedHelpersTakeEveryChunk(helpers: Int) throws {
        let crew = try CaptureCrew(helpers: helpers, cpus: Array(repeating: 0, count: helpers))
        #expect(crew.participants == helpers)
        let participants = PthreadLock<[Int]>([])
        for chunks in [1, 2, 9] {
            crew.perform(chunks: chunks) { _, participant in participants.withLock { $0.append(participant) } }
        }
        let seen = participants.withLock { $0 }
        #expect(seen.count == 12)
        #expect(!seen.contains(0), "the calling thread took a chunk")
    }

    @Test(
        "a helper pinned to CPU 0 runs there, under SCHED_FIFO when asked",
        .enabled(if: realtimeAllowed, "SCHED_FIFO needs root, CAP_SYS_NICE or RLIMIT_RTPRIO"))
    func pinnedRealtimeHelper() throws {
        let crew = try CaptureCrew(helpers: 1, cpus: [0], realtimePriority: 5)
        let seen = PthreadLock<[(cpu: Int32, policy: Int32)]>([])
        // Enough chunks that the helper takes some: the caller does too, so wait for the helper's.
        for _ in 0..<50 {
            crew.perform(chunks: 64) { _, participant in
                guard participant == 1 else { return }
                let policy = sched_getscheduler(0)
                seen.withLock { $0.append((CSupport_current_cpu(), policy)) }
            }
        }
        let samples = seen.withLock { $0 }
        #expect(!samples.isEmpty, "the helper never took a chunk")
        #expect(samples.allSatisfy { $0.cpu == 0 }, "helper ran on CPUs \(Set(samples.map(\.cpu)))")
        #expect(samples.allSatisfy { $0.policy == SCHED_FIFO }, "helper policies \(Set(samples.map(\.policy)))")
    }

    @Test("a CPU that is not online is refused with the operation named")
    func offlineCPU() throws {
        let cpu = Int(sysconf(Int32(_SC_NPROCESSORS_CONF))) // one past the last configured CPU
        #expect(cpu < 64, "the test needs fewer than 64 CPUs")
        do {
            _ = try CaptureCrew(helpers: 1, cpus: [cpu])
            Issue.record("pinning to CPU \(cpu) succeeded")
        } catch {
            #expect(error.errno == EINVAL)
            #expect("\(error)".contains("sched_setaffinity(capture thread, CPU \(cpu))"))
        }
    }

    @Test("the engine refuses capture CPUs and priorities out of range")
    func engineValidates() throws {
        let region = try GuestMemory.anonymous(length: 16 * GuestMemory.pageSize)
        var configuration = EngineConfiguration()
        configuration.captureCPUs = [64]
        #expect(throws: FGBIError.self) { _ = try PrimaryEngine(regions: [region], configuration: configuration) }
        configuration.captureCPUs = []
        configuration.captureRealtimePriority = 100
        #expect(throws: FGBIError.self) { _ = try PrimaryEngine(regions: [region], configuration: configuration) }
        configuration.captureRealtimePriority = 0
        #expect(throws: FGBIError.self) { _ = try PrimaryEngine(regions: [region], configuration: configuration) }
    }

    @Test(
        "a capture cut into many chunks, helpers pinned and realtime, replicates exactly",
        .enabled(if: realtimeAllowed, "SCHED_FIFO needs root, CAP_SYS_NICE or RLIMIT_RTPRIO"),
        arguments: [CaptureStrategy.rehash, .copyPages])
    func chunkedCaptureMatchesSerial(strategy: CaptureStrategy) throws {
        var serial = EngineConfiguration(mode: .fgbi)
        serial.captureThreads = 1
        serial.captureStrategy = strategy
        var parallel = serial
        parallel.captureThreads = 3
        parallel.captureCPUs = [0]
        parallel.captureRealtimePriority = 5
        parallel.parallelCaptureMinimumPages = 1
        let one = try EngineHarness(configuration: serial, regions: 2, pagesPerRegion: 1024)
        let many = try EngineHarness(configuration: parallel, regions: 2, pagesPerRegion: 1024)
        var first = Mutator(regions: one.primary, blockSize: 64, seed: 23)
        var second = Mutator(regions: many.primary, blockSize: 64, seed: 23)
        var chunked = false
        for epoch in 0..<6 {
            for _ in 0..<3000 {
                first.act()
                second.act()
            }
            let dirty = second.takeDirty()
            // Over 64 pages a chunk and 3 threads: more chunks than threads, so their order matters.
            chunked = chunked || dirty.reduce(0) { $0 + $1.pageCount } >= 3 * PrimaryEngine.minimumChunkPages * 2
            let (a, _) = try one.step(first.takeDirty())
            let (b, _) = try many.step(dirty)
            #expect(a == b, "epoch \(epoch): the deltas differ")
            #expect(many.identical, "epoch \(epoch): first difference at \(many.firstDifference)")
        }
        #expect(chunked, "no epoch wrote enough pages to be cut into more chunks than threads")
    }
}

/// Captures grow while the guest runs, not in the pause.
@Suite("Capture buffers")
struct CaptureBufferTests {
    @Test("reserving keeps the items held and makes room without growing later")
    func reserveKeepsItemsAndMakesRoom() throws {
        let region = try GuestMemory.anonymous(length: 64 * GuestMemory.pageSize)
        for page in 0..<64 { region.page(page).storeBytes(of: UInt64(page) &* 0x9E37_79B9_7F4A_7C15, as: UInt64.self) }
        let capture = EpochCapture()
        capture.reset(epoch: 1, itemSize: GuestMemory.pageSize)
        for page in 0..<40 { capture.append(BlockLocation(region: 0, block: page), from: region.page(page)) }
        EpochCapture.finishStores()
        // Within the capacity it has (no growth), then beyond it.
        capture.reserve(items: 40, arenaBytes: 40 * GuestMemory.pageSize)
        capture.reserve(items: 4096, arenaBytes: 4096 * GuestMemory.pageSize)
        #expect(capture.count == 40)
        for index in 0..<40 {
            #expect(capture.view.locations[index] == BlockLocation(region: 0, block: index))
            #expect(memcmp(capture.item(index), region.page(index), GuestMemory.pageSize) == 0, "item \(index) changed")
        }
        // A capture of that size now fits: the arena's address stays put.
        let arena = capture.view.arena
        capture.reset(epoch: 2, itemSize: GuestMemory.pageSize)
        for _ in 0..<64 {
            for page in 0..<64 { capture.append(BlockLocation(region: 0, block: page), from: region.page(page)) }
        }
        #expect(capture.count == 4096)
        #expect(capture.view.arena == arena, "the arena was reallocated")
    }

    @Test("a capture stages an epoch whole only in memory it reserved or filled before")
    func stagingNeedsReservedMemory() {
        let capture = EpochCapture()
        #expect(capture.canStage(pages: 16, pageSize: GuestMemory.pageSize) == false, "a fresh arena is not touched")
        capture.reserve(items: 1000, itemSize: GuestMemory.pageSize)
        #expect(capture.canStage(pages: 1000, pageSize: GuestMemory.pageSize))
        #expect(capture.canStage(pages: 5_000, pageSize: GuestMemory.pageSize) == false, "beyond what it reserved")
    }

    /// What the last pre-copy round expects of an epoch reserves the free captures at once, and the one still
    /// in flight (a pre-copy step, whose own size is no epoch's) when it comes back.
    @Test("expected epochs reserve the free captures and those released later")
    func expectedEpochsReserveEveryCapture() throws {
        let queue = CaptureQueue(buffers: 2, recordsUnchangedPages: false)
        let inFlight = try queue.acquire(waiting: {}, failure: { nil })
        inFlight.isPrecopy = true
        queue.expectEpochs(ofPages: 300, pageSize: GuestMemory.pageSize)
        let free = try queue.acquire(waiting: {}, failure: { nil })
        #expect(free.canStage(pages: 450, pageSize: GuestMemory.pageSize), "the free capture, half again as large")
        #expect(inFlight.canStage(pages: 300, pageSize: GuestMemory.pageSize) == false)
        queue.release(inFlight, totalPages: 100_000)
        #expect(inFlight.canStage(pages: 450, pageSize: GuestMemory.pageSize), "reserved on its release")
    }
}
