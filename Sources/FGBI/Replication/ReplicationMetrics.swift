import Metrics

/// The primary's metrics, reported through swift-metrics (a no-op until the program bootstraps a backend;
/// `fgbi primary --metrics-port` serves them in Prometheus text format). Updated once per epoch, never per
/// block. A primary of a named guest (``PrimaryConfiguration/guestName``) reports with the dimension
/// `guest=NAME`, so the primaries of one process stay apart.
struct PrimaryMetrics {
    let epochsCaptured: Counter
    let epochsSent: Counter
    let epochsCommitted: Counter
    let bytesSent: Counter
    let precopyBytes: Counter
    let pagesWritten: Counter
    let blocksSent: Counter
    let sharedHits: Counter
    let backpressureWaits: Counter
    let reconnects: Counter
    let lastCommittedEpoch: Gauge
    let lag: Gauge
    let connected: Gauge
    let pause: Metrics.Timer
    let encode: Metrics.Timer

    init(guest: String? = nil) {
        let dimensions = guest.map { [("guest", $0)] } ?? []
        epochsCaptured = Counter(label: "fgbi_primary_epochs_captured", dimensions: dimensions)
        epochsSent = Counter(label: "fgbi_primary_epochs_sent", dimensions: dimensions)
        epochsCommitted = Counter(label: "fgbi_primary_epochs_committed", dimensions: dimensions)
        bytesSent = Counter(label: "fgbi_primary_epoch_bytes_sent", dimensions: dimensions)
        precopyBytes = Counter(label: "fgbi_primary_precopy_bytes_sent", dimensions: dimensions)
        pagesWritten = Counter(label: "fgbi_primary_pages_written", dimensions: dimensions)
        blocksSent = Counter(label: "fgbi_primary_blocks_sent", dimensions: dimensions)
        sharedHits = Counter(label: "fgbi_primary_shared_hits", dimensions: dimensions)
        backpressureWaits = Counter(label: "fgbi_primary_backpressure_waits", dimensions: dimensions)
        reconnects = Counter(label: "fgbi_primary_reconnects", dimensions: dimensions)
        lastCommittedEpoch = Gauge(label: "fgbi_primary_last_committed_epoch", dimensions: dimensions)
        lag = Gauge(label: "fgbi_primary_lag_epochs", dimensions: dimensions)
        connected = Gauge(label: "fgbi_primary_backup_connected", dimensions: dimensions)
        pause = Metrics.Timer(label: "fgbi_primary_pause_seconds", dimensions: dimensions)
        encode = Metrics.Timer(label: "fgbi_primary_encode_seconds", dimensions: dimensions)
    }
}

/// The backup's metrics (see ``PrimaryMetrics``).
struct BackupMetrics {
    let epochsApplied = Counter(label: "fgbi_backup_epochs_applied")
    let precopyFrames = Counter(label: "fgbi_backup_precopy_frames")
    let bytesReceived = Counter(label: "fgbi_backup_bytes_received")
    let refusedPeers = Counter(label: "fgbi_backup_refused_peers")
    let checkpoints = Counter(label: "fgbi_backup_checkpoints")
    let failovers = Counter(label: "fgbi_backup_failovers")
    /// Primaries lost while a coordinator decides (each may end in a promotion or in the primary's return).
    let primaryLosses = Counter(label: "fgbi_backup_primary_losses")
    let lastEpoch = Gauge(label: "fgbi_backup_last_epoch")
    let apply = Metrics.Timer(label: "fgbi_backup_apply_seconds")
    let persist = Metrics.Timer(label: "fgbi_backup_persist_seconds")
}
