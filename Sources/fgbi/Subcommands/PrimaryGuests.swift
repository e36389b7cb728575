import ArgumentParser
import FGBI
import FGBIBench
import FGBICoordination
import Foundation

/// `fgbi primary --guest ...`: several guests, each with its own backup, key and epochs, sharing one content
/// index (the library's ``GuestGroup`` does the work).
struct GuestOptions: ParsableArguments {
    @Option(
        name: .customLong("guest"),
        help: ArgumentHelp(
            """
            A guest to replicate, repeatable: name=NAME,backup=HOST:PORT[,region-mib=N][,key-file=PATH]. Replaces \
            --backup; each guest gets its own region, workload and backup, all sharing one content index.
            """,
            valueName: "spec"))
    var guests: [String] = []

    @Flag(
        name: .customLong("no-shared-index"),
        help: "With --guest: give each guest a content index of its own instead of sharing one.")
    var noSharedIndex = false

    /// Stands in for `--backup` while the guests are checked: each guest names its own backup.
    static let perGuestBackup = "127.0.0.1:0"

    /// The guests, checked; empty for the single-guest form (`--backup`).
    func specifications() throws -> [GuestSpecification] {
        do { return try GuestSpecification.parseAll(guests) } catch { throw ValidationError("--guest: \(error)") }
    }

    /// Checks that exactly one of `--backup` and `--guest` is used, and the guests themselves.
    func validate(backup: String?, printEpochDigests: Bool) throws {
        if guests.isEmpty {
            guard backup != nil else {
                throw ValidationError("give --backup HOST:PORT, or --guest name=NAME,backup=HOST:PORT for each guest")
            }
            guard !noSharedIndex else { throw ValidationError("--no-shared-index applies to --guest only") }
            return
        }
        guard backup == nil else {
            throw ValidationError("--backup and --guest cannot be mixed: give each guest's backup in its --guest")
        }
        guard !printEpochDigests else {
            throw ValidationError("--print-epoch-digests replicates one guest only (--backup)")
        }
        _ = try specifications()
    }
}

extension FGBICommand.PrimaryCommand {
    /// Replicates every `--guest` until `--duration` ends (or `stop` receives a signal, or none replicates any
    /// more), printing a progress
    /// line per guest each second, then a summary per guest and the shared index's; fails naming the guests
    /// that failed.
    func runGuests(_ configuration: PrimaryConfiguration, stop: StopSignals) throws {
        var settings = GuestGroup.Settings(primary: configuration)
        settings.regionMiB = memory.regionMiB
        settings.key = configuration.key
        settings.workload = try SyntheticWorkload.parse(workload)
        settings.threads = threads
        settings.pagesPerSecond = pagesPerSecond
        settings.shareIndex = !guests.noSharedIndex
        // With --etcd, each guest holds its own lease and term on /fgbi/CLUSTER/NAME/primary.
        let leases = Leases()
        defer { leases.releaseAll() }
        if let (client, _, node) = try coordination.connect(role: "primary") {
            let cluster = coordination.cluster
            let ttl = coordination.leaseTTLSeconds
            let wait = Duration.milliseconds(Int64(acquireWaitSeconds * 1000))
            settings.authority = { specification in
                let lease = try EtcdPrimaryLease.acquire(
                    client: client, keys: try GuestKeys(cluster: cluster, guest: specification.name),
                    node: node, ttlSeconds: ttl, wait: wait)
                leases.add(lease)
                Progress.note(
                    """
                    primary: node \(node) is primary of guest \(specification.name) with term \(lease.term) \
                    (lease TTL \(lease.ttlSeconds) s)
                    """
                )
                return lease
            }
        }
        let group: GuestGroup
        do { group = try GuestGroup(try guests.specifications(), settings: settings) } catch let error as FGBIError {
            throw ValidationError("\(error)")
        }
        let index =
            group.sharedIndex.map { "one shared content index (\($0.budgetBytes >> 20) MiB of stored copies)" }
            ?? (configuration.engine.mode == .fgbi
                ? "a content index per guest" : "no content index (\(configuration.engine.mode) mode)")
        Progress.note("primary: \(group.guests.count) guests, \(index)")
        group.start(progress: { Progress.note($0) })
        let started = Date()
        var lastReport = started
        while Date().timeIntervalSince(started) < duration, group.anyRunning, stop.received == nil {
            Thread.sleep(forTimeInterval: 0.1)
            if Date().timeIntervalSince(lastReport) >= 1 {
                lastReport = Date()
                for line in group.progressLines() { Progress.note(line) }
            }
        }
        let reports = group.stop()
        for r in reports {
            print(
                "primary: guest \(r.name) (backup \(r.backup)): \(r.epochsSent) epochs sent, last committed epoch "
                    + """
                    \(r.lastCommittedEpoch.map(String.init) ?? "none"), \
                    \(formatted(Double(r.bytesSent) / 1e6, 1)) MB sent\u{20}
                    """
                        + """
                        (+\(formatted(Double(r.precopyBytes) / 1e6, 1)) MB pre-copy), pause p50 \
                        \(formatted(r.pauseMsP50)) ms\u{20}
                        """
                    + "p99 \(formatted(r.pauseMsP99)) ms, \(r.pagesWritten) pages written"
                    + (r.failure.map { ", FAILED: \($0)" } ?? ""))
        }
        if let shared = group.sharedIndex?.statistics {
            print(
                "primary: shared content index: \(shared.entries) entries, \(shared.storedCopies) stored copies "
                    + """
                    (\(formatted(Double(shared.storedBytes) / 1e6, 1)) MB), \
                    \(formatted(Double(shared.bytesSavedBySharing) / 1e6, 1)) MB saved by sharing,\u{20}
                    """
                    + "\(shared.attachments) additions shared another guest's copy, \(shared.evictions) copies evicted")
        }
        let failed = reports.filter { $0.failure != nil }
        if !failed.isEmpty { throw GuestGroup.Failure(reports: failed) }
    }
}

/// The leases a multi-guest primary acquired, released when it ends.
private final class Leases: @unchecked Sendable {
    private let lock = NSLock()
    private var held: [EtcdPrimaryLease] = []

    func add(_ lease: EtcdPrimaryLease) { lock.withLock { held.append(lease) } }

    func releaseAll() {
        for lease in lock.withLock({ held }) { lease.release() }
    }
}
