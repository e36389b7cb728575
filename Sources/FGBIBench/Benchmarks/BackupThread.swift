import FGBI
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A ``Backup`` serving on a thread of its own, whose CPU time can be read while it runs (the thread's CPU
/// clock), so a benchmark can charge the backup's work apart from the primary's in one process.
final class BackupThread: @unchecked Sendable {
    private let lock = NSLock()
    private var handle: pthread_t?
    private var outcome: Result<BackupOutcome, Error>?
    private let started = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private var joined = false

    /// Starts `backup.serve()` and returns once the thread runs.
    init(_ backup: Backup) {
        Thread.detachNewThread { [self] in
            lock.withLock { handle = pthread_self() }
            started.signal()
            let result = Result { try backup.serve() }
            let cpu = MonotonicClock.threadCPUNanoseconds()
            lock.withLock {
                finalCPU = cpu
                outcome = result
                handle = nil
            }
            finished.signal()
        }
        started.wait()
    }

    private var finalCPU: UInt64 = 0

    /// CPU time the serving thread has used so far (all of it once it has finished).
    func cpuNanoseconds() -> UInt64 {
        lock.withLock {
            guard let handle else { return finalCPU }
            var clock = clockid_t()
            guard pthread_getcpuclockid(handle, &clock) == 0 else { return finalCPU }
            return MonotonicClock.nanoseconds(of: clock)
        }
    }

    /// Waits until `serve()` has returned; later calls return at once.
    func join() {
        guard !lock.withLock({ joined }) else { return }
        finished.wait()
        lock.withLock { joined = true }
    }

    /// Throws what `serve()` threw, once it has returned.
    func rethrow() throws {
        if case .failure(let error)? = lock.withLock({ outcome }) { throw error }
    }
}
