#if canImport(Glibc)
    import Glibc
#endif

/// Facts about the machine, without Foundation.
enum ProcessInfoLite {
    /// Processors available to this process.
    static var activeProcessorCount: Int { max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1) }

    /// Bytes of the highest-level data or unified cache of CPU 0, as the kernel describes it
    /// (`/sys/devices/system/cpu/cpu0/cache`); nil when it describes none. (The C library's
    /// `_SC_LEVEL3_CACHE_SIZE` is no substitute: under this project's hypervisor it reported 320 MiB for a
    /// 32 MiB cache.) Read once.
    static let lastLevelCacheBytes: Int? = {
        var best: (level: Int, bytes: Int)?
        for index in 0..<8 {
            let directory = "/sys/devices/system/cpu/cpu0/cache/index\(index)"
            guard let level = (try? KernelFile.text(directory + "/level")).flatMap({ Int(trimmed($0)) }),
                let type = try? KernelFile.text(directory + "/type"), trimmed(type) != "Instruction",
                let bytes = (try? KernelFile.text(directory + "/size")).flatMap({ cacheSize(trimmed($0)) })
            else { continue }
            if best == nil || level > best!.level { best = (level, bytes) }
        }
        return best?.bytes
    }()

    /// A cache size as sysfs writes it ("32768K", "1M", "512"), in bytes.
    static func cacheSize(_ text: String) -> Int? {
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        guard let last = text.last else { return nil }
        guard let unit = units[last] else { return Int(text).flatMap { $0 > 0 ? $0 : nil } }
        return Int(text.dropLast()).flatMap { $0 > 0 ? $0 * unit : nil }
    }

    private static func trimmed(_ text: String) -> String { text.trimmingSuffix { $0 == "\n" || $0 == " " } }
}
