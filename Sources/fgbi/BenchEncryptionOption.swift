import ArgumentParser

/// `--encrypt` on the benchmarks that run a primary and a backup in one process over loopback (`bench
/// replicate`, `bench lmdb`), where frames otherwise go in clear: what protecting them costs, measured.
struct BenchEncryptionOption: ParsableArguments {
    @Flag(
        help: """
            Encrypt every frame (ChaCha20-Poly1305) with a key made for each run, as off loopback: its CPU \
            counts on both sides.
            """)
    var encrypt = false
}
