import ArgumentParser

/// The `fgbi` encoder's optional features, the same flags on `fgbi primary` and on the benchmarks that run
/// the encoder (`bench engine`, `bench replicate`, `bench lmdb`).
struct EncoderFeatureOptions: ParsableArguments {
    @Flag(
        name: .customLong("no-page-copies"),
        help: "fgbi: never send a written page that is a whole copy of another page as a page-copy record.")
    var noPageCopies = false

    @Flag(
        help: """
            fgbi: look for a block's bytes at any offset in content the backup holds or this epoch sent (moved \
            content), and send splices of them where shorter; costs encoder CPU (Docs/BENCHMARKS.md).
            """)
    var splicing = false

    @Option(
        name: .customLong("cached-capture-mib"),
        help: """
            Captures of whole pages up to this many MiB are copied with plain stores, which leave them in the \
            caches for the encoder; larger ones with streaming stores, past the caches. 0 streams every capture \
            (default: a quarter of the last-level cache).
            """)
    var cachedCaptureMiB: Int?

    /// ``EngineConfiguration/cachedCaptureBytes`` as the options ask: nil keeps the default.
    var cachedCaptureBytes: Int? { cachedCaptureMiB.map { $0 << 20 } }

    /// Checks the options' values.
    func validate() throws {
        if let cachedCaptureMiB, cachedCaptureMiB < 0 || cachedCaptureMiB > 1 << 20 {
            throw ValidationError("--cached-capture-mib must be between 0 and 1048576, not \(cachedCaptureMiB)")
        }
    }

    /// Whether written pages that are whole copies of others go as page-copy records.
    var pageCopies: Bool { !noPageCopies }
}
