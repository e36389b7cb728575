import FGBI
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The primary side of the example: a fresh guest whose RAM and vCPU state are two memfd regions that a
/// ``Primary`` replicates, its vCPU paused around each epoch's capture by the runner's hooks.
public final class KVMReplicatedGuest: @unchecked Sendable {
    /// Guest RAM (slot 0).
    public let memory: GuestMemory
    /// One page holding the vCPU's registers, saved at every pause (``VCPUState``).
    public let stateRegion: GuestMemory
    /// The guest.
    public let guest: KVMGuest
    /// The replicator.
    public let primary: Primary

    /// Builds the guest and connects the primary to `backup`. Nothing runs until ``start()``.
    public init(
        image: KVMGuestImage, parameters: KVMGuestParameters, ramBytes: Int, backup: Endpoint,
        epochInterval: Duration
    ) throws {
        memory = try GuestMemory.memfd(length: ramBytes, name: "fgbi-kvm-ram")
        stateRegion = try GuestMemory.memfd(length: GuestMemory.pageSize, name: "fgbi-kvm-vcpu")
        guest = try KVMGuest.fresh(image: image, parameters: parameters, memory: memory, stateRegion: stateRegion)
        var configuration = PrimaryConfiguration(backup: backup)
        configuration.epochInterval = epochInterval
        primary = try Primary(
            regions: KVMExample.regions(memory: memory, state: stateRegion),
            configuration: configuration, hooks: guest.runner.hooks)
    }

    /// Synchronises the backup (the initial registers are already in the state region), waits until it has
    /// committed the first epoch, then starts the vCPU: from its first instruction on, the guest has a
    /// replica to fail over to.
    public func start(synchronisationTimeout: Duration = .seconds(30)) throws {
        try primary.start()
        let deadline = ContinuousClock.now + synchronisationTimeout
        while primary.committedEpoch == nil {
            if let failure = primary.failure { throw failure }
            guard ContinuousClock.now < deadline else {
                throw KVMGuestError(message: "the backup committed no epoch within \(synchronisationTimeout)")
            }
            usleep(1000)
        }
        guest.runner.start()
    }

    /// Waits for the guest to finish, cuts a final epoch (it carries the final registers) and stops.
    public func finish() throws -> KVMGuestOutcome {
        let outcome = try guest.runner.wait()
        try primary.stop(finalEpoch: true)
        return outcome
    }

    /// A crash in-process: the vCPU is held (so the guest cannot finish meanwhile), replication stops
    /// without a final epoch (every epoch sent was cut with the vCPU parked and its registers saved, so the
    /// backup holds memory and registers that agree), then the vCPU is dropped. Returns whether the guest
    /// was still running.
    @discardableResult
    public func crash() -> Bool {
        guest.runner.hold()
        let running = !guest.runner.hasEnded
        _ = try? primary.stop(finalEpoch: false)
        guest.runner.abandon()
        return running
    }
}
