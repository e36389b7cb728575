#if canImport(Glibc)
    import Glibc
#endif

/// A value guarded by a pthread mutex: the library's lock for state shared between threads. It does what
/// `Synchronization.Mutex` does, but ThreadSanitizer models pthread mutexes and not the futex behind `Mutex`,
/// whose every guarded access from two threads it reports as a race (Docs/RELIABILITY.md); with this lock
/// the sanitizer's reports mean something.
final class PthreadLock<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }

    /// Runs `body` if the lock is free now; nil (without waiting) if another thread holds it.
    func withLockIfAvailable<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result? {
        guard pthread_mutex_trylock(mutex) == 0 else { return nil }
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
