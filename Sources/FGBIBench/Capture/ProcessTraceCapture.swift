import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// Captures a running process's writable memory as a trace directory (what `fgbi trace capture` runs).
///
/// The first snapshot reads /proc/PID/maps and fixes the layout (``CaptureLayout``); every snapshot stops
/// the process with SIGSTOP, waits until all its threads are stopped, copies the layout with
/// process_vm_readv, continues it with SIGCONT, and only then writes the image, so the pause is the copy
/// alone. Snapshots start `intervalMs` apart. SIGCONT is sent on every path out of a stopped snapshot.
public struct ProcessTraceCapture: Sendable {
    /// The process captured.
    public var pid: Int32
    /// Milliseconds from one snapshot's start to the next.
    public var intervalMs = 100.0
    /// Images to write: the trace has one epoch fewer.
    public var snapshots = 51
    /// The most bytes per image.
    public var maxBytes = 1024 << 20
    /// Stop the process for each snapshot (false: copy it while it runs, so an image can mix moments).
    public var stopsProcess = true
    /// Capture writable shared mappings (`rw-s`: a database's writable map, shared memory) too.
    public var includesShared = false
    /// The longest wait for every thread to stop; after it the snapshot is read anyway and counted.
    public var stopTimeoutMs = 1000.0
    /// Memory for images taken but not yet written (nil: half of MemAvailable). When it is full a snapshot
    /// waits for the disk and starts late.
    public var bufferBytes: Int?

    public init(pid: Int32) {
        self.pid = pid
    }

    /// What a capture did.
    public struct Outcome: Sendable {
        /// The trace directory written, opened.
        public var trace: TraceDirectory
        public var layout: CaptureLayout
        /// Stop-to-continue time of each snapshot in milliseconds (empty when the process was not stopped).
        public var pausesMs: [Double]
        /// Time spent copying each snapshot, in milliseconds.
        public var readsMs: [Double]
        /// Time the writer thread took to write each image, in milliseconds.
        public var writesMs: [Double]
        /// Bytes written as zeros because they could not be read, over all images.
        public var unreadBytes: Int
        /// Snapshots read although a thread had not stopped within ``ProcessTraceCapture/stopTimeoutMs``.
        public var notFullyStopped: Int
        /// Snapshots that started more than half an interval after their nominal time (the disk could not keep up
        /// and the buffer was full, or a copy took longer than the interval: the process always runs at least
        /// half an interval between two snapshots).
        public var lateSnapshots: Int
        /// True when the process exited before every planned snapshot was taken.
        public var exitedEarly: Bool
        public var elapsedSeconds: Double

        /// Median and largest stop-to-continue pause in milliseconds; without stops, of the copy time.
        public var pauseMedianMs: Double { Summary(pausesMs.isEmpty ? readsMs : pausesMs).median }
        public var pauseMaxMs: Double { Summary(pausesMs.isEmpty ? readsMs : pausesMs).max }
        /// Median time the writer thread took per image, in milliseconds.
        public var writeMedianMs: Double { Summary(writesMs).median }
    }

    /// Captures into `path` (created if missing; it must not hold images already). `progress` gets one line
    /// per snapshot.
    public func capture(to path: String, progress: (String) -> Void = { _ in }) throws(CaptureError) -> Outcome {
        try checkSnapshotCount()
        let target = TargetProcess(pid: pid)
        try target.checkExists()
        let program = target.commandLine()
        let writer: TraceDirectoryWriter
        do { writer = try TraceDirectoryWriter(path: path) } catch { throw .trace(error) }

        var layout = CaptureLayout()
        var reader: ProcessMemoryReader?
        var queue: ImageWriteQueue?
        var startsMs: [Double] = []
        var tally = SnapshotTally()
        var late = 0
        var exitedEarly = false
        let interval = UInt64(intervalMs * 1e6)
        let start = MonotonicClock.nanoseconds()
        // Stop the writer thread on every way out; its error, if any, is reported by the normal path.
        defer { _ = try? queue?.finish() }

        // When the previous snapshot ended; the process runs at least half an interval after each snapshot,
        // so a late snapshot does not follow the previous one at once and record an epoch it did not run in.
        var continued: UInt64 = 0
        for index in 0..<snapshots {
            let nominal = start + UInt64(index) * interval
            let due = max(nominal, continued + interval / 2)
            // Wait for a buffer first: when the unwritten images fill the budget, this snapshot is late.
            var image: UnsafeMutableRawBufferPointer?
            do throws(TraceError) { image = try queue?.buffer() } catch { throw .trace(error) }
            let now = MonotonicClock.nanoseconds()
            if due > now { MonotonicClock.sleep(nanoseconds: due - now) }
            if max(now, due) - nominal > interval / 2 { late += 1 }
            startsMs.append(Double(MonotonicClock.nanoseconds() - start) / 1e6)
            let snapshot: Snapshot
            do throws(CaptureError) {
                snapshot = try take(target) { () throws(CaptureError) -> Int in
                    if reader == nil {
                        // The first snapshot fixes the layout, with the process stopped so it is consistent.
                        layout = try selectLayout()
                        reader = ProcessMemoryReader(pid: pid, layout: layout)
                        let created = ImageWriteQueue(
                            writer: writer, imageBytes: layout.totalBytes,
                            budgetBytes: bufferBytes ?? Self.defaultBufferBytes())
                        queue = created
                        do throws(TraceError) { image = try created.buffer() } catch { throw .trace(error) }
                    }
                    return try reader!.read(into: image!)
                }
            } catch .noSuchProcess where index > 0 {
                exitedEarly = true
                startsMs.removeLast()
                if let image { queue?.giveBack(image) }
                let taken = "\(index) snapshot\(index == 1 ? "" : "s")"
                progress("process \(pid) exited after \(taken); keeping the images taken so far")
                break
            }
            continued = MonotonicClock.nanoseconds()
            if index == 0 { try checkSpace(path, imageBytes: layout.totalBytes) }
            do throws(TraceError) { try queue!.submit(image!) } catch { throw .trace(error) }
            tally.add(snapshot, stopsProcess: stopsProcess)
            if index > 0, let mappings = try? ProcessMemoryMap.read(pid: pid) { tally.check(layout, against: mappings) }
            progress(progressLine(snapshot, index: index, backlog: queue!.backlog))
        }

        let writesMs = try Self.finishWriting(&queue, progress: progress)
        guard writer.imageCount >= 2 else { throw .exitedTooEarly(pid: pid, images: writer.imageCount) }
        let metadata = traceMetadata(
            target, program: program, layout: layout, startsMs: startsMs, tally: tally, exitedEarly: exitedEarly)
        do {
            try writer.finish(metadata)
            let trace = try TraceDirectory.open(path)
            return Outcome(
                trace: trace, layout: layout, pausesMs: tally.pauses, readsMs: tally.reads, writesMs: writesMs,
                unreadBytes: tally.unread,
                notFullyStopped: tally.notFullyStopped, lateSnapshots: late, exitedEarly: exitedEarly,
                elapsedSeconds: Double(MonotonicClock.nanoseconds() - start) / 1e9)
        } catch {
            throw .trace(error)
        }
    }

    /// The trace's metadata: the epoch the snapshots really had, the program and what the capture saw.
    private func traceMetadata(
        _ target: TargetProcess, program: String, layout: CaptureLayout, startsMs: [Double], tally: SnapshotTally,
        exitedEarly: Bool
    ) -> TraceDirectory.Metadata {
        // The epoch is the interval the snapshots really had: longer than asked when they ran late.
        let measuredMs = (startsMs.last! - startsMs.first!) / Double(startsMs.count - 1)
        var metadata = TraceDirectory.Metadata(
            epochMs: (measuredMs * 1000).rounded() / 1000, source: "process:\(target.commandName())")
        describe(
            &metadata, program: program, layout: layout, startsMs: startsMs, tally: tally, exitedEarly: exitedEarly)
        return metadata
    }

    /// A trace needs at least two snapshots.
    private func checkSnapshotCount() throws(CaptureError) {
        guard snapshots < 2 else { return }
        let error = SystemError(
            operation: "capture of \(snapshots) snapshots", errno: EINVAL, hint: "a trace needs at least 2 snapshots")
        throw .system(pid: pid, error)
    }

    /// Writes the images still waiting and stops the writer thread; returns each image's write time.
    private static func finishWriting(_ queue: inout ImageWriteQueue?, progress: (String) -> Void) throws(CaptureError)
        -> [Double]
    {
        defer { queue = nil }
        if let queue, queue.backlog > 0 { progress("writing the last \(queue.backlog) images") }
        do throws(TraceError) { return try queue?.finish() ?? [] } catch { throw .trace(error) }
    }

    /// Fills in what the trace's metadata says of the capture: the process, its regions, when each snapshot
    /// started, the pauses, and what went wrong.
    private func describe(
        _ metadata: inout TraceDirectory.Metadata, program: String, layout: CaptureLayout, startsMs: [Double],
        tally: SnapshotTally, exitedEarly: Bool
    ) {
        metadata.pid = pid
        metadata.program = program
        metadata.regions = layout.regions
        metadata.skippedRegions = layout.skipped
        metadata.snapshotsPlanned = snapshots
        metadata.intervalMs = intervalMs
        metadata.snapshotStartsMs = startsMs.map { ($0 * 1000).rounded() / 1000 }
        metadata.pausesMs = tally.pauses.map { ($0 * 1000).rounded() / 1000 }
        metadata.unreadBytes = tally.unread
        metadata.bytesMappedOutsideLayout = tally.outside
        metadata.layoutBytesUnmapped = tally.unmapped
        metadata.exitedEarly = exitedEarly
    }

    /// The regions to capture, chosen from the process's mappings (each probed for readability), at most
    /// ``maxBytes`` in all.
    private func selectLayout() throws(CaptureError) -> CaptureLayout {
        let mappings = try ProcessMemoryMap.read(pid: pid)
        var failure: CaptureError?
        let layout = CaptureLayout.select(from: mappings, maxBytes: maxBytes, includingShared: includesShared) {
            mapping in
            do throws(CaptureError) { return try Self.probe(pid: pid, mapping) } catch {
                failure = failure ?? error
                return false
            }
        }
        if let failure { throw failure }
        guard layout.totalBytes > 0 else { throw .nothingToCapture(pid: pid) }
        return layout
    }

    /// The progress line of snapshot `index`: its pause or read time, the images waiting, what went wrong.
    private func progressLine(_ snapshot: Snapshot, index: Int, backlog: Int) -> String {
        var line = "snapshot \(index + 1)/\(snapshots): "
        line +=
            stopsProcess
            ? "pause \(formatted(snapshot.pauseMs, 2)) ms (read \(formatted(snapshot.readMs, 2)) ms)"
            : "read \(formatted(snapshot.readMs, 2)) ms"
        line += ", \(backlog) image\(backlog == 1 ? "" : "s") waiting to be written"
        if snapshot.unread > 0 { line += ", \(snapshot.unread) bytes unreadable (zeroed)" }
        if !snapshot.stopped { line += ", not every thread stopped within \(formatted(stopTimeoutMs, 0)) ms" }
        return line
    }

    /// Half of the memory the kernel reports available (MemAvailable), for images waiting to be written;
    /// 1 GiB when /proc/meminfo cannot be read.
    static func defaultBufferBytes() -> Int {
        guard let bytes = try? KernelFile.read("/proc/meminfo") else { return 1 << 30 }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("MemAvailable:")
        {
            let fields = line.split(separator: " ")
            if fields.count >= 2, let kib = Int(fields[1]) { return kib * 1024 / 2 }
        }
        return 1 << 30
    }

    fileprivate struct Snapshot {
        var pauseMs: Double
        var readMs: Double
        var unread: Int
        var stopped: Bool
    }

    /// Stops the process (unless ``stopsProcess`` is false), waits for its threads, runs `read`, and sends
    /// SIGCONT whatever happened.
    private func take(_ target: TargetProcess, read: () throws(CaptureError) -> Int) throws(CaptureError) -> Snapshot {
        let stopped = MonotonicClock.nanoseconds()
        var allStopped = true
        if stopsProcess {
            try target.send(SIGSTOP, name: "SIGSTOP")
        }
        var continued = false
        defer { if stopsProcess && !continued { try? target.send(SIGCONT, name: "SIGCONT") } }
        if stopsProcess {
            allStopped = try target.waitUntilStopped(timeoutNanoseconds: UInt64(stopTimeoutMs * 1e6))
        }
        let readStart = MonotonicClock.nanoseconds()
        let unread = try read()
        let end = MonotonicClock.nanoseconds()
        if stopsProcess {
            continued = true
            try? target.send(SIGCONT, name: "SIGCONT")
        }
        let resumed = MonotonicClock.nanoseconds()
        return Snapshot(
            pauseMs: Double(resumed - stopped) / 1e6, readMs: Double(end - readStart) / 1e6,
            unread: unread, stopped: allStopped)
    }

    /// True when the first page of `mapping` can be read: a region that cannot is left out of the layout.
    /// Throws when the process is gone or may not be read at all.
    private static func probe(pid: Int32, _ mapping: ProcessMapping) throws(CaptureError) -> Bool {
        let layout = CaptureLayout.select(from: [mapping], maxBytes: GuestMemory.pageSize, includingShared: true)
        guard layout.totalBytes > 0 else { return false }
        let page = UnsafeMutableRawBufferPointer.allocate(byteCount: layout.totalBytes, alignment: GuestMemory.pageSize)
        defer { page.deallocate() }
        return try ProcessMemoryReader(pid: pid, layout: layout).read(into: page) == 0
    }

    /// Refuses to start writing when `snapshots` images of `imageBytes` would not fit next to `path`.
    private func checkSpace(_ path: String, imageBytes: Int) throws(CaptureError) {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return }
        let free = Int(info.f_bavail) * Int(info.f_frsize)
        let needed = snapshots * imageBytes
        if free < needed { throw .notEnoughSpace(path: path, needed: needed, free: free) }
    }
}

/// What a capture's snapshots added up to: pause and read times, bytes that could not be read, snapshots
/// whose threads did not all stop, and how far the process's mappings strayed from the layout.
fileprivate struct SnapshotTally {
    var pauses: [Double] = []
    var reads: [Double] = []
    var unread = 0
    var notFullyStopped = 0
    var outside = 0
    var unmapped = 0

    mutating func add(_ snapshot: ProcessTraceCapture.Snapshot, stopsProcess: Bool) {
        if stopsProcess { pauses.append(snapshot.pauseMs) }
        reads.append(snapshot.readMs)
        unread += snapshot.unread
        if !snapshot.stopped { notFullyStopped += 1 }
    }

    /// Notes the most memory mapped outside `layout`, and of `layout` unmapped, seen so far.
    mutating func check(_ layout: CaptureLayout, against mappings: [ProcessMapping]) {
        outside = max(outside, layout.bytesOutside(mappings))
        unmapped = max(unmapped, layout.bytesUnmapped(mappings))
    }
}
