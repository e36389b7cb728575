import ArgumentParser
import FGBI
import FGBIDiagnostics
import Foundation

extension FGBICommand {
    /// `fgbi probe`: what the kernel offers and which tracker backends will work.
    struct Probe: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Report kernel features FGBI uses and which tracker backends work here.",
            discussion: """
                Checks userfaultfd and each of its features, PAGEMAP_SCAN, the io_uring opcodes FGBI sends with,
                /dev/kvm, and from these whether each tracker backend works for anonymous and memfd regions.
                Examples:
                  fgbi probe
                  fgbi probe --json | jq '.trackers'
                """)

        @Flag(help: "Print JSON instead of text.")
        var json = false

        func run() throws {
            let report = CapabilityReport()
            if json {
                print(try JSONOutput.encode(report))
            } else {
                print(report.text)
            }
        }
    }
}
