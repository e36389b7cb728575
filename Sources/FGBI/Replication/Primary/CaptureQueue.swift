import Dispatch

/// The primary's capture buffers and the queue between the checkpoint and the sender: a fixed number of
/// ``EpochCapture``s go round (free, captured, encoded and sent, free again), so a sender that falls behind
/// makes the next checkpoint wait (backpressure) instead of memory growing.
final class CaptureQueue: @unchecked Sendable {
    private struct State {
        var free: [EpochCapture]
        /// The most items and arena bytes an epoch (not a pre-copy step) has captured: captures are grown to
        /// more than that when released.
        var largestEpoch = (items: 0, bytes: 0)
        var ready: [EpochCapture] = []
        var senderShouldExit = false

        /// Counts an epoch of `items` items and `bytes` arena bytes into ``largestEpoch``, and returns it.
        mutating func noteEpoch(items: Int, bytes: Int) -> (items: Int, bytes: Int) {
            largestEpoch = (max(largestEpoch.items, items), max(largestEpoch.bytes, bytes))
            return largestEpoch
        }
    }

    /// Makes room in `capture` for an epoch half again as large as `largest` (nothing when none is known yet, or
    /// when it has the room already).
    private static func makeRoom(in capture: EpochCapture, for largest: (items: Int, bytes: Int)) {
        guard largest.items > 0 else { return }
        capture.reserve(items: largest.items * 3 / 2, arenaBytes: largest.bytes * 3 / 2)
    }

    private let state: PthreadLock<State>
    private let freeCount: DispatchSemaphore
    private let readyCount = DispatchSemaphore(value: 0)

    /// `buffers` captures, each listing the pages it found unchanged when `recordsUnchangedPages`.
    init(buffers: Int, recordsUnchangedPages: Bool) {
        state = PthreadLock(
            State(
                free: (0..<buffers).map { _ in
                    let capture = EpochCapture()
                    capture.recordsUnchangedPages = recordsUnchangedPages
                    return capture
                }))
        // Created at zero and signalled up: libdispatch traps when a semaphore is freed below its initial
        // value, which happens when replication stops with captures still in flight.
        freeCount = DispatchSemaphore(value: 0)
        for _ in 0..<buffers { freeCount.signal() }
    }

    /// A free capture. When none is free, calls `waiting` once and waits, checking `failure` every 20 ms: a
    /// failure it returns is thrown.
    func acquire(waiting: () -> Void, failure: () -> Error?) throws -> EpochCapture {
        if freeCount.wait(timeout: .now()) == .timedOut {
            waiting()
            while freeCount.wait(timeout: .now() + .milliseconds(20)) == .timedOut {
                if let failure = failure() { throw failure }
            }
        }
        return state.withLock { $0.free.removeLast() }
    }

    /// Returns `capture` to the free list. An epoch's capture (not a pre-copy step, nor a pass over all
    /// `totalPages`) first makes room for an epoch half again as large as the largest so far (or as
    /// ``expectEpochs(ofPages:pageSize:)`` expects), and so does any capture once an epoch size is known: made
    /// while the guest runs, since growing in the pause would reallocate and fault in fresh memory there.
    func release(_ capture: EpochCapture, totalPages: Int) {
        let isEpoch = !capture.isPrecopy && capture.pagesWritten < totalPages
        let largest = state.withLock { state in
            isEpoch ? state.noteEpoch(items: capture.count, bytes: capture.arenaBytesUsed) : state.largestEpoch
        }
        Self.makeRoom(in: capture, for: largest)
        state.withLock { $0.free.append(capture) }
        freeCount.signal()
    }

    /// Makes room, in the free captures now and in the others as they are released, for epochs of about
    /// `pages` whole pages of `pageSize` bytes (half again as many): what the synchronisation's last pre-copy
    /// round says an epoch will write, so the first epochs after it can stage their pages whole (the copy
    /// capture) without faulting in fresh memory while the guest is paused. Call it while the guest runs, from
    /// the thread that acquires captures (no free one is taken meanwhile).
    func expectEpochs(ofPages pages: Int, pageSize: Int) {
        let (free, largest) = state.withLock { state in
            (state.free, state.noteEpoch(items: pages, bytes: pages * pageSize))
        }
        for capture in free { Self.makeRoom(in: capture, for: largest) }
    }

    /// Queues a filled capture for the sender.
    func enqueue(_ capture: EpochCapture) {
        state.withLock { $0.ready.append(capture) }
        readyCount.signal()
    }

    /// The next queued capture, waiting for one; nil once ``stopSender()`` was called and nothing is queued.
    func nextReady() -> EpochCapture? {
        while true {
            readyCount.wait()
            let next = state.withLock { state -> (EpochCapture?, Bool) in
                (state.ready.isEmpty ? nil : state.ready.removeFirst(), state.senderShouldExit)
            }
            if let capture = next.0 { return capture }
            if next.1 { return nil }
        }
    }

    /// Makes ``nextReady()`` return nil once the queue is empty (the sender ends).
    func stopSender() {
        state.withLock { $0.senderShouldExit = true }
        readyCount.signal()
    }

    /// After the sender ended with a session: captures still queued go back to the free list (a new session
    /// resynchronises what they held), and the next sender may start.
    func recycleQueued() {
        let dropped = state.withLock { state -> Int in
            let count = state.ready.count
            state.free.append(contentsOf: state.ready)
            state.ready.removeAll()
            state.senderShouldExit = false
            return count
        }
        for _ in 0..<dropped { freeCount.signal() }
    }
}
