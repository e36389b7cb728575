import ArgumentParser
import FGBI

/// `--cached-capture-mib`, the same option on `fgbi primary`, `fgbi demo` and the benchmarks that run an encoder
/// (`bench engine`, `bench replicate`, `bench lmdb`): the largest capture of whole pages copied with plain stores
/// (``EngineConfiguration/cachedCaptureBytes``).
struct CachedCaptureOption: ParsableArguments {
    @Option(
        name: .customLong("cached-capture-mib"),
        help: """
            Captures of whole pages up to this many MiB are copied with plain stores, which leave them in the \
            caches for the encoder; larger ones with streaming stores, past the caches. 0 streams every capture \
            (default: a quarter of the last-level cache).
            """)
    var cachedCaptureMiB: Int?

    /// The option's limit in bytes; nil when it is not given (the library's default stands).
    var bytes: Int? { cachedCaptureMiB.map { $0 << 20 } }

    func validate() throws {
        if let cachedCaptureMiB, cachedCaptureMiB < 0 || cachedCaptureMiB > 1 << 20 {
            throw ValidationError("--cached-capture-mib must be between 0 and 1048576, not \(cachedCaptureMiB)")
        }
    }
}
