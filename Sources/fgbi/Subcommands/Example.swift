import ArgumentParser

extension FGBICommand {
    /// `fgbi example`: real guests replicated end to end, each with a failover at the end.
    struct Example: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replicate a real guest end to end and fail over to it: an LMDB database, a KVM guest.",
            subcommands: [ExampleLMDB.self, ExampleKVM.self]
        )
    }
}
