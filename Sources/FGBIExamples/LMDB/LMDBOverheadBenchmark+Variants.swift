import FGBI

/// The benchmark's variants: which a round runs, what each is called, and the primary each replicates with.
extension LMDBOverheadBenchmark {
    /// The variants of a round: unreplicated first, then every interval with every capture placement (with a
    /// pinned writer), priority and hot-page policy.
    var setups: [Setup] {
        let placements: [CapturePlacement?] = configuration.writerCPU != nil ? configuration.capturePlacements : [nil]
        return [Setup(epochMilliseconds: nil, placement: nil)]
            + configuration.epochMilliseconds.flatMap { interval in
                placements.flatMap { placement in
                    configuration.captureRealtimePriorities.flatMap { priority in
                        configuration.hotPagePolicies.map {
                            Setup(
                                epochMilliseconds: interval, placement: placement, realtimePriority: priority,
                                hotPages: $0)
                        }
                    }
                }
            }
    }

    /// The primary of a replicated variant: the benchmark's mode, capture and knobs, `setup`'s placement,
    /// priority and hot pages, epochs every `epochMilliseconds`, to the in-process backup on `backupPort`.
    func replicationSettings(_ setup: Setup, epochMilliseconds: Int, backupPort: UInt16) -> PrimaryConfiguration {
        var settings = PrimaryConfiguration(backup: Endpoint(host: "127.0.0.1", port: backupPort))
        settings.engine = EngineConfiguration(mode: configuration.mode)
        settings.engine.captureStrategy = configuration.capture
        if setup.placement == .writerCPU, let writer = configuration.writerCPU {
            settings.engine.captureCPUs = [writer]
        }
        settings.engine.captureRealtimePriority = setup.realtimePriority
        if let policy = setup.hotPages { settings.hotPages = policy }
        settings.epochInterval = .milliseconds(epochMilliseconds)
        settings.reconnectWindow = .zero
        if let nice = configuration.senderNiceIncrement { settings.senderNiceIncrement = nice }
        if let buffers = configuration.captureBuffers { settings.captureBuffers = buffers }
        if let saving = configuration.compressionMinimumSaving { settings.engine.compressionMinimumSaving = saving }
        if let bytes = configuration.cacheBudgetBytes { settings.engine.setCacheBudget(bytes: bytes) }
        settings.engine.splicing = configuration.splicing
        settings.engine.pageCopies = configuration.pageCopies
        if let bytes = configuration.cachedCaptureBytes { settings.engine.cachedCaptureBytes = bytes }
        return settings
    }

    /// One variant: unreplicated (no interval), or replicated at an interval with the capture placed.
    struct Setup {
        var epochMilliseconds: Int?
        var placement: CapturePlacement?
        var realtimePriority: Int?
        var hotPages: HotPagePolicy?
    }

    func name(_ setup: Setup) -> String {
        guard let interval = setup.epochMilliseconds else { return "none" }
        var name = "\(configuration.mode) @ \(interval) ms"
        if configuration.capturePlacements.count > 1, let placement = setup.placement {
            name += ", capture on \(placement.rawValue) CPU"
        }
        if configuration.captureRealtimePriorities.count > 1 {
            name += setup.realtimePriority.map { ", FIFO \($0)" } ?? ", normal"
        }
        if configuration.hotPagePolicies.count > 1, let policy = setup.hotPages {
            let full = policy.demotesUnchanged ? "" : ":full"
            name +=
                policy.isEnabled
                ? ", hot \(policy.promoteAfter):\(policy.leaseCollections):\(policy.maximumPages)\(full)"
                : ", hot off"
        }
        return name
    }
}
