import FGBIExamples
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

extension FGBICommand.ExampleLMDB {
    /// `--role writer`: the example's writer and history with no replication, committing as fast as LMDB
    /// allows into a map opened with `MDB_WRITEMAP` (a writable shared mapping), until killed or for
    /// `--seconds`: the program `Scripts/capture-trace lmdb` captures with `fgbi trace capture --shared`.
    func runWriter() throws {
        guard let database else { return }
        let store = try ReplicatedKeyValueStore(
            path: database, mapBytes: mapMiB << 20, history: try history(), configuration: nil)
        Progress.note(
            """
            writer: pid \(getpid()), a \(mapMiB) MiB LMDB map at \(database), unreplicated, \
            \(seconds.map { "for \($0) s" } ?? "until killed")
            """
        )
        let deadline = seconds
        let statistics = try store.run(until: { progress in deadline.map { progress.seconds >= $0 } ?? false })
        Progress.note(
            """
            writer: \(statistics.transactions) transactions in \(String(format: "%.1f", statistics.seconds)) s \
            (\(Int(Double(statistics.transactions) / max(statistics.seconds, 1e-9))) per second)
            """
        )
    }
}
