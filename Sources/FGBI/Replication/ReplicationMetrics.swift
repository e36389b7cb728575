import Metrics

/// The primary's metrics (``MetricCatalogue/primary``), reported through swift-metrics (a no-op until the program
/// bootstraps a backend;
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
        epochsCaptured = Counter(label: MetricCatalogue.epochsCaptured.name, dimensions: dimensions)
        epochsSent = Counter(label: MetricCatalogue.epochsSent.name, dimensions: dimensions)
        epochsCommitted = Counter(label: MetricCatalogue.epochsCommitted.name, dimensions: dimensions)
        bytesSent = Counter(label: MetricCatalogue.epochBytesSent.name, dimensions: dimensions)
        precopyBytes = Counter(label: MetricCatalogue.precopyBytesSent.name, dimensions: dimensions)
        pagesWritten = Counter(label: MetricCatalogue.pagesWritten.name, dimensions: dimensions)
        blocksSent = Counter(label: MetricCatalogue.blocksSent.name, dimensions: dimensions)
        sharedHits = Counter(label: MetricCatalogue.sharedHits.name, dimensions: dimensions)
        backpressureWaits = Counter(label: MetricCatalogue.backpressureWaits.name, dimensions: dimensions)
        reconnects = Counter(label: MetricCatalogue.reconnects.name, dimensions: dimensions)
        lastCommittedEpoch = Gauge(label: MetricCatalogue.lastCommittedEpoch.name, dimensions: dimensions)
        lag = Gauge(label: MetricCatalogue.lag.name, dimensions: dimensions)
        connected = Gauge(label: MetricCatalogue.connected.name, dimensions: dimensions)
        pause = Metrics.Timer(label: MetricCatalogue.pause.name, dimensions: dimensions)
        encode = Metrics.Timer(label: MetricCatalogue.encode.name, dimensions: dimensions)
    }
}

/// The backup's metrics (``MetricCatalogue/backup``; see ``PrimaryMetrics``).
struct BackupMetrics {
    let epochsApplied = Counter(label: MetricCatalogue.epochsApplied.name)
    let precopyFrames = Counter(label: MetricCatalogue.precopyFrames.name)
    let bytesReceived = Counter(label: MetricCatalogue.bytesReceived.name)
    let refusedPeers = Counter(label: MetricCatalogue.refusedPeers.name)
    let checkpoints = Counter(label: MetricCatalogue.checkpoints.name)
    let failovers = Counter(label: MetricCatalogue.failovers.name)
    /// Primaries lost while a coordinator decides (each may end in a promotion or in the primary's return).
    let primaryLosses = Counter(label: MetricCatalogue.primaryLosses.name)
    let lastEpoch = Gauge(label: MetricCatalogue.lastEpoch.name)
    let apply = Metrics.Timer(label: MetricCatalogue.apply.name)
    let persist = Metrics.Timer(label: MetricCatalogue.persist.name)
}
