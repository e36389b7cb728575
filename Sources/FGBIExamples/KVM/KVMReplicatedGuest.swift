import FGBI
import Foundation

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
    public init(image: KVMGuestImage, parameters: KVMGuestParameters, ramBytes: Int, backup: Endpoint,
                epochInterval: Duration) throws {
        memory = try GuestMemory.memfd(length: ramBytes, name: "fgbi-kvm-ram")
        stateRegion = try GuestMemory.memfd(length: GuestMemory.pageSize, name: "fgbi-kvm-vcpu")
        guest = try KVMGuest.fresh(image: image, parameters: parameters, memory: memory, stateRegion: stateRegion)
        var configuration = PrimaryConfiguration(backup: backup)
        configuration.epochInterval = epochInterval
        primary = try Primary(regions: KVMExample.regions(memory: memory, state: stateRegion),
                              configuration: configuration, hooks: guest.runner.hooks)
    }

    /// Synchronises the backup (the initial registers are already in the state region), then starts the vCPU.
    public func start() throws {
        try primary.start()
        guest.runner.start()
    }

    /// Waits for the guest to finish, cuts a final epoch (it carries the final registers) and stops.
    public func finish() throws -> KVMGuestOutcome {
        let outcome = try guest.runner.wait()
        try primary.stop(finalEpoch: true)
        return outcome
    }

    /// A crash in-process: replication stops without a final epoch (each epoch already sent was cut with
    /// the vCPU paused, so the backup holds consistent memory and registers), then the vCPU stops wherever
    /// it is. Returns whether the guest was still running.
    @discardableResult
    public func crash() -> Bool {
        _ = try? primary.stop(finalEpoch: false)
        let running = !guest.runner.hasEnded
        guest.runner.abandon()
        return running
    }
}
