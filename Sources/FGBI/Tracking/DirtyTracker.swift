/// Learns which pages of a ``GuestMemory`` region were written during an epoch.
///
/// The life of a tracker: ``start()`` arms it (every later write is recorded); each ``collect(into:)``
/// returns the pages written since the previous collection (or since start) and re-arms them, so a write
/// that races a collection is reported either in this epoch or the next, never lost; ``stop()`` disarms it.
/// In the replication pipeline the guest is paused while ``collect(into:)`` runs.
///
/// Backends (``TrackerKind``): async userfaultfd write-protect with PAGEMAP_SCAN, classic userfaultfd with a
/// fault thread, and a rehash-everything scan that needs no kernel help.
public protocol DirtyTracker: AnyObject, Sendable {
    /// Which backend this is.
    var kind: TrackerKind { get }
    /// The region tracked.
    var memory: GuestMemory { get }
    /// Arms tracking. Writes made before this call are not reported.
    func start() throws
    /// Replaces `set` with the pages written since the last collection (or ``start()``) and re-arms them:
    /// every one of them, and (with hot pages, ``pagesReportedUnscanned``) perhaps some that were not.
    func collect(into set: inout DirtyPageSet) throws
    /// Disarms tracking and releases kernel resources. Idempotent; also done on deinit.
    func stop() throws
    /// Pages the last collection reported without looking (a ``HotPagePolicy``'s hot pages): they may not
    /// have been written. 0 for a tracker whose collections are exact.
    var pagesReportedUnscanned: Int { get }
    /// Learns that `pages` (page indices of this region), reported by a recent collection, proved unchanged
    /// when captured: a tracker with hot pages ends the lease of a hot page that keeps being captured
    /// unwritten. Others ignore it.
    func noteUnchanged<Pages: Sequence<Int>>(_ pages: Pages)
}

extension DirtyTracker {
    public var pagesReportedUnscanned: Int { 0 }
    public func noteUnchanged<Pages: Sequence<Int>>(_ pages: Pages) {}
}
