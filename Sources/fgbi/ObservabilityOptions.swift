import ArgumentParser
import FGBI
import FGBIDiagnostics
import Foundation
import Logging
import Metrics
import Prometheus

/// Logging and metrics options shared by the long-running commands.
struct ObservabilityOptions: ParsableArguments {
    @Option(
        name: .customLong("log-level"),
        help: "Log level: trace, debug, info, notice, warning, error, critical (or set FGBI_LOG_LEVEL).")
    var logLevel: String?

    @Option(
        name: .customLong("metrics-port"),
        help: "Serve Prometheus metrics on this port at /metrics (0 picks one; the address is logged).")
    var metricsPort: Int?

    @Option(name: .customLong("metrics-host"), help: "Address the metrics endpoint binds to.")
    var metricsHost = "127.0.0.1"

    func validate() throws {
        _ = try level()
        if let metricsPort, !(0...65_535).contains(metricsPort) {
            throw ValidationError("--metrics-port must be between 0 and 65535")
        }
    }

    func level(default fallback: Logger.Level = .info) throws -> Logger.Level {
        let name = logLevel ?? ProcessInfo.processInfo.environment["FGBI_LOG_LEVEL"] ?? fallback.rawValue
        guard let level = Logger.Level(rawValue: name.lowercased()) else {
            throw ValidationError("log level '\(name)': choose trace, debug, info, notice, warning, error or critical")
        }
        return level
    }

    /// Sets up structured logs on standard error and, with --metrics-port, the metrics backend and its
    /// endpoint. Returns the endpoint (keep it alive) when one was asked for.
    func bootstrap(defaultLevel: Logger.Level = .info) throws -> TextEndpoint? {
        let level = try level(default: defaultLevel)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        guard let metricsPort else { return nil }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let endpoint = try TextEndpoint(listen: try Endpoint(parsing: "\(metricsHost):\(metricsPort)")) {
            MetricCatalogue.addingHelp(to: registry.emitToString())
        }
        try endpoint.start()
        Logger(label: "fgbi.metrics").notice("metrics at http://\(metricsHost):\(endpoint.port)/metrics")
        return endpoint
    }
}
