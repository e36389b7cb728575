import FGBI
import FGBILab
import Foundation

/// Several hosts on one machine for partition tests: one network namespace per host, all on a bridge
/// (10.232.N.0/24, one subnet per lab, .1 being this namespace), removed on deinit. ``cut(_:_:)`` partitions two hosts
/// from each
/// other with nftables rules inside both (every packet between them dropped, both ways, established
/// connections included), ``heal(_:_:)`` removes them. Needs root and iproute2/nftables
/// (``VethLink/isAvailable``, ``VethLink/canImpair``).
public final class PartitionLab: @unchecked Sendable {
    /// One host: its namespace and address.
    public struct Host: Sendable, Hashable {
        public let name: String
        public let namespace: NetworkNamespace
        public let address: String

        public static func == (a: Host, b: Host) -> Bool { a.name == b.name }
        public func hash(into hasher: inout Hasher) { hasher.combine(name) }
    }

    public private(set) var hosts: [Host] = []
    private let bridge: String
    private let tag: String
    private var cuts = Set<[String]>()
    private let lock = NSLock()

    private static let counter = LockedCounter()

    /// Makes a bridge and one namespace per name, each with an address on the bridge's subnet.
    public init(hostNames: [String]) throws {
        let serial = Self.counter.next()
        tag = "\(getpid() % 100_000)l\(serial)"
        bridge = "fgbr\(tag)"
        let subnet = (Int(getpid()) % 200 + serial) % 250 + 1
        try VethLink.run(["link", "add", bridge, "type", "bridge"])
        do {
            // This namespace is on the bridge too (10.232.N.1), so the harness reaches every host (an etcd's
            // health check, say); cuts are between hosts only.
            try VethLink.run(["addr", "add", "10.232.\(subnet).1/24", "dev", bridge])
            try VethLink.run(["link", "set", bridge, "up"])
            for (index, name) in hostNames.enumerated() {
                let namespace = NetworkNamespace(name: "fgbi-\(tag)-\(name)")
                let outside = "fgv\(tag)\(index)"
                let address = "10.232.\(subnet).\(index + 2)"
                try VethLink.run(["netns", "add", namespace.name])
                hosts.append(Host(name: name, namespace: namespace, address: address))
                try VethLink.run([
                    "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", namespace.name,
                ])
                try VethLink.run(["link", "set", outside, "master", bridge, "up"])
                try VethLink.run(["-n", namespace.name, "addr", "add", "\(address)/24", "dev", "eth0"])
                try VethLink.run(["-n", namespace.name, "link", "set", "eth0", "up"])
                try VethLink.run(["-n", namespace.name, "link", "set", "lo", "up"])
            }
        } catch {
            tearDown()
            throw error
        }
    }

    deinit { tearDown() }

    private func tearDown() {
        for host in hosts { _ = try? VethLink.run(["netns", "del", host.namespace.name]) }
        _ = try? VethLink.run(["link", "del", bridge])
    }

    /// The host named `name`.
    public func host(_ name: String) -> Host {
        guard let host = hosts.first(where: { $0.name == name }) else {
            preconditionFailure("no host \(name) in the lab")
        }
        return host
    }

    /// Drops every packet between `a` and `b`, both ways (idempotent).
    public func cut(_ a: String, _ b: String) throws {
        let pair = [a, b].sorted()
        guard lock.withLock({ cuts.insert(pair).inserted }) else { return }
        for (from, to) in [(host(a), host(b)), (host(b), host(a))] {
            try nft(
                from,
                """
                table inet \(table(to)) {
                    chain out { type filter hook output priority 0; ip daddr \(to.address) drop; }
                    chain in { type filter hook input priority 0; ip saddr \(to.address) drop; }
                }
                """)
        }
    }

    /// Lets `a` and `b` reach each other again (idempotent).
    public func heal(_ a: String, _ b: String) {
        let pair = [a, b].sorted()
        guard lock.withLock({ cuts.remove(pair) != nil }) else { return }
        for (from, to) in [(host(a), host(b)), (host(b), host(a))] {
            _ = try? nft(from, "delete table inet \(table(to))\n")
        }
    }

    /// Removes every cut.
    public func healAll() {
        for pair in lock.withLock({ Array(cuts) }) { heal(pair[0], pair[1]) }
    }

    private func table(_ peer: Host) -> String { "fgbi_cut_\(peer.name)" }

    private func nft(_ host: Host, _ rules: String) throws {
        let path = NSTemporaryDirectory() + "fgbi-lab-\(tag)-\(host.name)-\(Self.counter.next()).nft"
        try rules.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try VethLink.run(["netns", "exec", host.namespace.name, "nft", "-f", path])
    }
}
