import Testing

@testable import FGBI
@testable import FGBIBench

/// `bench replicate --encrypt`: the same pipeline with every frame encrypted under a key made for the run,
/// and that key's source.
@Suite("Encrypted benchmark runs")
struct EncryptedBenchmarkTests {
    @Test func randomKeysAreFullLengthAndNeverRepeat() {
        let keys = (0..<8).map { _ in PresharedKey.random() }
        for key in keys { #expect(key.key.bytes.count == PresharedKey.minimumBytes) }
        #expect(Set(keys.map(\.key.bytes)).count == keys.count)
        #expect(keys.allSatisfy { $0.key.bytes.contains { $0 != 0 } })
    }

    /// The backup requires encryption, so a run that completes and verifies sent every frame encrypted.
    @Test func anEncryptedReplicateRunIsVerifiedAndSaysSo() throws {
        var configuration = ReplicateBenchmark.Configuration()
        configuration.sources = [.workload(.sparse)]
        configuration.modes = [.fgbi, .page]
        configuration.epochs = 3
        configuration.pagesPerEpoch = 64
        configuration.regionMiB = 4
        configuration.tracker = Kernel.preferredTracker
        configuration.encrypt = true
        let runs = try ReplicateBenchmark(configuration).run(progress: { _ in })
        #expect(runs.count == 2)
        for run in runs {
            #expect(run.encrypted, "\(run.mode)")
            #expect(run.verified, "\(run.mode)")
            #expect(run.wireBytes > 0, "\(run.mode)")
        }
    }
}
