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

    @Flag(
        name: .customLong("stream-captures"),
        help: """
            fgbi: copy every capture of whole pages with streaming stores, past the caches (default: captures up \
            to a quarter of the last-level cache are copied with plain stores, and the encoder reads them there).
            """)
    var streamCaptures = false

    /// ``EngineConfiguration/cachedCaptureBytes`` as the flags ask: nil keeps the default.
    var cachedCaptureBytes: Int? { streamCaptures ? 0 : nil }

    /// Whether written pages that are whole copies of others go as page-copy records.
    var pageCopies: Bool { !noPageCopies }
}
