import FGBI

/// A guest ready to run: its VM over a RAM region, its vCPU, and the runner that drives it.
public final class KVMGuest: @unchecked Sendable {
    /// /dev/kvm.
    public let system: KVMSystem
    /// The VM, with guest RAM in slot 0.
    public let machine: KVMVirtualMachine
    /// The one vCPU.
    public let vcpu: KVMVirtualCPU
    /// Runs the vCPU on its own thread; its hooks pause it for epochs.
    public let runner: KVMGuestRunner

    private init(
        memory: GuestMemory, stateRegion: GuestMemory?, dirtyLogging: KVMDirtyLogging,
        prepare: (KVMVirtualCPU) throws -> Void
    ) throws {
        system = try KVMSystem()
        machine = try KVMVirtualMachine(system: system, memory: memory, dirtyLogging: dirtyLogging)
        vcpu = try machine.makeVCPU()
        try prepare(vcpu)
        runner = try KVMGuestRunner(vcpu: vcpu, stateRegion: stateRegion)
    }

    /// A fresh guest: writes the boot structures, the image and the parameters into `memory`, enters long
    /// mode at the image's first byte, and (with a state region) saves the initial registers there.
    public static func fresh(
        image: KVMGuestImage, parameters: KVMGuestParameters, memory: GuestMemory,
        stateRegion: GuestMemory? = nil, dirtyLogging: KVMDirtyLogging = .none
    ) throws -> KVMGuest {
        let limit = memory.length - KVMGuestLayout.pageTableBytes(ramBytes: memory.length)
        guard parameters.dataLength > 0, UInt64(KVMGuestLayout.dataAddress) + parameters.dataLength <= UInt64(limit)
        else {
            throw FGBIError.invalidArgument(
                "the guest's data area (\(parameters.dataLength) bytes) does not fit its RAM (\(memory.length) bytes)")
        }
        KVMVirtualMachine.writeBootStructures(into: memory)
        image.load(into: memory)
        parameters.write(to: memory)
        let guest = try KVMGuest(memory: memory, stateRegion: stateRegion, dirtyLogging: dirtyLogging) { vcpu in
            try vcpu.setLongModeEntry(entry: UInt64(KVMGuestLayout.codeAddress), stack: UInt64(KVMGuestLayout.stackTop))
        }
        try guest.runner.saveState()
        return guest
    }

    /// A guest resumed from replicated memory: a new VM over `memory`, the vCPU's registers from
    /// `stateRegion` (as the last committed epoch left them).
    ///
    /// - Throws: ``FGBIError/invalidState(_:)`` when the state region holds no saved registers.
    public static func resume(memory: GuestMemory, stateRegion: GuestMemory) throws -> KVMGuest {
        let state = try VCPUState(from: stateRegion)
        return try KVMGuest(memory: memory, stateRegion: nil, dirtyLogging: .none) { vcpu in
            try state.apply(to: vcpu)
        }
    }

    /// Runs the guest to the end on its thread and returns how it ended.
    public func runToCompletion() throws -> KVMGuestOutcome {
        runner.start()
        return try runner.wait()
    }
}
