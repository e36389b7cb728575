/// The dirty-tracking backends FGBI offers, by the names the CLI uses.
public enum TrackerKind: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Async userfaultfd write-protect plus PAGEMAP_SCAN (Linux 6.7): no fault thread, no signal handler.
    /// The default.
    case uffdAsync = "uffd-async"
    /// Classic userfaultfd write-protect with a fault-handling thread that records every fault's page,
    /// time and thread: the slow path, for fault-tracking diagnostics.
    case uffdSync = "uffd-sync"
    /// No kernel help: rehashes every page and compares with the previous hashes. The fallback where
    /// userfaultfd is missing, and the reference the others are checked against.
    case scan

    public var description: String { rawValue }

    /// Parses a CLI name, with an error that lists the valid ones.
    public static func parse(_ name: String) throws(FGBIError) -> TrackerKind {
        guard let kind = TrackerKind(rawValue: name) else {
            throw .invalidArgument(
                "unknown tracker '\(name)'; choose one of \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return kind
    }

    /// Creates this backend for `memory`. The tracker is not started. `hotPages` applies to `uffd-async`
    /// only (the others ignore it): collections then report a superset of the written pages.
    ///
    /// - Throws: ``SystemError`` when the kernel denies a call (userfaultfd as an unprivileged user, say),
    ///   ``FGBIError/unsupported(feature:neededBy:hint:)`` naming a feature the kernel lacks.
    public func makeTracker(for memory: GuestMemory, hotPages: HotPagePolicy = .off) throws -> any DirtyTracker {
        switch self {
        case .uffdAsync: return try AsyncWriteProtectTracker(memory: memory, hotPages: hotPages)
        case .uffdSync: return try SyncWriteProtectTracker(memory: memory)
        case .scan: return ScanTracker(memory: memory)
        }
    }
}
