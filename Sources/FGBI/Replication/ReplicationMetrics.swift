import Metrics

/// The primary's metrics, reported through swift-metrics (a no-op until the program bootstraps a backend;
/// `fgbi primary --metrics-port` serves them in Prometheus text format). Updated once per epoch, never per
/// block.
struct PrimaryMetrics {
    let epochsCaptured = Counter(label: "fgbi_primary_epochs_captured")
    let epochsSent = Counter(label: "fgbi_primary_epochs_sent")
    let epochsCommitted = Counter(label: "fgbi_primary_epochs_committed")
    let bytesSent = Counter(label: "fgbi_primary_epoch_bytes_sent")
    let precopyBytes = Counter(label: "fgbi_primary_precopy_bytes_sent")
    let pagesWritten = Counter(label: "fgbi_primary_pages_written")
    let blocksSent = Counter(label: "fgbi_primary_blocks_sent")
    let sharedHits = Counter(label: "fgbi_primary_shared_hits")
    let backpressureWaits = Counter(label: "fgbi_primary_backpressure_waits")
    let reconnects = Counter(label: "fgbi_primary_reconnects")
    let lastCommittedEpoch = Gauge(label: "fgbi_primary_last_committed_epoch")
    let lag = Gauge(label: "fgbi_primary_lag_epochs")
    let connected = Gauge(label: "fgbi_primary_backup_connected")
    let pause = Metrics.Timer(label: "fgbi_primary_pause_seconds")
    let encode = Metrics.Timer(label: "fgbi_primary_encode_seconds")
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
