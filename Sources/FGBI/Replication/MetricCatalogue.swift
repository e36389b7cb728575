/// Every metric a ``Primary`` and a ``Backup`` report through swift-metrics: name, kind and help text,
/// named per the Prometheus conventions (counters end in `_total`, units in base units before it).
///
/// swift-metrics has no help texts, so a program that serves the metrics in Prometheus's text format adds
/// them with ``addingHelp(to:)`` (`fgbi primary --metrics-port` and `fgbi backup --metrics-port` do).
/// Docs/OPERATIONS.md lists the same metrics for operators.
package enum MetricCatalogue {
    /// How a metric is reported.
    public enum Kind: String, Sendable {
        /// Only goes up (swift-metrics `Counter`).
        case counter
        /// Goes up and down (swift-metrics `Gauge`).
        case gauge
        /// A distribution of durations in seconds (swift-metrics `Timer`).
        case histogram
    }

    /// One metric.
    public struct Entry: Sendable, Equatable {
        public let name: String
        public let kind: Kind
        public let help: String
    }

    // The primary's; a primary of a named guest adds the dimension `guest=NAME`.
    static let epochsCaptured = Entry(
        name: "fgbi_primary_epochs_captured_total", kind: .counter,
        help: "Epochs cut: the guest paused and its writes captured.")
    static let epochsSent = Entry(
        name: "fgbi_primary_epochs_sent_total", kind: .counter,
        help: "Epochs encoded and sent to the backup.")
    static let epochsCommitted = Entry(
        name: "fgbi_primary_epochs_committed_total", kind: .counter,
        help: "Epochs the backup acknowledged; output that waited for them may be released.")
    static let epochBytesSent = Entry(
        name: "fgbi_primary_epoch_sent_bytes_total", kind: .counter,
        help: "Bytes of epoch frames sent to the backup (encoded, compressed deltas).")
    static let precopyBytesSent = Entry(
        name: "fgbi_primary_precopy_sent_bytes_total", kind: .counter,
        help: "Bytes of pre-copy frames sent while synchronising a backup.")
    static let pagesWritten = Entry(
        name: "fgbi_primary_pages_written_total", kind: .counter,
        help: "Pages the epochs captured: written pages, and hot pages captured unscanned.")
    static let blocksSent = Entry(
        name: "fgbi_primary_blocks_sent_total", kind: .counter,
        help: "Changed blocks sent (pages, in the page modes), pre-copy included.")
    static let sharedHits = Entry(
        name: "fgbi_primary_shared_blocks_total", kind: .counter,
        help: "Changed blocks sent as a reference to identical content the backup holds.")
    static let backpressureWaits = Entry(
        name: "fgbi_primary_backpressure_waits_total", kind: .counter,
        help: "Times an epoch waited for a free capture buffer because encoding or sending fell behind.")
    static let reconnects = Entry(
        name: "fgbi_primary_reconnects_total", kind: .counter,
        help: "Sessions opened with the backup after the first.")
    static let lastCommittedEpoch = Entry(
        name: "fgbi_primary_last_committed_epoch", kind: .gauge,
        help: "The number of the last epoch the backup acknowledged.")
    static let lag = Entry(
        name: "fgbi_primary_lag_epochs", kind: .gauge,
        help: "Epochs captured and not yet acknowledged.")
    static let connected = Entry(
        name: "fgbi_primary_backup_connected", kind: .gauge,
        help: "1 while a session with the backup is open, else 0.")
    static let pause = Entry(
        name: "fgbi_primary_pause_seconds", kind: .histogram,
        help: "How long each epoch kept the guest paused, in seconds.")
    static let encode = Entry(
        name: "fgbi_primary_encode_seconds", kind: .histogram,
        help: "How long each epoch took to encode and compress while the guest ran, in seconds.")

    // The backup's.
    static let epochsApplied = Entry(
        name: "fgbi_backup_epochs_applied_total", kind: .counter,
        help: "Epochs applied whole to the replica and acknowledged.")
    static let precopyFrames = Entry(
        name: "fgbi_backup_precopy_frames_total", kind: .counter,
        help: "Pre-copy frames applied while synchronising.")
    static let bytesReceived = Entry(
        name: "fgbi_backup_received_bytes_total", kind: .counter,
        help: "Bytes of epoch and pre-copy frames received.")
    static let refusedPeers = Entry(
        name: "fgbi_backup_refused_peers_total", kind: .counter,
        help: "Connections refused: a failed handshake (key, guest, layout, term) or a handshake limit.")
    static let checkpoints = Entry(
        name: "fgbi_backup_checkpoints_total", kind: .counter,
        help: "Checkpoint images written to the state directory.")
    static let failovers = Entry(
        name: "fgbi_backup_failovers_total", kind: .counter,
        help: "Failovers: the primary was lost and this backup took over.")
    static let primaryLosses = Entry(
        name: "fgbi_backup_primary_losses_total", kind: .counter,
        help: "Primaries lost while a coordinator decided whether this backup takes over.")
    static let lastEpoch = Entry(
        name: "fgbi_backup_last_epoch", kind: .gauge,
        help: "The number of the last epoch applied to the replica.")
    static let apply = Entry(
        name: "fgbi_backup_apply_seconds", kind: .histogram,
        help: "How long each epoch took to decode and apply, in seconds.")
    static let persist = Entry(
        name: "fgbi_backup_persist_seconds", kind: .histogram,
        help: "How long each epoch took to make durable in the state directory, in seconds.")

    /// The primary's metrics.
    public static let primary = [
        epochsCaptured, epochsSent, epochsCommitted, epochBytesSent, precopyBytesSent, pagesWritten,
        blocksSent, sharedHits, backpressureWaits, reconnects, lastCommittedEpoch, lag, connected,
        pause, encode,
    ]
    /// The backup's metrics.
    public static let backup = [
        epochsApplied, precopyFrames, bytesReceived, refusedPeers, checkpoints, failovers, primaryLosses,
        lastEpoch, apply, persist,
    ]

    /// `exposition` (Prometheus text format) with a `# HELP` line before the `# TYPE` line of each metric of
    /// this catalogue that has none; other lines unchanged.
    public static func addingHelp(to exposition: String) -> String {
        let helped = Set(
            exposition.split(separator: "\n").compactMap { line in
                line.hasPrefix("# HELP ") ? line.dropFirst(7).split(separator: " ").first.map(String.init) : nil
            })
        var lines: [Substring] = []
        for line in exposition.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE "), let name = line.dropFirst(7).split(separator: " ").first.map(String.init),
                !helped.contains(name), let entry = byName[name]
            {
                lines.append("# HELP \(name) \(entry.help)")
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    private static let byName = Dictionary(uniqueKeysWithValues: (primary + backup).map { ($0.name, $0) })
}
