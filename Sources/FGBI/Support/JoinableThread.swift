import CSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A dedicated OS thread that can be joined: for loops that block in the kernel (a userfaultfd fault
/// reader) and must not occupy a Swift concurrency worker.
package final class JoinableThread: @unchecked Sendable {
    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    private var handle: pthread_t
    private var joined = false

    /// Starts `body` on a new thread named `name` (at most 15 characters are kept, as Linux allows).
    package init(name: String, _ body: @escaping @Sendable () -> Void) throws(SystemError) {
        let threadName = String(name.prefix(15))
        let box = Unmanaged.passRetained(
            Body {
                CSupport_set_thread_name(threadName)
                body()
            }
        ).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, nil,
            { argument in
                let body = Unmanaged<Body>.fromOpaque(argument!).takeRetainedValue()
                body.run()
                return nil
            }, box)
        if rc != 0 {
            Unmanaged<Body>.fromOpaque(box).release()
            throw SystemError(
                operation: "pthread_create(\(name))", errno: rc, hint: "the process may be at its thread limit")
        }
        handle = thread
    }

    /// Waits for the thread to finish; later calls return at once.
    package func join() {
        guard !joined else { return }
        joined = true
        pthread_join(handle, nil)
    }

    deinit { join() }
}
