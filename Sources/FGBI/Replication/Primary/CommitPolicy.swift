/// When a primary with several backups counts an epoch as committed (``PrimaryConfiguration/commitPolicy``):
/// the moment output produced during it may be released.
public enum CommitPolicy: Sendable, Equatable, CustomStringConvertible {
    /// Every backup acknowledged the epoch. A backup lost or behind holds every commit back (the primary
    /// reconnects it, within ``PrimaryConfiguration/reconnectWindow``, or stops).
    case all
    /// At least `k` of the backups acknowledged it. A backup lost or slow does not hold commits back while
    /// `k` others keep up; it catches up from the epochs kept for it when it returns
    /// (``PrimaryConfiguration/catchUpBytes``), or all backups are resynchronised.
    case quorum(Int)

    /// How many of `backups` must acknowledge an epoch.
    public func required(of backups: Int) -> Int {
        switch self {
        case .all: return backups
        case .quorum(let k): return k
        }
    }

    /// Checks the policy against the number of backups.
    ///
    /// - Throws: ``FGBIError/invalidArgument(_:)`` for a quorum below 1 or above the number of backups.
    public func check(backups: Int) throws {
        if case .quorum(let k) = self, k < 1 || k > backups {
            throw FGBIError.invalidArgument(
                "a commit quorum of \(k) needs between 1 and the \(backups) backup\(backups == 1 ? "" : "s") given")
        }
    }

    /// The newest epoch this policy counts as committed, given what each backup acknowledged (nil: nothing
    /// yet, or a backup not connected).
    func committed(_ acknowledged: [UInt64?]) -> UInt64? {
        let required = self.required(of: acknowledged.count)
        let known = acknowledged.compactMap { $0 }.sorted(by: >)
        guard required >= 1, known.count >= required else { return nil }
        return known[required - 1]
    }

    /// `all` or `quorum:K`, as `fgbi primary --commit` takes it.
    public var description: String {
        switch self {
        case .all: return "all"
        case .quorum(let k): return "quorum:\(k)"
        }
    }

    /// Parses `all` or `quorum:K`.
    public init?(_ text: String) {
        if text == "all" {
            self = .all
        } else if text.hasPrefix("quorum:"), let k = Int(text.dropFirst("quorum:".count)) {
            self = .quorum(k)
        } else {
            return nil
        }
    }
}
