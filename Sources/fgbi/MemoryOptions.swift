import ArgumentParser
import FGBI

/// The memory layout options both ends must agree on.
struct MemoryOptions: ParsableArguments {
    @Option(name: .customLong("region-mib"), help: "Region size in MiB (the same on primary and backup).")
    var regionMiB = 64

    @Option(name: .customLong("block-size"), help: "Block size in bytes: 64, 128, 256, 512, 1024 or 4096 (the same on both ends).")
    var blockSize = 64

    func geometry() throws -> BlockGeometry {
        guard regionMiB > 0, regionMiB <= 1 << 20 else { throw ValidationError("--region-mib must be between 1 and 1048576") }
        do { return try BlockGeometry(blockSize: blockSize) } catch { throw ValidationError("--block-size: \(error)") }
    }
}
