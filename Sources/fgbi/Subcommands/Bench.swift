import ArgumentParser

extension FGBICommand {
    /// `fgbi bench`: the benchmark programs. Each prints a table, or JSON with `--json`.
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a benchmark; each prints a table, or JSON with --json. Use a release build.",
            subcommands: [
                BenchFloor.self, BenchTracker.self, BenchEngine.self, BenchReplicate.self, BenchPause.self,
                BenchSend.self, BenchSync.self, BenchLMDB.self, BenchKVMTracking.self, BenchSoak.self, BenchGuests.self,
                BenchFailover.self, BenchBackups.self,
            ]
        )
    }
}
