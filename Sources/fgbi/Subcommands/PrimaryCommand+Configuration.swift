import ArgumentParser
import FGBI
import FGBIBench
import FGBICoordination
import Foundation

/// `fgbi primary`'s arguments checked and turned into a ``PrimaryConfiguration``.
extension FGBICommand.PrimaryCommand {
    func validate() throws {
        guard (1...100).contains(precopyRounds) else {
            throw ValidationError("--precopy-rounds must be between 1 and 100")
        }
        guard (0...86_400).contains(reconnectSeconds) else {
            throw ValidationError("--reconnect-s must be between 0 and 86400")
        }
        guard (1...10_000).contains(epochMilliseconds) else {
            throw ValidationError("--epoch-ms must be between 1 and 10000")
        }
        guard duration > 0 else { throw ValidationError("--duration must be positive") }
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be between 1 and 64") }
        guard pagesPerSecond > 0 else { throw ValidationError("--pages-per-second must be positive") }
        guard (0...86_400).contains(acquireWaitSeconds) else {
            throw ValidationError("--acquire-wait-s must be between 0 and 86400")
        }
        try guests.validate(backup: backup.first, printEpochDigests: printEpochDigests)
        if backup.count > 1, !guests.guests.isEmpty {
            throw ValidationError("several --backup take one guest, not --guest specs")
        }

        if replicaIsLatest, coordination.etcd == nil || continueAfterEpoch == nil {
            throw ValidationError("--replica-is-latest goes with --etcd and --continue-after-epoch")
        }
        if etcdHandover != nil, coordination.etcd == nil || continueAfterEpoch == nil {
            throw ValidationError(
                "--etcd-handover is set by fgbi backup --then-primary, with --etcd and --continue-after-epoch")
        }
        if !guests.guests.isEmpty, memory.memoryFile != nil || continueAfterEpoch != nil {
            throw ValidationError(
                "--memory-file and --continue-after-epoch take one guest (--backup), not --guest specs")
        }
        if !guests.guests.isEmpty, coordination.guestName != nil {
            throw ValidationError(
                """
                --guest-name names the single guest of --backup; with --guest, each spec's name= is its name \
                in etcd
                """
            )
        }
        _ = try makeConfiguration()
        _ = try memory.geometry()
    }

    func makeConfiguration() throws -> PrimaryConfiguration {
        do {
            guard let policy = CommitPolicy(commit) else {
                throw ValidationError("--commit '\(commit)': choose all or quorum:K")
            }
            var configuration = PrimaryConfiguration(
                backups: try (backup.isEmpty ? [GuestOptions.perGuestBackup] : backup).map {
                    try Endpoint(parsing: $0)
                },
                commitPolicy: policy)
            try policy.check(backups: configuration.backups.count)
            if let catchUpMiB {
                guard (1...1_048_576).contains(catchUpMiB) else {
                    throw ValidationError("--catch-up-mib must be between 1 and 1048576")
                }
                configuration.catchUpBytes = catchUpMiB << 20
            }
            configuration.engine = EngineConfiguration(
                mode: try ReplicationMode.parse(mode), blockSize: memory.blockSize,
                compression: try compression.map { try Compression.parse($0) })
            if let compressionMinimumSaving, !(0...1).contains(compressionMinimumSaving) {
                throw ValidationError("--compression-minimum-saving must be between 0 and 1")
            }
            configuration.engine.compressionMinimumSaving = compressionMinimumSaving
            configuration.engine.splicing = encoderFeatures.splicing
            configuration.engine.pageCopies = encoderFeatures.pageCopies
            if let bytes = encoderFeatures.cachedCaptureBytes { configuration.engine.cachedCaptureBytes = bytes }
            if let bytes = cache.budgetBytes { configuration.engine.setCacheBudget(bytes: bytes) }
            if let encodeThreads {
                guard (1...EngineConfiguration.maximumEncodeThreads).contains(encodeThreads) else {
                    throw ValidationError(
                        "--encode-threads must be between 1 and \(EngineConfiguration.maximumEncodeThreads)")
                }
                configuration.engine.encodeThreads = encodeThreads
            }
            if let captureBuffers {
                guard (1...8).contains(captureBuffers) else {
                    throw ValidationError("--capture-buffers must be between 1 and 8")
                }
                configuration.captureBuffers = captureBuffers
            }
            if let captureCPUs {
                let online = ThreadScheduling.onlineCPUCount
                configuration.engine.captureCPUs = try CommaList.parse(captureCPUs, option: "--capture-cpus") {
                    guard let cpu = Int($0), (0..<min(online, 64)).contains(cpu) else {
                        throw ValidationError(
                            "--capture-cpus: '\($0)' is not an online CPU (0 to \(min(online, 64) - 1))")
                    }
                    return cpu
                }
            }
            if let capturePriority {
                guard ThreadScheduling.realtimePriorities.contains(capturePriority) else {
                    throw ValidationError("--capture-priority must be between 1 and 99")
                }
                configuration.engine.captureRealtimePriority = capturePriority
            }
            configuration.tracker = try TrackerKind.parse(tracker)
            configuration.hotPages = try HotPagePolicy.parse(hotPages)
            configuration.epochInterval = .milliseconds(epochMilliseconds)
            configuration.precopy.enabled = !noPrecopy
            configuration.engine.learnsWholeFirstPass = learnWholeFirstPass
            configuration.precopy.maximumRounds = precopyRounds
            configuration.precopy.fetchesBlockHashes = !noBlockHashes
            configuration.reconnectWindow = .milliseconds(Int64(reconnectSeconds * 1000))
            guard let path = FrameSendPath(sendPath) else {
                throw ValidationError(
                    "--send-path '\(sendPath)': choose automatic, socket, uring, uring-zc[:MIN] or by-size:N")
            }
            configuration.sendPath = path
            _ = try SyntheticWorkload.parse(workload)
            return configuration
        } catch let error as FGBIError {
            throw ValidationError("\(error)")
        }
    }
}
