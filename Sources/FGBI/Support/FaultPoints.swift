import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Named places in the epoch cycle where a fault-injection test can make this process die as a crash
/// would (SIGKILL: no cleanup, no flush), chosen from outside through the environment:
///
///     FGBI_FAULT_POINT=backup.persist.append:3 fgbi backup ...   # die at the 3rd journal append
///
/// Unset (production), ``reach(_:)`` checks a flag read once. The points are listed in ``Point``;
/// Docs/RELIABILITY.md says which failure each one stands for and what must survive it.
package enum FaultPoints {
    /// A place where the process may be told to die.
    public enum Point: String, CaseIterable, Sendable {
        /// The primary, with the guest paused, after collecting the written pages and before capturing them.
        case primaryPause = "primary.pause"
        /// The primary's sender, before writing an epoch frame to the socket.
        case primarySend = "primary.send"
        /// The backup, after staging an epoch (every record checked) and before writing it to the replica.
        case backupApply = "backup.apply"
        /// The backup, half-way through appending an epoch to its journal (a torn record on disk).
        case backupPersistAppend = "backup.persist.append"
        /// The backup, after appending an epoch to its journal and before fdatasync.
        case backupPersistSync = "backup.persist.sync"
        /// The backup, after an epoch is durable and before its acknowledgement is sent.
        case backupAcknowledge = "backup.ack"
    }

    /// What the environment asks for: a point and the hit to die at, or why it names none.
    private static let request: Result<(point: Point, count: Int), FGBIError>? = parse(
        getenv("FGBI_FAULT_POINT").map { String(cString: $0) })
    private static let armed = try? request?.get()
    private static let enabled = armed != nil

    /// Why `FGBI_FAULT_POINT` arms nothing though it is set (it names no known point), for a program to refuse
    /// to start with (`fgbi` does); nil when it is unset or valid. A library never exits for it: the
    /// variable is then ignored.
    public static var environmentProblem: FGBIError? {
        if case .failure(let problem)? = request { return problem }
        return nil
    }

    /// Reads `POINT[:HIT]`; nil for no value.
    static func parse(_ value: String?) -> Result<(point: Point, count: Int), FGBIError>? {
        guard let value, !value.isEmpty else { return nil }
        let parts = value.split(separator: ":", maxSplits: 1).map(String.init)
        guard let point = Point(rawValue: parts[0]) else {
            return .failure(
                .invalidArgument(
                    "FGBI_FAULT_POINT names no fault point '\(parts[0])'; known: "
                        + Point.allCases.map(\.rawValue).joined(separator: ", ")))
        }
        let count = parts.count == 2 ? Int(parts[1]) ?? 1 : 1
        return .success((point, max(count, 1)))
    }
    private static let hits = Atomic<Int>(0)

    /// Marks that the process is at `point`; dies with SIGKILL if the environment asked for this point and
    /// this is the hit it named.
    @inline(__always)
    public static func reach(_ point: Point) {
        guard enabled else { return }
        trip(point)
    }

    private static func trip(_ point: Point) {
        guard let armed, armed.point == point else { return }
        let hit = hits.add(1, ordering: .relaxed).newValue
        if hit == armed.count { kill(getpid(), SIGKILL) }
    }
}
