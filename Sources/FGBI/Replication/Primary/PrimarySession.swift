import Synchronization

/// A primary's session with its backups, as the threads that serve it share it: the backups connected (by
/// their index in ``PrimaryConfiguration/backups``), with several backups the frames kept for them, the
/// session's stream and what each held at its start, a generation that threads of an older session check to
/// end, and the session's threads. ``Primary`` opens, runs and closes sessions over it (Primary+Sessions.swift,
/// Primary+Links.swift); one object serves every session in turn.
final class PrimarySession: @unchecked Sendable {
    /// The session's backups (nil: not connected). Replaced whole only with the session threads stopped; a
    /// backup rejoining a running session fills its slot.
    let links: PthreadLock<[BackupLink?]>
    /// With several backups: the session's frames, sent to each backup by its writer and kept for those that
    /// fall behind or return (nil with one backup, whose frames the sender sends itself). Replaced only with
    /// the session threads stopped.
    var backlog: EpochBacklog?
    /// With several backups: the session's stream (``Hello/stream``); nil with one backup.
    var stream: [UInt8]?
    /// With several backups: what each backup reached at the session's start held then (its next epoch and
    /// summary). One that returns holding exactly that again (it lost the session before any epoch of it and
    /// undid its pre-copy) catches up from the session's first frame.
    var heldAtStart: [Int: (nextEpoch: UInt64, summary: ReplicaSummary?)] = [:]
    /// Counts sessions opened and closed: a thread of an older session that sees it change ends.
    let generation = Atomic<Int>(0)
    /// The threads of the current session (per backup: acknowledgements, heartbeats, writer, rejoin).
    private let threads = PthreadLock<[JoinableThread]>([])

    init(backups: Int) {
        links = PthreadLock(Array(repeating: nil, count: backups))
    }

    /// The backups connected now.
    var connected: [BackupLink] {
        links.withLock { $0.compactMap { $0 } }.filter { $0.isOpen.load(ordering: .acquiring) }
    }

    /// Starts a thread of this session, joined by ``joinThreads()``.
    func spawnThread(_ name: String, _ body: @escaping @Sendable () -> Void) throws {
        let thread = try JoinableThread(name: name, body)
        threads.withLock { $0.append(thread) }
    }

    /// Joins every thread of the session (a backup's acknowledgement thread ends when the backup closes),
    /// until none is left.
    func joinThreads() {
        while let thread = threads.withLock({ $0.popLast() }) { thread.join() }
    }

    /// Closes every backup's connection on purpose (its threads end without a failure).
    func closeLinks() {
        for link in links.withLock({ $0 }) { link?.close() }
    }

    /// Forgets every backup (after their threads were joined).
    func clearLinks() {
        links.withLock { links in for index in links.indices { links[index] = nil } }
    }
}
