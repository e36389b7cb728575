import FGBI
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A ``Backup`` serving on a thread of its own, whose CPU time can be read while it runs (the thread's CPU
/// clock), so a benchmark can charge the backup's work apart from the primary's in one process.
public final class BackupThread: @unchecked Sendable {
    private let lock = NSLock()
    private var handle: pthread_t?
    private var outcome: Result<BackupOutcome, Error>?
    private let started = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private var joined = false
    private let backup: Backup

    /// Starts `backup.serve()` and returns once the thread runs; `onStart` runs first on that thread (to set
    /// its priority, say).
    public init(_ backup: Backup, onStart: @escaping @Sendable () -> Void = {}) {
        self.backup = backup
        Thread.detachNewThread { [self] in
            onStart()
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
    public func cpuNanoseconds() -> UInt64 {
        lock.withLock {
            guard let handle else { return finalCPU }
            var clock = clockid_t()
            guard pthread_getcpuclockid(handle, &clock) == 0 else { return finalCPU }
            return MonotonicClock.nanoseconds(of: clock)
        }
    }

    /// Waits until `serve()` has returned; later calls return at once.
    public func join() {
        guard !lock.withLock({ joined }) else { return }
        finished.wait()
        lock.withLock { joined = true }
    }

    /// Waits until `serve()` has returned, up to `timeout`; false when it is still serving.
    public func join(timeout: Duration) -> Bool {
        guard !lock.withLock({ joined }) else { return true }
        guard finished.wait(timeout: .now() + .nanoseconds(Int(timeout.wholeNanoseconds))) == .success else {
            return false
        }
        lock.withLock { joined = true }
        return true
    }

    /// What `serve()` returned, or its error; waits for it.
    public func result() throws -> BackupOutcome {
        join()
        switch lock.withLock({ outcome }) {
        case .success(let outcome)?: return outcome
        case .failure(let error)?: throw error
        case nil: preconditionFailure("serve() finished without an outcome")
        }
    }

    /// What `serve()` returned, or its error, waiting at most `timeout`: a backup still serving then (its
    /// primary never came, or never finished) is stopped, and the wait ends with an error saying so, so a
    /// test whose primary failed to start reports that instead of waiting forever.
    public func result(within timeout: Duration) throws -> BackupOutcome {
        guard join(timeout: timeout) else {
            backup.stop()
            join()
            throw BenchmarkError(
                """
                the backup on port \(backup.port) was still serving after \(timeout.wholeMilliseconds / 1000) s: \
                stopped it
                """
            )
        }
        return try result()
    }

    /// Throws what `serve()` threw, once it has returned.
    public func rethrow() throws {
        if case .failure(let error)? = lock.withLock({ outcome }) { throw error }
    }
}
