import ArgumentParser
import FGBI

/// `--cache-mib`, the same option on `fgbi primary` and on the benchmarks that run an encoder (`bench engine`,
/// `bench replicate`, `bench lmdb`): memory for the `fgbi` content index's stored copies, or for the `xbzrle`
/// page cache (``EngineConfiguration/contentBudgetBytes``, ``EngineConfiguration/pageCacheBudgetBytes``).
struct CacheBudgetOption: ParsableArguments {
    @Option(
        name: .customLong("cache-mib"),
        help: """
            Memory for the fgbi content index's stored copies (the bases of differences and shared blocks) or \
            the xbzrle page cache, MiB (default: 64; Docs/BENCHMARKS.md has bytes and CPU against it).
            """
    )
    var cacheMiB: Int?

    /// The budget in MiB: the option's, or the library's default.
    var mebibytes: Int { cacheMiB ?? EngineConfiguration().contentBudgetBytes >> 20 }

    /// The option's budget in bytes; nil when it is not given (the library's default stands).
    var budgetBytes: Int? { cacheMiB.map { $0 << 20 } }

    func validate() throws {
        if let cacheMiB, !(1...65_536).contains(cacheMiB) {
            throw ValidationError("--cache-mib must be between 1 and 65536")
        }
    }
}
