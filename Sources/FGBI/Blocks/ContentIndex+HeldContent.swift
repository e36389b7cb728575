/// Content a resynchronised backup already held when its session began: the pages whose hashes it shares
/// with the primary. Their blocks are stored as that backup's content at their locations, so that a block
/// of a page that differs (copied there, say, from a page that did not change: a B-tree page written
/// elsewhere on copy) is sent as a copy of what the backup holds, not again.
extension ContentIndex {
    /// Stores `bytes` (hashing to `hash`) as the content the backup held at `location` before this epoch: a
    /// later block with that content is a ``Match/copy(_:)`` from `location`, and a change at `location`
    /// retires it (``takePrevious(at:hash:)``). Content already stored is not stored twice. Returns false,
    /// storing nothing, once held content has filled every stored copy once, so that held content never
    /// evicts held content and a region far larger than the budget costs a bounded number of stores (the
    /// session's own content then evicts the oldest, as always).
    ///
    /// Only for content the backup is known to hold (its page hash matched) and whose bytes cannot change
    /// while they are read (a capture's staged copy).
    func learnHeld(hash: UInt64, at location: BlockLocation, bytes: UnsafeRawPointer) -> Bool {
        guard counters.pointee.heldLearned < slotCount else { return false }
        // A location whose content is stored already keeps that copy (a session learns each page once).
        if let bit = heldBit(location.packed), isHeld(bit) { return true }
        let key = keying.key(hash)
        guard position(of: key) == nil else { return true }
        counters.pointee.heldLearned += 1
        insert(key: key, at: location, bytes: bytes, ordinal: 0, indexed: true, heldBefore: true)
        return true
    }
}
