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

    @OptionGroup var cachedCapture: CachedCaptureOption

    /// ``EngineConfiguration/cachedCaptureBytes`` as the options ask: nil keeps the default.
    var cachedCaptureBytes: Int? { cachedCapture.bytes }

    /// Whether written pages that are whole copies of others go as page-copy records.
    var pageCopies: Bool { !noPageCopies }
}
