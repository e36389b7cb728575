import FGBI

/// The `fgbi probe` report: what the kernel offers and which tracker backends will work, as text or as a
/// Codable value for `--json`.
public struct CapabilityReport: Codable, Sendable, Equatable {
    /// One named capability: present or not, with the reason when not.
    public struct Item: Codable, Sendable, Equatable {
        public var name: String
        public var available: Bool
        public var detail: String?
    }

    public var kernelRelease: String
    public var machine: String
    public var userfaultfd: Item
    public var userfaultfdFeatures: [Item]
    public var pagemapScan: Item
    public var ioUring: [Item]
    public var kvm: Item
    public var transparentHugePages: String?
    /// One item per tracker backend, for anonymous and for memfd regions.
    public var trackers: [Item]

    package init(_ capabilities: KernelCapabilities = .current) {
        kernelRelease = capabilities.kernelRelease
        machine = capabilities.machine
        transparentHugePages = capabilities.transparentHugePages
        switch capabilities.userfaultfd {
        case .success(let features):
            userfaultfd = Item(name: "userfaultfd", available: true, detail: nil)
            userfaultfdFeatures = UserfaultfdFeatures.named.map {
                Item(
                    name: "UFFD_FEATURE_\($0.name)", available: features.contains($0.feature),
                    detail: features.contains($0.feature) ? nil : "needs Linux \($0.since)")
            }
        case .failure(let error):
            userfaultfd = Item(name: "userfaultfd", available: false, detail: error.description)
            userfaultfdFeatures = []
        }
        pagemapScan = Self.item("PAGEMAP_SCAN", capabilities.pagemapScan)
        switch capabilities.ioUringOpcodes {
        case .success(let table):
            ioUring = table.keys.sorted().map { Item(name: "IORING_OP_\($0)", available: table[$0]!, detail: nil) }
        case .failure(let error):
            ioUring = [Item(name: "io_uring", available: false, detail: error.description)]
        }
        kvm = Self.item("/dev/kvm", capabilities.kvm)
        trackers = [GuestMemory.Kind.anonymous, .memfd(name: "")].flatMap { region in
            TrackerKind.allCases.map { tracker in
                let reason = capabilities.unavailableReason(for: tracker, regionKind: region)
                return Item(name: "\(tracker) (\(region))", available: reason == nil, detail: reason)
            }
        }
    }

    private static func item(_ name: String, _ result: Result<Void, SystemError>) -> Item {
        switch result {
        case .success: return Item(name: name, available: true, detail: nil)
        case .failure(let error): return Item(name: name, available: false, detail: error.description)
        }
    }

    /// The headline in one line: kernel, and which of the features FGBI leans on are here.
    public var summaryLine: String {
        func mark(_ item: Item) -> String { item.available ? "yes" : "no" }
        let asyncWP = userfaultfdFeatures.first { $0.name == "UFFD_FEATURE_WP_ASYNC" }.map(mark) ?? "no"
        let zeroCopy = ioUring.first { $0.name == "IORING_OP_SEND_ZC" }.map(mark) ?? "no"
        let usable = trackers.filter(\.available).map(\.name).filter { $0.hasSuffix("(anonymous)") }
            .map { $0.replacingOccurrences(of: " (anonymous)", with: "") }
        return
            "kernel \(kernelRelease): userfaultfd \(mark(userfaultfd)), async write-protect \(asyncWP), PAGEMAP_SCAN "
                + """
                \(mark(pagemapScan)), io_uring SEND_ZC \(zeroCopy); trackers here: \(usable.joined(separator: ", ")) \
                (fgbi probe for more)
                """
    }

    /// The report as aligned text, a section per subsystem.
    public var text: String {
        var lines = ["kernel            \(kernelRelease) (\(machine))"]
        func add(_ title: String, _ items: [Item]) {
            lines.append("")
            lines.append(title)
            for item in items {
                let mark = item.available ? "yes" : "no "
                let detail = item.detail.map { item.name.padding(to: 32) + "  " + $0 } ?? item.name
                lines.append("  \(mark)  \(detail)")
            }
        }
        add("userfaultfd", [userfaultfd] + userfaultfdFeatures)
        add("dirty-page scanning", [pagemapScan])
        add("io_uring", ioUring)
        add("virtualization", [kvm])
        if let thp = transparentHugePages {
            lines.append("")
            lines.append("transparent huge pages: \(thp) (FGBI advises MADV_NOHUGEPAGE on tracked regions)")
        }
        add("tracker backends", trackers)
        return lines.joined(separator: "\n")
    }
}

extension String {
    /// The string padded with spaces to at least `width` characters.
    func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
