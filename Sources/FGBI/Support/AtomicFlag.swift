import Synchronization

/// A boolean that several objects' threads share by reference (an `Atomic` cannot be copied into each): loads
/// acquire, stores release, so what a thread wrote before setting it is seen by a thread that reads it set.
final class AtomicFlag: Sendable {
    private let value: Atomic<Bool>

    init(_ initial: Bool) { value = Atomic(initial) }

    func load() -> Bool { value.load(ordering: .acquiring) }

    func store(_ desired: Bool) { value.store(desired, ordering: .releasing) }

    /// Stores `desired` and returns the value before.
    func exchange(_ desired: Bool) -> Bool { value.exchange(desired, ordering: .acquiringAndReleasing) }
}
