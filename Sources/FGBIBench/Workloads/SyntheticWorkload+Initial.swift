import FGBI

extension SyntheticWorkload {
    /// Fills `memory` with the initial content this workload starts from in traces and recordings: a
    /// long-running guest's (``fillGuest(_:seed:)``) for ``guest``, ``fillInitial(_:seed:)`` for the others.
    public func fillInitialContent(_ memory: GuestMemory, seed: UInt64) {
        if self == .guest { Self.fillGuest(memory, seed: seed) } else { Self.fillInitial(memory, seed: seed) }
    }
}
