import CKVM
import FGBI
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// How a guest run ended.
public enum KVMGuestOutcome: Sendable, Equatable {
    /// The guest finished and reported its checksum.
    case finished(checksum: UInt64, operations: UInt64)
    /// The run was abandoned (a simulated crash): the vCPU stopped wherever it was.
    case abandoned
}

/// A failed guest run: a triple fault, an unexpected exit, or a refused parameter block.
public struct KVMGuestError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Runs a vCPU on its own thread until the guest reports done, and stops it at epoch boundaries.
///
/// ``pause()`` asks the vCPU to stop (immediate_exit plus a signal, so a running KVM_RUN returns EINTR) and
/// returns once the vCPU thread is parked outside KVM_RUN with its pending I/O completed and, when a state
/// region was given, its registers written there; ``resume()`` lets it run again. ``hooks`` are these two
/// as FGBI's ``PauseHooks``, so the primary's checkpoint thread stops the guest around each capture.
public final class KVMGuestRunner: @unchecked Sendable {
    /// The signal that kicks the vCPU out of KVM_RUN (its handler does nothing, without SA_RESTART).
    static let kickSignal = SIGUSR1
    private static let handlerInstalled: Bool = CKVM_install_noop_signal_handler(kickSignal) == 0

    /// The vCPU it runs.
    public let vcpu: KVMVirtualCPU
    /// Where the registers are saved at each pause and at the end (replicated with guest RAM), if anywhere.
    public let stateRegion: GuestMemory?
    /// Called on the vCPU thread at each progress report with the operations completed.
    public var onProgress: (@Sendable (UInt64) -> Void)?
    /// Called on the vCPU thread when the dirty ring is full (harvest and reset it); without it a full ring
    /// ends the run with an error.
    public var onDirtyRingFull: (@Sendable () throws -> Void)?

    private let condition = NSCondition()
    private var pauseRequested = false
    private var abandonRequested = false
    private var parked = false
    private var started = false
    private var held = false
    private var ended = false
    private var result: Result<KVMGuestOutcome, Error>?
    private var thread: pthread_t?
    private var pauseCount = 0
    /// Pauses served (for reports and tests).
    public var pauses: Int {
        condition.lock()
        defer { condition.unlock() }
        return pauseCount
    }

    /// - Parameters:
    ///   - vcpu: a vCPU whose registers are set (a fresh entry or a restored state).
    ///   - stateRegion: a region of at least ``VCPUState/byteCount`` bytes, or nil to save nothing.
    public init(vcpu: KVMVirtualCPU, stateRegion: GuestMemory?) throws {
        guard Self.handlerInstalled else {
            throw SystemError(
                operation: "sigaction(SIGUSR1)", errno: EINVAL, hint: "cannot install the vCPU kick handler")
        }
        if let stateRegion, stateRegion.length < VCPUState.byteCount {
            throw FGBIError.invalidArgument("the vCPU state region needs \(VCPUState.byteCount) bytes")
        }
        self.vcpu = vcpu
        self.stateRegion = stateRegion
    }

    /// The pause hooks for a ``Primary``.
    public var hooks: PauseHooks {
        PauseHooks(pause: { [self] in pause() }, resume: { [self] in resume() })
    }

    /// Saves the vCPU's current registers into the state region (before the first run, so the first
    /// epoch already carries them).
    public func saveState(status: VCPUState.Status = .running) throws {
        guard let stateRegion else { return }
        try VCPUState(of: vcpu, status: status).write(to: stateRegion)
    }

    /// Starts the vCPU thread.
    public func start() {
        condition.lock()
        started = true
        condition.unlock()
        Thread.detachNewThread { [self] in
            condition.lock()
            thread = pthread_self()
            condition.unlock()
            let outcome = Result { try loop() }
            condition.lock()
            result = outcome
            ended = true
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Stops the vCPU at its next instruction boundary and returns once it is parked (state saved), or at
    /// once when the run has ended or not started (the vCPU is not running then).
    public func pause() {
        condition.lock()
        defer { condition.unlock() }
        pauseCount += 1
        pauseRequested = true
        if !started { return }
        vcpu.setImmediateExit(true)
        while !parked && !ended {
            if let thread { pthread_kill(thread, Self.kickSignal) }
            // Re-kick now and then: a signal that lands just before KVM_RUN is covered by immediate_exit,
            // but a thread not yet started has no id to signal.
            _ = condition.wait(until: Date().addingTimeInterval(0.001))
        }
    }

    /// Lets a paused vCPU run again.
    public func resume() {
        condition.lock()
        pauseRequested = false
        condition.broadcast()
        condition.unlock()
    }

    /// Parks the vCPU (registers saved) until ``abandon()``; the hooks' ``resume()`` does not release it.
    /// Epochs cut while it is held carry memory and registers that agree.
    public func hold() {
        condition.lock()
        defer { condition.unlock() }
        held = true
        guard started else { return }
        vcpu.setImmediateExit(true)
        while !parked && !ended {
            if let thread { pthread_kill(thread, Self.kickSignal) }
            _ = condition.wait(until: Date().addingTimeInterval(0.001))
        }
    }

    /// Stops the vCPU for good wherever it is, as a crash would (nothing more is saved), and waits for it.
    public func abandon() {
        condition.lock()
        if !started {
            started = true
            ended = true
            result = .success(.abandoned)
            condition.unlock()
            return
        }
        abandonRequested = true
        pauseRequested = false
        vcpu.setImmediateExit(true)
        condition.broadcast() // a parked vCPU thread wakes and ends
        while !ended {
            if let thread { pthread_kill(thread, Self.kickSignal) }
            _ = condition.wait(until: Date().addingTimeInterval(0.001))
        }
        condition.unlock()
    }

    /// Waits for the run to end and returns how it ended.
    public func wait() throws -> KVMGuestOutcome {
        condition.lock()
        defer { condition.unlock() }
        guard started else { throw KVMGuestError(message: "wait() on a guest that was never started") }
        while !ended { condition.wait() }
        return try result!.get()
    }

    /// Whether the run has ended (finished, failed or abandoned).
    public var hasEnded: Bool {
        condition.lock()
        defer { condition.unlock() }
        return ended
    }

    private func loop() throws -> KVMGuestOutcome {
        // A pause requested before this thread ran (or served before the start) holds the guest here.
        if try park() { return .abandoned }
        while true {
            let exit = try vcpu.runOnce()
            switch exit {
            case .interrupted:
                // KVM_RUN returned EINTR: any I/O the guest started is complete, its registers consistent.
                if try park() { return .abandoned }
            case .output(let port, let value) where port == KVMGuestLayout.progressPort:
                onProgress?(UInt64(value))
            case .output(let port, _) where port == KVMGuestLayout.donePort:
                return try finish()
            case .output(let port, let value) where port == KVMGuestLayout.errorPort:
                throw KVMGuestError(message: "the guest refused its parameters (code \(value)): \(Self.refusal(value))")
            case .shutdown:
                let rip = (try? vcpu.registers().rip).map { String($0, radix: 16) } ?? "?"
                throw KVMGuestError(message: "the guest triple-faulted (KVM_EXIT_SHUTDOWN) at rip 0x\(rip)")
            case .dirtyRingFull:
                if let onDirtyRingFull {
                    try onDirtyRingFull()
                    continue
                }
                throw KVMGuestError(message: "the dirty ring filled up (KVM_EXIT_DIRTY_RING_FULL); use a larger ring")
            case .output(let port, let value):
                throw KVMGuestError(message: "the guest wrote \(value) to unknown port 0x\(String(port, radix: 16))")
            case .other(let reason, let detail):
                let rip = (try? vcpu.registers().rip).map { String($0, radix: 16) } ?? "?"
                throw KVMGuestError(message: "unexpected KVM exit \(reason) (detail \(detail)) at rip 0x\(rip)")
            }
        }
    }

    /// Parks the vCPU thread while a pause is requested; returns true when the run is abandoned.
    private func park() throws -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if abandonRequested { return true }
        if pauseRequested || held {
            try saveState()
            parked = true
            condition.broadcast()
            while (pauseRequested || held) && !abandonRequested { condition.wait() }
            parked = false
            if abandonRequested { return true }
        }
        // Cleared under the lock: a pause requested after this point sets it again before the next KVM_RUN.
        vcpu.setImmediateExit(false)
        return false
    }

    /// The guest reported done: completes the OUT (KVM_RUN with immediate_exit), saves the final state.
    private func finish() throws -> KVMGuestOutcome {
        condition.lock()
        vcpu.setImmediateExit(true)
        condition.unlock()
        let exit = try vcpu.runOnce()
        guard exit == .interrupted else {
            throw KVMGuestError(message: "the vCPU did not stop after the guest reported done (\(exit))")
        }
        condition.lock()
        defer { condition.unlock() }
        try saveState(status: .finished)
        let results = KVMGuestResults(memory: vcpu.machine.memory)
        return .finished(checksum: results.checksum, operations: results.completed)
    }

    private static func refusal(_ code: UInt32) -> String {
        switch code {
        case 0: return "no parameter block (bad magic)"
        case 1: return "the table does not fit the data area (RAM too small for the slots)"
        case 3: return "unknown mode"
        default: return "unknown reason"
        }
    }
}
