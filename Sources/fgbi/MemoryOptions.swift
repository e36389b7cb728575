import ArgumentParser
import FGBI

/// The memory layout options both ends must agree on.
struct MemoryOptions: ParsableArguments {
    @Option(name: .customLong("region-mib"), help: "Region size in MiB (the same on primary and backup).")
    var regionMiB = 64

    @Option(
        name: .customLong("block-size"),
        help: "Block size in bytes: 64, 128, 256, 512, 1024 or 4096 (the same on both ends).")
    var blockSize = 64

    @Option(
        name: .customLong("memory-file"),
        help:
            """
            Keep the region in this file (on tmpfs: /dev/shm/...), mapped shared, instead of anonymous memory: it \
            outlives the process, so a node restarted after a crash still holds it (fgbi backup --rejoin) and a \
            backup's replica can be taken over by a primary (fgbi backup --then-primary).
            """
    )
    var memoryFile: String?

    /// The region: anonymous memory, or the --memory-file (created private to its owner when missing), faulted
    /// in; and whether that file already held content (it existed and was not empty).
    func makeRegion() throws -> (region: GuestMemory, heldContent: Bool) {
        let length = regionMiB << 20
        guard let memoryFile else {
            let region = try GuestMemory.anonymous(length: length)
            try region.prefault()
            return (region, false)
        }
        let held = GuestMemory.fileHoldsContent(at: memoryFile)
        let region = try GuestMemory.file(path: memoryFile, length: length)
        try region.prefault()
        return (region, held)
    }

    func geometry() throws -> BlockGeometry {
        guard regionMiB > 0, regionMiB <= 1 << 20 else {
            throw ValidationError("--region-mib must be between 1 and 1048576")
        }
        do { return try BlockGeometry(blockSize: blockSize) } catch { throw ValidationError("--block-size: \(error)") }
    }
}
