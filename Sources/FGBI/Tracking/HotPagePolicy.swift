/// Which pages the uffd-async tracker stops protecting because the guest writes them every epoch.
///
/// A first write to a write-protected page costs the guest about 1 µs (6-12 µs for a vCPU under PVM), and a
/// page written in every epoch pays it every epoch. Copying a page in the pause costs about as much. So a page
/// written in `promoteAfter` consecutive collections becomes *hot*: the tracker stops scanning it (it stays
/// unprotected after its next write) and reports it written at every collection for a lease of
/// `leaseCollections` collections (each page's lease is lengthened by up to half as much again, so
/// that leases taken together do not end together). When the lease ends the page is scanned, and
/// re-protected, like any other; it must earn its place again. The engine tells the tracker which captured
/// pages proved unchanged; a hot page captured unchanged in a quarter of its lease's epochs (at least 2)
/// loses the lease at once.
///
/// The tracker then reports a superset of the pages written: exact for the pages it scans, every hot page
/// whether written or not. Replication is unaffected (the engine compares what it captures and sends only
/// what changed), but diagnostics that need the exact written set keep the policy off. A hot page that is
/// not written costs a copy in the pause and a rehash in the encoder; `maximumPages` bounds that waste.
public struct HotPagePolicy: Sendable, Equatable, CustomStringConvertible {
    /// Off: every page is scanned at every collection (exact write sets).
    public static let off = HotPagePolicy(promoteAfter: 0, leaseCollections: 0, maximumPages: 0, maximumGap: 0)

    /// Written in this many consecutive collections makes a page hot (at least 2; 0 with the policy off).
    public var promoteAfter: Int
    /// Collections a page stays hot before it is scanned again.
    public var leaseCollections: Int
    /// Hot pages per region at most.
    public var maximumPages: Int
    /// Cold pages between two hot ones, at most this many, are reported too instead of scanned: one scan
    /// call (a system call) costs more than copying a page or two.
    public var maximumGap: Int
    /// Whether a hot page captured unchanged in a quarter of its lease's epochs loses the lease early
    /// (``DirtyTracker/noteUnchanged(_:)``); false keeps every lease to its end.
    public var demotesUnchanged = true

    /// The policy replication uses by default: hot after 2 consecutive written epochs, for 16 epochs, up to
    /// 16,384 pages (64 MiB) per region.
    public static let replicationDefault = HotPagePolicy(
        promoteAfter: 2, leaseCollections: 16, maximumPages: 16_384, maximumGap: 2)

    public init(promoteAfter: Int, leaseCollections: Int, maximumPages: Int, maximumGap: Int) {
        self.promoteAfter = promoteAfter
        self.leaseCollections = leaseCollections
        self.maximumPages = maximumPages
        self.maximumGap = maximumGap
    }

    /// Whether any page can become hot.
    public var isEnabled: Bool { maximumPages > 0 && promoteAfter > 0 && leaseCollections > 0 }

    /// Checks the numbers: `promoteAfter` 2-255 (one written collection says nothing about the next),
    /// `leaseCollections` 1-65,535, `maximumGap` not negative. A policy with `maximumPages` 0 is off and passes.
    public func validate() throws(FGBIError) {
        guard maximumPages != 0 else { return }
        guard maximumPages > 0 else {
            throw .invalidArgument("hot pages: maximumPages must not be negative, not \(maximumPages)")
        }
        guard (2...255).contains(promoteAfter) else {
            throw .invalidArgument(
                "hot pages: promoteAfter must be 2 to 255 consecutive collections, not \(promoteAfter)")
        }
        guard (1...65_535).contains(leaseCollections) else {
            throw .invalidArgument("hot pages: leaseCollections must be 1 to 65535, not \(leaseCollections)")
        }
        guard maximumGap >= 0 else {
            throw .invalidArgument("hot pages: maximumGap must not be negative, not \(maximumGap)")
        }
    }

    public var description: String {
        isEnabled
            ? "hot after \(promoteAfter) written collections for \(leaseCollections), at most \(maximumPages) pages"
                + (demotesUnchanged ? "" : ", full leases") : "off"
    }

    /// Parses the CLI form: `off`, `on` (``replicationDefault``), or `PROMOTE:LEASE:MAXPAGES`, with `:full`
    /// appended to keep every lease to its end (no demotion of pages captured unchanged).
    public static func parse(_ text: String) throws(FGBIError) -> HotPagePolicy {
        switch text {
        case "off": return .off
        case "on": return .replicationDefault
        default:
            var fields = text.split(separator: ":", omittingEmptySubsequences: false)
            let fullLeases = fields.count == 4 && fields[3] == "full"
            if fullLeases { fields.removeLast() }
            let parts = fields.map { Int($0) }
            guard parts.count == 3, let promote = parts[0], let lease = parts[1], let maximum = parts[2], maximum > 0
            else {
                throw .invalidArgument(
                    "hot pages '\(text)': use off, on, or PROMOTE:LEASE:MAXPAGES[:full] (e.g. 2:16:16384)")
            }
            var policy = HotPagePolicy(
                promoteAfter: promote, leaseCollections: lease, maximumPages: maximum,
                maximumGap: replicationDefault.maximumGap)
            policy.demotesUnchanged = !fullLeases
            try policy.validate()
            return policy
        }
    }
}
