import FGBI
import Foundation

/// A recorded trace as a running guest: a thread writes the trace's next image (only the pages that differ)
/// every `intervalMilliseconds`, behind a pause gate the primary's ``hooks`` close at epoch boundaries, until
/// the trace ends. What `fgbi demo --trace DIR` replicates.
public final class TraceGuest: @unchecked Sendable {
    private let replayer: TraceReplayer
    private let intervalMilliseconds: Double
    private let gate = NSLock()
    private let finished = DispatchSemaphore(value: 0)
    private let state = NSLock()
    private var running = false
    private var failure: TraceError?

    /// Writes the trace's first image into `memory` (set-up, before tracking starts).
    public init(memory: GuestMemory, trace: TraceDirectory, intervalMilliseconds: Double) throws(TraceError) {
        replayer = try TraceReplayer(memory: memory, trace: trace)
        try replayer.prepare()
        self.intervalMilliseconds = intervalMilliseconds
    }

    /// Close the gate (wait for an image being written to finish) and open it again.
    public var hooks: PauseHooks {
        PauseHooks(pause: { [gate] in gate.lock() }, resume: { [gate] in gate.unlock() })
    }

    /// Pages written so far, and whether every image has been written.
    public var written: Int { state.withLock { replayer.written } }
    public var isFinished: Bool { state.withLock { !running } }

    public func start() {
        state.withLock { running = true }
        Thread.detachNewThread { [self] in
            defer { finished.signal() }
            while state.withLock({ running }) {
                gate.lock()
                let more: Bool
                do throws(TraceError) {
                    more = try replayer.writeNext()
                } catch {
                    state.withLock { failure = error }
                    more = false
                }
                gate.unlock()
                guard more else { break }
                Thread.sleep(forTimeInterval: intervalMilliseconds / 1000)
            }
            state.withLock { running = false }
        }
    }

    /// Stops writing and waits for the writer; throws what failed while reading the trace, if anything.
    public func stop() throws(TraceError) {
        state.withLock { running = false }
        finished.wait()
        finished.signal() // stop() may be called again
        if let failure = state.withLock({ failure }) { throw failure }
    }
}
