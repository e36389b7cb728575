import CSupport
import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The threads that capture an epoch beside the checkpoint thread while the guest is paused.
///
/// They sleep between epochs. Either the calling thread works beside them (helpers left to the scheduler),
/// or the helpers are pinned to the CPUs the paused guest leaves idle (its vCPUs' CPUs,
/// ``EngineConfiguration/captureCPUs``) and do all of the work while the caller waits: the guest's pages
/// are then read by the cores whose caches hold them, and stay there, not shared with a replication core
/// that the guest's next write would have to take them back from. Work goes out in chunks taken from a
/// shared counter: a thread on a busy CPU takes fewer of them, and the pause ends when the last chunk is
/// done. The `fgbi` encoder's helpers are a crew too (``ParallelBlockDeltaEncoder``), unpinned and at
/// normal priority, as they work while the guest runs.
final class CaptureCrew: @unchecked Sendable {
    /// What the helpers share with the calling thread; they hold it, not the crew, so the crew's deinit can
    /// stop them.
    private final class Board: @unchecked Sendable {
        let wake: [DispatchSemaphore]
        let finished = DispatchSemaphore(value: 0)
        /// Helpers done with the current work; the caller spins on it before it sleeps on `finished`.
        let helpersDone = Atomic<Int>(0)
        let nextChunk = Atomic<Int>(0)
        /// The work of the ``perform(chunks:_:)`` in progress; written only while every helper sleeps.
        var job: ((_ chunk: Int, _ participant: Int) -> Void)?
        var chunkCount = 0
        var stopping = false

        init(helpers: Int) { wake = (0..<helpers).map { _ in DispatchSemaphore(value: 0) } }

        func serve(_ helper: Int) {
            while true {
                wake[helper].wait()
                if stopping { return }
                work(as: helper + 1)
                helpersDone.add(1, ordering: .releasing)
                finished.signal()
            }
        }

        func work(as participant: Int) {
            guard let job else { return }
            while true {
                let chunk = nextChunk.wrappingAdd(1, ordering: .relaxed).oldValue
                guard chunk < chunkCount else { return }
                job(chunk, participant)
            }
        }
    }

    private let board: Board
    private var helpers: [JoinableThread] = []
    /// Whether the calling thread takes chunks too.
    let callerWorks: Bool

    /// The threads that take chunks: the helpers, and the calling thread when it works.
    var participants: Int { board.wake.count + (callerWorks ? 1 : 0) }

    /// Starts `helperCount` helper threads, each under SCHED_FIFO at `realtimePriority` when given. With
    /// `cpus` empty the helpers are left to the scheduler and the calling thread works beside them; otherwise
    /// helper `k` is pinned to CPU `cpus[k % cpus.count]` and the helpers do all the work (at least one).
    /// The threads are named `fgbi-<role>-<k>`.
    ///
    /// - Throws: ``SystemError`` when a thread cannot start, a CPU cannot be chosen (one not online), or
    ///   the priority is not allowed.
    init(helpers requested: Int, cpus: [Int], realtimePriority: Int? = nil, role: String = "capture")
        throws(SystemError)
    {
        callerWorks = cpus.isEmpty
        let helperCount = cpus.isEmpty ? requested : max(requested, 1)
        let board = Board(helpers: helperCount)
        self.board = board
        let started = DispatchSemaphore(value: 0)
        let setUp = Mutex<SystemError?>(nil)
        for helper in 0..<helperCount {
            let cpu = cpus.isEmpty ? nil : cpus[helper % cpus.count]
            let thread: JoinableThread
            do {
                thread = try JoinableThread(name: "fgbi-\(role)-\(helper + 1)") {
                    do throws(SystemError) {
                        if let cpu { try ThreadScheduling.pinCallingThread(to: [cpu], thread: "capture thread") }
                        if let realtimePriority {
                            try ThreadScheduling.enterRealtime(priority: realtimePriority, thread: "capture thread")
                        }
                    } catch {
                        setUp.withLock { $0 = $0 ?? error }
                    }
                    started.signal()
                    board.serve(helper)
                }
            } catch {
                stop()
                throw error
            }
            helpers.append(thread)
        }
        for _ in 0..<helperCount { started.wait() }
        if let failure = setUp.withLock({ $0 }) {
            stop()
            throw failure
        }
    }

    deinit { stop() }

    /// How long the caller spins for the helpers to finish before it sleeps: a sleeping caller is woken by
    /// the scheduler, which on a busy CPU of a kernel without preemption (PREEMPT_NONE) takes up to a tick,
    /// and the guest stays paused that long. Long enough for the capture of tens of thousands of pages.
    static let spinNanoseconds: UInt64 = 50_000_000

    /// Calls `body(chunk, participant)` once for every chunk in `0..<chunks`, on the helpers (participants
    /// 1...) and, when it works, the calling thread (participant 0), and returns when every chunk is done.
    /// Chunks run in no particular order; a participant runs its chunks one after another. Not reentrant:
    /// one caller at a time.
    func perform(chunks: Int, _ body: (_ chunk: Int, _ participant: Int) -> Void) {
        guard !helpers.isEmpty, chunks > 1 || !callerWorks else {
            for chunk in 0..<chunks { body(chunk, 0) }
            return
        }
        withoutActuallyEscaping(body) { body in
            board.job = body
            board.chunkCount = chunks
            board.nextChunk.store(0, ordering: .relaxed)
            board.helpersDone.store(0, ordering: .relaxed)
            for semaphore in board.wake { semaphore.signal() }
            if callerWorks { board.work(as: 0) }
            let start = MonotonicClock.nanoseconds()
            // Yielding while it spins: a helper may share this CPU (left to the scheduler, or at the same
            // realtime priority) and must not wait for the spin to end.
            while board.helpersDone.load(ordering: .acquiring) < helpers.count,
                MonotonicClock.nanoseconds() - start < Self.spinNanoseconds
            { sched_yield() }
            for _ in helpers { board.finished.wait() } // at once when they are done: balances the signals
            board.job = nil
        }
    }

    private func stop() {
        board.stopping = true
        for semaphore in board.wake.prefix(helpers.count) { semaphore.signal() }
        for helper in helpers { helper.join() }
        helpers = []
    }
}
