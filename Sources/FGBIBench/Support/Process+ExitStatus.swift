import Foundation

extension Process {
    /// Waits up to `seconds` for the process to end: its exit status (128 + the signal when a signal ended it),
    /// or nil while it still runs.
    func exitStatus(within seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while isRunning, Date() < deadline { usleep(2_000) }
        guard !isRunning else { return nil }
        return terminationReason == .uncaughtSignal ? 128 + terminationStatus : terminationStatus
    }
}
