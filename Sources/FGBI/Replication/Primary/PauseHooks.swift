/// How the primary stops and restarts the guest at each epoch boundary: the embedding program's writer
/// threads, or a KVM vCPU. Everything the epoch needs is captured between `pause` and `resume` (async
/// write-protection gives no copy-on-write), so the guest must not write in between.
public struct PauseHooks: Sendable {
    public var pause: @Sendable () -> Void
    public var resume: @Sendable () -> Void

    public init(pause: @escaping @Sendable () -> Void, resume: @escaping @Sendable () -> Void) {
        self.pause = pause
        self.resume = resume
    }

    /// For memory nobody writes during replication (tests, idle regions).
    public static let none = PauseHooks(pause: {}, resume: {})
}
