/// A lease granted by etcd: keys attached to it are deleted when it expires, which it does unless kept alive
/// (``EtcdClient/keepAlive(_:)``) within its TTL.
public struct EtcdLease: Sendable, Equatable {
    /// The lease's ID, which keys name to attach to it.
    public var id: Int64
    /// The time to live etcd granted, in seconds (etcd may grant more than asked, never less).
    public var ttlSeconds: Int

    public init(id: Int64, ttlSeconds: Int) {
        self.id = id
        self.ttlSeconds = ttlSeconds
    }
}
