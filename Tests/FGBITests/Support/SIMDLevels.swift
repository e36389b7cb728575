import CSupport

/// The instruction sets the shim's sparse form and 64-byte block forms run on (`CSUPPORT_SIMD_*`) that this CPU
/// has, from the portable loops up: tests run those forms at each, so the CPU's own path and every path below it
/// are checked against the same expectations.
enum SIMDLevels {
    static let available: [Int32] = Array(0...CSupport_sparse_best_level())

    /// Runs `body` with the shim's forms at `level`, then restores the level in use before. Every level writes
    /// the same bytes, so a test running meanwhile on another thread sees no difference.
    static func at<T>(_ level: Int32, _ body: () throws -> T) rethrows -> T {
        let was = CSupport_sparse_select_level(level)
        defer { _ = CSupport_sparse_select_level(was) }
        return try body()
    }
}
