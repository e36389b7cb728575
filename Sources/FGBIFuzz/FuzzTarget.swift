import FGBI
import FGBIBench
import FGBILab
import Foundation

/// The decoders `fgbi-fuzz` exercises, by the names its command line and `FGBI_FUZZ_TARGET` use.
enum FuzzTarget: String, CaseIterable {
    /// The wire: frame headers, authentication codes, sequence numbers, encryption.
    case frame
    /// Epoch deltas applied to a replica (with the refused-changes-nothing and roll-back checks).
    case delta
    /// The handshake's hello and welcome.
    case handshake
    /// A backup's page-hash summary frames.
    case summary
    /// A trace directory: its images' sizes and its trace.json.
    case trace

    /// Runs one input; must not crash whatever it holds.
    func run(_ input: UnsafeRawBufferPointer) {
        switch self {
        case .frame: FuzzEntryPoints.frameStream(input)
        case .delta: Self.deltaFuzzer.apply(input)
        case .handshake: FuzzEntryPoints.handshake(input)
        case .summary: FuzzEntryPoints.summary(input)
        case .trace: TraceDirectoryFuzzing.run(input)
        }
    }

    // One replica for the whole run, as a backup has: accepted deltas move it on from epoch to epoch.
    nonisolated(unsafe) static let deltaFuzzer: DeltaFuzzer = {
        do { return try DeltaFuzzer() } catch { fatalError("cannot map the fuzz replica: \(error)") }
    }()
}
