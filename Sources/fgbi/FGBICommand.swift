import ArgumentParser
import FGBI

/// `fgbi`: the FGBI replicator's command line.
@main
struct FGBICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fgbi",
        abstract: "FGBI: fine-grained block identification memory replication, with kernel dirty tracking.",
        discussion: """
            Start with `fgbi probe` to see what this kernel offers, then `fgbi demo`.
            Examples:
              fgbi probe --json
              fgbi bench tracker --region-mib 1024
              fgbi demo --tracker uffd-sync
            """,
        version: FGBIVersion.current,
        subcommands: [Probe.self, Demo.self, PrimaryCommand.self, BackupCommand.self, Bench.self]
    )
}
