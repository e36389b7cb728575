/// The `commit-group` record as etcd holds it: read once where a decision or a transaction needs it.
extension CommitGroupRecord {
    /// What etcd holds under a guest's `commit-group` key now: the record, and the revision that last wrote it.
    struct Stored {
        var record: CommitGroupRecord
        var modRevision: Int64
    }

    /// The guest's `commit-group` record now, or nil while no primaryship has recorded a commit. A value that
    /// does not parse is an error naming the key, never an absent record.
    static func read(_ client: EtcdClient, keys: GuestKeys) throws -> Stored? {
        guard let keyValue = try client.get(keys.commitGroup) else { return nil }
        return Stored(
            record: try decode(keyValue.value, key: keys.commitGroup), modRevision: keyValue.modRevision)
    }

    /// A comparison that holds while the record is still `stored` (absent, when it was read absent): a
    /// transaction decided on what was read fails if a primaryship recorded a commit since.
    static func unchanged(_ stored: Stored?, keys: GuestKeys) -> EtcdCompare {
        stored.map { EtcdCompare(key: keys.commitGroup, .modRevision($0.modRevision)) } ?? .absent(keys.commitGroup)
    }
}
