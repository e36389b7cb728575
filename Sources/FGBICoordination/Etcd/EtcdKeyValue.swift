/// A key as etcd stores it, with its value and the revisions that date it.
public struct EtcdKeyValue: Sendable, Equatable {
    public var key: String
    /// The value's bytes, as written (etcd values are binary).
    public var value: [UInt8]
    /// The cluster revision at which the key was created (since it last did not exist).
    public var createRevision: Int64
    /// The cluster revision of the key's last write.
    public var modRevision: Int64
    /// How many times the key was written since it was created (1 after the first put).
    public var version: Int64
    /// The lease the key is attached to, 0 for none.
    public var lease: Int64

    public init(
        key: String, value: [UInt8], createRevision: Int64, modRevision: Int64, version: Int64, lease: Int64 = 0
    ) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.version = version
        self.lease = lease
    }

    /// The value as UTF-8 text, or nil when it is not valid UTF-8.
    public var string: String? { String(validating: value, as: UTF8.self) }
}
