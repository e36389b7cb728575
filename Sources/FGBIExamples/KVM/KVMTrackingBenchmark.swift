import FGBI
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A way of learning which guest pages were written.
public enum KVMTrackingMethod: String, CaseIterable, Sendable, Codable {
    /// No tracking (the guest is still paused at each interval, so the pause cost is in the baseline).
    case none
    /// FGBI's tracker: async userfaultfd write-protect + PAGEMAP_SCAN on the RAM mapping.
    case uffdAsync = "uffd-async"
    /// The same with replication's hot pages (``HotPagePolicy/replicationDefault``): pages written in 2
    /// consecutive intervals stop being re-protected for a lease, and are reported at every collection.
    case uffdAsyncHot = "uffd-async-hot"
    /// KVM_MEM_LOG_DIRTY_PAGES + KVM_GET_DIRTY_LOG.
    case dirtyLog = "dirty-log"
    /// KVM's per-vCPU dirty ring (acquire/release) + KVM_RESET_DIRTY_RINGS.
    case dirtyRing = "dirty-ring"
}

/// One method's run of the guest.
public struct KVMTrackingResult: Sendable, Codable {
    public var method: KVMTrackingMethod
    public var runSeconds: Double
    /// Run time over the untracked run's.
    public var slowdown: Double
    public var collections: Int
    public var pagesDirtied: Int
    public var pagesPerCollection: Double
    /// Of the pages reported, those reported without a scan (`uffd-async-hot`'s hot pages).
    public var pagesReportedUnscanned: Int
    /// (run time - untracked run time) / pages found written by a scan: what each tracked first write costs
    /// the guest.
    public var firstWriteMicrosecondsPerPage: Double?
    public var collectMicrosecondsP50: Double
    public var collectMicrosecondsP99: Double
    /// Dirty-ring full exits the vCPU took (harvested on the vCPU thread).
    public var ringFullExits: Int
    public var checksum: String
}

/// `fgbi bench kvm-tracking`: the same guest run under each tracking method, side by side in one process,
/// collecting every interval with the vCPU paused (as replication does).
public struct KVMTrackingBenchmark: Sendable {
    public var image: KVMGuestImage
    public var parameters: KVMGuestParameters
    public var ramBytes: Int
    public var interval = Duration.milliseconds(25)
    public var ringEntries = 65536

    public init(image: KVMGuestImage, parameters: KVMGuestParameters, ramBytes: Int) {
        self.image = image
        self.parameters = parameters
        self.ramBytes = ramBytes
    }

    /// Runs every method in `methods` (`.none` first, for the baseline) and fills in the ratios.
    public func run(_ methods: [KVMTrackingMethod], progress: (String) -> Void = { _ in }) throws -> [KVMTrackingResult]
    {
        var ordered = methods.filter { $0 != .none }
        ordered.insert(.none, at: 0)
        var results: [KVMTrackingResult] = []
        for method in ordered {
            progress("kvm-tracking: \(method.rawValue)")
            results.append(try runOne(method))
        }
        let baseline = results[0].runSeconds
        for index in results.indices {
            results[index].slowdown = results[index].runSeconds / baseline
            let scanned = results[index].pagesDirtied - results[index].pagesReportedUnscanned
            if results[index].method != .none, scanned > 0 {
                results[index].firstWriteMicrosecondsPerPage =
                    (results[index].runSeconds - baseline) * 1e6 / Double(scanned)
            }
        }
        return methods.contains(.none) ? results : Array(results.dropFirst())
    }

    /// One run under `method`.
    public func runOne(_ method: KVMTrackingMethod) throws -> KVMTrackingResult {
        let run = try TrackedGuest(
            method, image: image, parameters: parameters, ramBytes: ramBytes, ringEntries: ringEntries)
        var set = DirtyPageSet()
        var times: [Double] = []
        times.reserveCapacity(4096)
        var pages = 0
        var unscanned = 0
        let intervalNanoseconds = interval.wholeNanoseconds
        let start = MonotonicClock.nanoseconds()
        run.guest.runner.start()
        var end = start
        while true {
            let next = MonotonicClock.nanoseconds() + intervalNanoseconds
            while MonotonicClock.nanoseconds() < next && !run.guest.runner.hasEnded { usleep(500) }
            if run.guest.runner.hasEnded {
                end = MonotonicClock.nanoseconds()
                break
            }
            run.guest.runner.pause()
            let before = MonotonicClock.nanoseconds()
            try run.collect(into: &set)
            times.append(Double(MonotonicClock.nanoseconds() - before) / 1000)
            run.guest.runner.resume()
            pages += set.pageCount
            unscanned += run.tracker?.pagesReportedUnscanned ?? 0
        }
        guard case .finished(let checksum, _) = try run.guest.runner.wait() else {
            throw KVMGuestError(message: "the guest did not finish under \(method.rawValue)")
        }
        try run.collect(into: &set)
        pages += set.pageCount
        unscanned += run.tracker?.pagesReportedUnscanned ?? 0
        try run.stop()
        times.sort()
        func percentile(_ p: Double) -> Double {
            times.isEmpty ? 0 : times[min(times.count - 1, Int(Double(times.count) * p))]
        }
        return KVMTrackingResult(
            method: method, runSeconds: Double(end - start) / 1e9, slowdown: 1, collections: times.count,
            pagesDirtied: pages, pagesPerCollection: times.isEmpty ? 0 : Double(pages) / Double(times.count + 1),
            pagesReportedUnscanned: unscanned,
            firstWriteMicrosecondsPerPage: nil,
            collectMicrosecondsP50: percentile(0.5), collectMicrosecondsP99: percentile(0.99),
            ringFullExits: run.ringFullExits.value, checksum: KVMExample.hex(checksum))
    }

    /// The pages `method` reports for each phase of the guest's run: collected once just before the guest
    /// starts (dropping what the VMM wrote while setting up), then at each of its progress reports (on the
    /// vCPU thread, which is outside KVM_RUN then), then at its end. For a page walk, element 2k is pass k's
    /// read phase and 2k+1 its write phase.
    public func pagesByPhase(_ method: KVMTrackingMethod) throws -> [DirtyPageSet] {
        try phases(method).sets
    }

    /// ``pagesByPhase(_:)`` with what the dirty ring did meanwhile.
    public func phases(_ method: KVMTrackingMethod) throws -> KVMTrackingPhases {
        let run = try TrackedGuest(
            method, image: image, parameters: parameters, ramBytes: ramBytes, ringEntries: ringEntries)
        var set = DirtyPageSet()
        try run.collect(into: &set)
        let phases = PhaseSets()
        run.guest.runner.onProgress = { _ in
            var set = DirtyPageSet()
            do { try run.collect(into: &set) } catch { phases.failure = error }
            phases.sets.append(set)
        }
        guard case .finished = try run.guest.runToCompletion() else {
            throw KVMGuestError(message: "the guest did not finish under \(method.rawValue)")
        }
        if let failure = phases.failure { throw failure }
        try run.collect(into: &set)
        try run.stop()
        return KVMTrackingPhases(
            sets: phases.sets + [set], ringFullExits: run.ringFullExits.value,
            ringEntriesHarvested: run.dirtyLog?.ringEntriesHarvested ?? 0)
    }
}

/// The page sets of ``KVMTrackingBenchmark/phases(_:)`` and the dirty ring's activity during that run.
public struct KVMTrackingPhases: Sendable {
    /// One set per phase, then the pages written after the last progress report.
    public var sets: [DirtyPageSet]
    /// KVM_EXIT_DIRTY_RING_FULL exits, each harvested on the vCPU thread.
    public var ringFullExits: Int
    /// Ring entries harvested in all (at full exits and at collections).
    public var ringEntriesHarvested: Int
}

/// Sets collected on the vCPU thread, read after it ended.
private final class PhaseSets: @unchecked Sendable {
    var sets: [DirtyPageSet] = []
    var failure: Error?
}

/// A fresh guest with one tracking method armed.
final class TrackedGuest: @unchecked Sendable {
    let guest: KVMGuest
    let tracker: (any DirtyTracker)?
    let dirtyLog: KVMDirtyLog?
    let ringFullExits = Counter()

    final class Counter: @unchecked Sendable { var value = 0 }

    init(
        _ method: KVMTrackingMethod, image: KVMGuestImage, parameters: KVMGuestParameters, ramBytes: Int,
        ringEntries: Int
    ) throws {
        let memory = try GuestMemory.memfd(length: ramBytes, name: "fgbi-kvm-tracking")
        let logging: KVMDirtyLogging
        switch method {
        case .none, .uffdAsync, .uffdAsyncHot: logging = .none
        case .dirtyLog: logging = .bitmap
        case .dirtyRing: logging = .ring(entries: ringEntries)
        }
        guest = try KVMGuest.fresh(image: image, parameters: parameters, memory: memory, dirtyLogging: logging)
        switch method {
        case .uffdAsync, .uffdAsyncHot:
            let tracker = try TrackerKind.uffdAsync.makeTracker(
                for: memory, hotPages: method == .uffdAsyncHot ? .replicationDefault : .off)
            try tracker.start()
            self.tracker = tracker
            dirtyLog = nil
        case .dirtyLog, .dirtyRing:
            tracker = nil
            let log = try KVMDirtyLog(guest: guest)
            dirtyLog = log
            let counter = ringFullExits
            guest.runner.onDirtyRingFull = {
                counter.value += 1
                try log.harvestRing()
            }
        case .none:
            tracker = nil
            dirtyLog = nil
        }
    }

    func collect(into set: inout DirtyPageSet) throws {
        if let tracker {
            try tracker.collect(into: &set)
        } else if let dirtyLog {
            try dirtyLog.collect(into: &set)
        } else {
            set.removeAll()
        }
    }

    func stop() throws { try tracker?.stop() }
}
