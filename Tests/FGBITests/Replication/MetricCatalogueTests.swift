import FGBI
import Foundation
import Testing

/// The metric catalogue: names per the Prometheus conventions, and HELP lines added to a text exposition.
@Suite("Metric catalogue")
struct MetricCatalogueTests {
    @Test func namesFollowThePrometheusConventions() {
        let all = MetricCatalogue.primary + MetricCatalogue.backup
        #expect(Set(all.map(\.name)).count == all.count, "names are unique")
        for entry in all {
            #expect(
                entry.name.hasPrefix(MetricCatalogue.primary.contains(entry) ? "fgbi_primary_" : "fgbi_backup_"),
                "\(entry.name)")
            #expect(entry.name.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" }, "\(entry.name) is snake_case")
            #expect(
                entry.name.hasSuffix("_total") == (entry.kind == .counter), "\(entry.name): only counters end in _total"
            )
            if entry.kind == .histogram { #expect(entry.name.hasSuffix("_seconds"), "\(entry.name) is in seconds") }
            #expect(!entry.help.isEmpty && !entry.help.contains("\n"), "\(entry.name) has one line of help")
        }
    }

    @Test func helpLinesGoBeforeTheTypeLinesOfKnownMetricsOnly() {
        let exposition = """
            # TYPE fgbi_backup_epochs_applied_total counter
            fgbi_backup_epochs_applied_total 3
            # HELP fgbi_backup_last_epoch already here
            # TYPE fgbi_backup_last_epoch gauge
            fgbi_backup_last_epoch 2.0
            # TYPE someone_elses counter
            someone_elses 1

            """
        let helped = MetricCatalogue.addingHelp(to: exposition)
        #expect(
            helped == """
                # HELP fgbi_backup_epochs_applied_total Epochs applied whole to the replica and acknowledged.
                # TYPE fgbi_backup_epochs_applied_total counter
                fgbi_backup_epochs_applied_total 3
                # HELP fgbi_backup_last_epoch already here
                # TYPE fgbi_backup_last_epoch gauge
                fgbi_backup_last_epoch 2.0
                # TYPE someone_elses counter
                someone_elses 1

                """)
        #expect(MetricCatalogue.addingHelp(to: "") == "")
    }

    @Test func theOperationsGuideListsEveryMetric() throws {
        let guide = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Docs/OPERATIONS.md")
        let text = try String(contentsOf: guide, encoding: .utf8)
        for entry in MetricCatalogue.primary + MetricCatalogue.backup {
            #expect(
                text.contains("| `\(entry.name)` | \(entry.kind.rawValue) | \(entry.help) |"),
                "Docs/OPERATIONS.md lists \(entry.name) as the catalogue says")
        }
    }
}
