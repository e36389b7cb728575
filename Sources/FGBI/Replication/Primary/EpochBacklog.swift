/// The frames of a session with several backups, encoded once and kept until every backup that keeps up
/// has sent them: each backup's writer sends from its own position, and a backup that returns within the
/// session catches up from here (``PrimaryConfiguration/catchUpBytes``).
///
/// Frames are dropped oldest first once the bytes kept exceed the budget, but only frames that at least
/// `required` connected backups have sent (the ``CommitPolicy``'s count): a backup still behind such a frame
/// falls out of the session (it is resynchronised when it returns), while the sender waits rather than drop
/// a frame fewer than `required` backups have (backpressure, as a single slow backup applies).
final class EpochBacklog: @unchecked Sendable {
    /// One frame, numbered in session order.
    struct Entry {
        let sequence: Int
        let type: WireFormat.FrameType
        /// The epoch of an `epoch` frame (pre-copy frames commit none).
        let epoch: UInt64?
        let payload: [UInt8]
    }

    private struct State {
        var entries: [Entry] = []
        /// Index in `entries` of the oldest frame kept (dropped frames are compacted away in batches).
        var head = 0
        var nextSequence = 0
        var bytes = 0
        /// Per backup of the session: the sequence of the next frame it sends, or nil when it is not connected.
        var positions: [Int?]
        var lastEpochAppended: UInt64?
    }

    let budgetBytes: Int
    let required: Int
    private let state: PthreadLock<State>

    init(backups: Int, required: Int, budgetBytes: Int) {
        self.budgetBytes = budgetBytes
        self.required = required
        state = PthreadLock(State(positions: Array(repeating: nil, count: backups)))
    }

    /// Backup `backup` sends from the first frame kept on (a session's start).
    func attachFromStart(_ backup: Int) {
        state.withLock {
            $0.positions[backup] = $0.entries.count > $0.head ? $0.entries[$0.head].sequence : $0.nextSequence
        }
    }

    /// Backup `backup` sends from the session's first frame, if it is still kept (a backup that returns as it
    /// was when the session started); false when that frame was dropped.
    func attachFromFirst(_ backup: Int) -> Bool {
        state.withLock { state in
            let first = state.entries.count > state.head ? state.entries[state.head].sequence : state.nextSequence
            guard first == 0 else { return false }
            state.positions[backup] = 0
            return true
        }
    }

    /// Backup `backup`, which holds `heldEpoch` of this session, sends from the frame after that epoch's: true
    /// when every frame after it is still kept, false when it must be resynchronised.
    func attach(_ backup: Int, holding heldEpoch: UInt64) -> Bool {
        state.withLock { state in
            if let held = state.entries[state.head...].first(where: { $0.epoch == heldEpoch }) {
                state.positions[backup] = held.sequence + 1
                return true
            }
            // The newest epoch sent, its frame dropped already: nothing follows it (pre-copy frames come only
            // before a session's first epoch).
            if heldEpoch == state.lastEpochAppended {
                state.positions[backup] = state.nextSequence
                return true
            }
            return false
        }
    }

    /// Backup `backup` left the session: it no longer holds frames back.
    func detach(_ backup: Int) {
        state.withLock { $0.positions[backup] = nil }
    }

    /// Keeps a frame for every backup. Drops old frames past the budget when `required` connected backups
    /// have sent them, and returns the backups that were behind a dropped frame (to be disconnected); waits
    /// while the budget is exceeded by frames fewer backups have sent, until `shouldStop` says to give up.
    func append(_ type: WireFormat.FrameType, epoch: UInt64?, payload: [UInt8], shouldStop: () -> Bool) -> [Int] {
        var fallenBehind: [Int] = []
        while true {
            let (room, dropped) = state.withLock { state -> (Bool, [Int]) in
                var dropped: [Int] = []
                while state.bytes + payload.count > budgetBytes, state.head < state.entries.count {
                    let oldest = state.entries[state.head].sequence
                    let sent = state.positions.filter { ($0 ?? Int.min) > oldest }.count
                    guard sent >= required else { break }
                    for (backup, position) in state.positions.enumerated() where position.map({ $0 <= oldest }) ?? false
                    {
                        state.positions[backup] = nil
                        dropped.append(backup)
                    }
                    state.bytes -= state.entries[state.head].payload.count
                    state.head += 1
                }
                if state.head > 64, state.head * 2 > state.entries.count {
                    state.entries.removeFirst(state.head)
                    state.head = 0
                }
                // Always room for one frame when nothing else is kept, whatever its size, and for the bye.
                guard state.bytes + payload.count <= budgetBytes || state.head == state.entries.count || type == .bye
                else {
                    return (false, dropped)
                }
                state.entries.append(Entry(sequence: state.nextSequence, type: type, epoch: epoch, payload: payload))
                state.nextSequence += 1
                state.bytes += payload.count
                if let epoch { state.lastEpochAppended = epoch }
                return (true, dropped)
            }
            fallenBehind += dropped
            if room || shouldStop() { return fallenBehind }
            MonotonicClock.sleep(nanoseconds: 500_000)
        }
    }

    /// The frame backup `backup` sends next, if one is kept; nil when it is up to date or detached.
    func next(for backup: Int) -> Entry? {
        state.withLock { state in
            guard let position = state.positions[backup], position < state.nextSequence else { return nil }
            let first = state.entries.count > state.head ? state.entries[state.head].sequence : state.nextSequence
            guard position >= first else { return nil }
            return state.entries[state.head + (position - first)]
        }
    }

    /// Backup `backup` sent the frame numbered `sequence`.
    func sent(_ sequence: Int, by backup: Int) {
        state.withLock { state in
            if let position = state.positions[backup], position == sequence { state.positions[backup] = sequence + 1 }
        }
    }

    /// Whether backup `backup` has sent every frame kept (or left the session).
    func hasSentEverything(_ backup: Int) -> Bool {
        state.withLock { state in state.positions[backup].map { $0 >= state.nextSequence } ?? true }
    }

    /// Bytes of frames kept.
    var bytesKept: Int { state.withLock { $0.bytes } }
}
