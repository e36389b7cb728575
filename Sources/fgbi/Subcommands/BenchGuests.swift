import ArgumentParser
import FGBI
import FGBIBench

extension FGBICommand {
    /// `fgbi bench guests`: several guests in one primary process, one shared content index or one each.
    struct BenchGuests: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "guests",
            abstract: "Replicate several guests booted from one image, with a shared content index or one per guest.",
            discussion: """
                N guests start with identical memory (one image) and then write each from its own seed, one
                epoch's worth per round; each has its own primary and its own backup in this process over
                loopback, and after every round every backup is compared with its own guest. Variants: shared
                (one index, one budget of stored copies), separate (an index per guest, each with the whole
                budget), separate-split (an index per guest with 1/N of the budget: the shared index's memory).
                Reports primary metadata (block tables, indexes, stored copies), stored copies in use, bytes
                sent (synchronisation, then the rounds), pause and encode p50/p99 and, of the encode, the wait for
                the shared index's lock. Use a release build.
                Examples:
                  fgbi bench guests
                  fgbi bench guests --guests 3 --region-mib 64 --workload guest --epochs 40 --json
                """)

        @Option(help: "Guests.")
        var guests = 3

        @Option(help: "Comma-separated variants: shared, separate, separate-split.")
        var variants = "shared,separate,separate-split"

        @Option(help: "Workload: \(SyntheticWorkload.allCases.map(\.rawValue).joined(separator: ", ")).")
        var workload = "guest"

        @Option(name: .customLong("region-mib"), help: "Each guest's region, MiB.")
        var regionMiB = 64

        @Option(
            name: .customLong("pages-per-epoch"), help: "Pages (writes, for guest and zipf) each guest makes per round."
        )
        var pagesPerEpoch = 1024

        @Option(help: "Rounds of writes.")
        var epochs = 40

        @Option(name: .customLong("epoch-ms"), help: "The primaries' epoch interval, milliseconds.")
        var epochMilliseconds = 25

        @Option(
            name: .customLong("budget-mib"),
            help: "Stored copies' budget, MiB (the shared index's, or each separate index's).")
        var budgetMiB = 64

        @Option(help: "Seed of the image and the writes.")
        var seed: UInt64 = 2011

        @Flag(help: "Print JSON: one object per variant.")
        var json = false

        func validate() throws {
            guard (2...SharedContentIndex.maximumMembers / 2).contains(guests) else {
                throw ValidationError("--guests must be between 2 and \(SharedContentIndex.maximumMembers / 2)")
            }
            guard (1...4096).contains(regionMiB) else {
                throw ValidationError("--region-mib must be between 1 and 4096")
            }
            guard (1...4096).contains(budgetMiB) else {
                throw ValidationError("--budget-mib must be between 1 and 4096")
            }
            guard (1...100_000).contains(epochs) else { throw ValidationError("--epochs must be between 1 and 100000") }
            guard pagesPerEpoch > 0 else { throw ValidationError("--pages-per-epoch must be at least 1") }
            guard (1...10_000).contains(epochMilliseconds) else {
                throw ValidationError("--epoch-ms must be between 1 and 10000")
            }
            _ = try parsedVariants()
            do { _ = try SyntheticWorkload.parse(workload) } catch { throw ValidationError("--workload: \(error)") }
        }

        func parsedVariants() throws -> [GuestsBenchmark.Variant] {
            try CommaList.parse(variants, option: "--variants") { name in
                guard let variant = GuestsBenchmark.Variant(rawValue: name) else {
                    throw ValidationError(
                        "--variants: unknown variant '\(name)'; choose shared, separate, separate-split")
                }
                return variant
            }
        }

        func run() throws {
            var configuration = GuestsBenchmark.Configuration()
            configuration.guests = guests
            configuration.variants = try parsedVariants()
            configuration.workload = try SyntheticWorkload.parse(workload)
            configuration.regionMiB = regionMiB
            configuration.pagesPerEpoch = pagesPerEpoch
            configuration.epochs = epochs
            configuration.epochMilliseconds = epochMilliseconds
            configuration.budgetBytes = budgetMiB << 20
            configuration.seed = seed
            let runs = try GuestsBenchmark(configuration).run(progress: Progress.note)
            if json {
                print(try JSONOutput.encode(runs))
                return
            }
            func mib(_ bytes: Int) -> String { formatted(Double(bytes) / Double(1 << 20), 1) }
            var table = TextTable([
                "index", "budget MiB", "metadata MiB", "of it tables", "copies in use MiB", "entries",
                "sync MB", "epochs MB", "hits", "diffs", "literals", "pause p50 ms", "p99", "encode p50 ms", "p99",
                "lock wait p50", "p99", "verified",
            ])
            for r in runs {
                table.add([
                    r.variant, formatted(r.budgetMibPerIndex, 1) + (r.variant == "shared" ? "" : " x\(r.guests)"),
                    mib(r.metadataBytes),
                    mib(r.blockTableBytes), mib(r.storedCopyBytes), String(r.indexEntries),
                    formatted(Double(r.synchronisationBytes) / 1e6, 1), formatted(Double(r.epochBytes) / 1e6, 2),
                    String(r.sharedHits), String(r.diffBlocks), String(r.literalBlocks),
                    formatted(r.pauseMsP50, 3), formatted(r.pauseMsP99, 3), formatted(r.encodeMsP50, 3),
                    formatted(r.encodeMsP99, 3),
                    formatted(r.indexWaitMsP50, 3), formatted(r.indexWaitMsP99, 3), r.verified ? "yes" : "NO",
                ])
            }
            print(
                """
                \(guests) guests x \(regionMiB) MiB booted from one image, \(workload) workload, \(pagesPerEpoch) \
                pages per round, \(epochs) rounds
                """
            )
            print(table.rendered)
            if let shared = runs.first(where: { $0.variant == "shared" }), let attachments = shared.attachments {
                print(
                    """
                    shared index: \(attachments) additions used another guest's stored copy, \
                    \(shared.evictions ?? 0) copies evicted
                    """
                )
            }
        }
    }
}
