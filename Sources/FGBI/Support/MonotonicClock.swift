#if canImport(Glibc)
    import Glibc
#endif

/// CLOCK_MONOTONIC in nanoseconds: for stage timings, cheap enough to call per stage.
package enum MonotonicClock {
    @inline(__always)
    public static func nanoseconds() -> UInt64 { nanoseconds(of: CLOCK_MONOTONIC) }

    /// The reading of `clock` in nanoseconds: any POSIX clock, such as another thread's CPU clock from
    /// pthread_getcpuclockid.
    @inline(__always)
    public static func nanoseconds(of clock: clockid_t) -> UInt64 {
        var now = timespec()
        clock_gettime(clock, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    /// CPU time the calling thread has used, in nanoseconds (CLOCK_THREAD_CPUTIME_ID).
    public static func threadCPUNanoseconds() -> UInt64 { nanoseconds(of: CLOCK_THREAD_CPUTIME_ID) }

    /// CPU time the whole process has used, every thread, in nanoseconds (CLOCK_PROCESS_CPUTIME_ID).
    public static func processCPUNanoseconds() -> UInt64 { nanoseconds(of: CLOCK_PROCESS_CPUTIME_ID) }

    /// CPU time the calling thread has used, in seconds.
    public static func threadCPUSeconds() -> Double { Double(threadCPUNanoseconds()) / 1e9 }

    /// Sleeps the calling thread for `nanoseconds`, resuming after signals.
    public static func sleep(nanoseconds: UInt64) {
        var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}

/// Conversions the package's targets share (package access: not part of the library's API).
extension Duration {
    /// The duration in whole milliseconds (rounded down), as socket timeouts and command lines take it.
    package var wholeMilliseconds: Int {
        Int(components.seconds) * 1000 + Int(components.attoseconds / 1_000_000_000_000_000)
    }

    /// The duration in whole nanoseconds, as ``MonotonicClock`` counts.
    package var wholeNanoseconds: UInt64 {
        UInt64(components.seconds) * 1_000_000_000 + UInt64(components.attoseconds / 1_000_000_000)
    }
}
