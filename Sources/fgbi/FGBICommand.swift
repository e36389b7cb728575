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
        subcommands: [
            Probe.self, Demo.self, PrimaryCommand.self, BackupCommand.self, Bench.self, Trace.self, Example.self,
        ]
    )

    /// Parses the command line with `--config FILE` (or `FGBI_CONFIG`) spliced in (``ConfigFile``), then runs.
    static func main() {
        if let problem = FaultPoints.environmentProblem { exit(withError: ValidationError("\(problem)")) }
        let arguments: [String]
        do {
            arguments = try ConfigFile.expand(Array(CommandLine.arguments.dropFirst()))
        } catch {
            exit(withError: ValidationError("\(error)"))
        }
        main(arguments)
    }
}
