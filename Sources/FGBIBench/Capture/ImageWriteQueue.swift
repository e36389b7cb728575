import FGBI
import Foundation

/// Writes a capture's images on a thread of its own, so a snapshot waits for the disk only when the
/// images not yet written fill the memory budget: a capture of a large process stays on its interval while
/// the page cache and the disk catch up.
///
/// The capture takes a buffer with ``buffer()``, fills it and hands it back with ``submit(_:)``; the thread
/// appends the images in submission order with ``TraceDirectoryWriter`` and recycles the buffers.
final class ImageWriteQueue: @unchecked Sendable {
    private let writer: TraceDirectoryWriter
    private let imageBytes: Int
    private let maxBuffers: Int
    // Guarded by `condition`.
    private let condition = NSCondition()
    private var pending: [UnsafeMutableRawBufferPointer] = []
    private var spare: [UnsafeMutableRawBufferPointer] = []
    private var allocated = 0
    private var closing = false
    private var running = true
    private var failure: TraceError?
    private var writesMs: [Double] = []

    /// Starts the writer thread. At most `budgetBytes / imageBytes` buffers (at least 2) exist at once.
    init(writer: TraceDirectoryWriter, imageBytes: Int, budgetBytes: Int) {
        self.writer = writer
        self.imageBytes = imageBytes
        self.maxBuffers = max(2, budgetBytes / max(imageBytes, 1))
        let thread = Thread { [self] in self.run() }
        thread.name = "fgbi-image-writer"
        thread.start()
    }

    /// A buffer of `imageBytes` to fill: a recycled one, a new one within the budget, or, when every buffer
    /// waits to be written, the next one the thread frees (the caller is then late).
    func buffer() throws(TraceError) -> UnsafeMutableRawBufferPointer {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let failure { throw failure }
            if let buffer = spare.popLast() { return buffer }
            if allocated < maxBuffers {
                allocated += 1
                return .allocate(byteCount: imageBytes, alignment: GuestMemory.pageSize)
            }
            condition.wait()
        }
    }

    /// Queues `buffer` (from ``buffer()``) as the next image.
    func submit(_ buffer: UnsafeMutableRawBufferPointer) throws(TraceError) {
        condition.lock()
        defer { condition.unlock() }
        if let failure { throw failure }
        pending.append(buffer)
        condition.broadcast()
    }

    /// Returns a buffer from ``buffer()`` unused.
    func giveBack(_ buffer: UnsafeMutableRawBufferPointer) {
        condition.lock()
        defer { condition.unlock() }
        spare.append(buffer)
        condition.broadcast()
    }

    /// Images submitted but not written yet.
    var backlog: Int {
        condition.lock()
        defer { condition.unlock() }
        return pending.count
    }

    /// Waits until every submitted image is written, stops the thread and frees the buffers. Returns each
    /// image's write time in milliseconds; throws the first write failure.
    func finish() throws(TraceError) -> [Double] {
        condition.lock()
        closing = true
        condition.broadcast()
        while running { condition.wait() }
        for buffer in spare + pending { buffer.deallocate() }
        spare = []
        pending = []
        let result = (writesMs, failure)
        condition.unlock()
        if let failure = result.1 { throw failure }
        return result.0
    }

    private func run() {
        condition.lock()
        while true {
            while pending.isEmpty && !closing { condition.wait() }
            if pending.isEmpty || failure != nil { break }
            let buffer = pending.removeFirst()
            condition.unlock()
            let start = MonotonicClock.nanoseconds()
            var error: TraceError?
            do { try writer.append(UnsafeRawBufferPointer(buffer)) } catch let failed { error = failed }
            let elapsed = Double(MonotonicClock.nanoseconds() - start) / 1e6
            condition.lock()
            writesMs.append(elapsed)
            spare.append(buffer)
            if let error { failure = error }
            condition.broadcast()
        }
        running = false
        condition.broadcast()
        condition.unlock()
    }
}
