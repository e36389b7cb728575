#if canImport(Glibc)
    import Glibc
#endif

/// Facts about the machine, without Foundation.
enum ProcessInfoLite {
    /// Processors available to this process.
    static var activeProcessorCount: Int { max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1) }
}
