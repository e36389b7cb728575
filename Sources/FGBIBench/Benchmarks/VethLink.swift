import FGBI
import FGBILab
import Foundation

/// A veth link from this namespace to a fresh network namespace, made with iproute2 and removed on deinit:
/// two hosts on one machine, so tests and benchmarks send across a real network device. Addresses are in
/// 10.231.0.0/16, /30 per link, existing only inside the link.
public final class VethLink: @unchecked Sendable {
    public let namespace: NetworkNamespace
    /// This side's address, and the namespace side's.
    public let hostAddress: String
    public let peerAddress: String
    private let hostInterface: String
    private let peerInterface: String

    /// Whether links can be made here: root, iproute2, and network namespaces.
    public static let isAvailable: Bool = {
        guard getuid() == 0,
            FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip")
                || FileManager.default.isExecutableFile(atPath: "/sbin/ip")
        else { return false }
        let name = "fgbi-probe-\(getpid())"
        guard (try? run(["netns", "add", name])) != nil else { return false }
        _ = try? run(["netns", "del", name])
        return true
    }()

    private static let counter = LockedCounter()

    public init() throws {
        let serial = Self.counter.next()
        let tag = "\(getpid() % 100_000)x\(serial)"
        namespace = NetworkNamespace(name: "fgbi-\(tag)")
        hostInterface = "fgh\(tag)"
        peerInterface = "fgp\(tag)"
        let subnet = (Int(getpid()) % 60) * 1000 + serial // spreads concurrent runs over the /16
        let third = (subnet / 64) % 256
        let base = (subnet % 64) * 4
        hostAddress = "10.231.\(third).\(base + 1)"
        peerAddress = "10.231.\(third).\(base + 2)"
        try Self.run(["netns", "add", namespace.name])
        do {
            try Self.run(["link", "add", hostInterface, "type", "veth", "peer", "name", peerInterface])
            try Self.run(["link", "set", peerInterface, "netns", namespace.name])
            try Self.run(["addr", "add", "\(hostAddress)/30", "dev", hostInterface])
            try Self.run(["link", "set", hostInterface, "up"])
            try Self.run(["-n", namespace.name, "addr", "add", "\(peerAddress)/30", "dev", peerInterface])
            try Self.run(["-n", namespace.name, "link", "set", peerInterface, "up"])
            try Self.run(["-n", namespace.name, "link", "set", "lo", "up"])
        } catch {
            _ = try? Self.run(["netns", "del", namespace.name])
            _ = try? Self.run(["link", "del", hostInterface])
            throw error
        }
    }

    deinit {
        _ = try? Self.run(["netns", "del", namespace.name])
        _ = try? Self.run(["link", "del", hostInterface])
    }

    /// A way to make the link worse. This kernel has no netem (CONFIG_NET_SCH_NETEM is off), so losses,
    /// duplicates and partitions are nftables rules on each side's egress hook, and a rate limit is a token
    /// bucket (tbf) qdisc, whose queue delays packets under load.
    public enum Impairment: Sendable, Equatable {
        /// Each packet dropped with this probability (percent), both ways.
        case loss(percent: Int)
        /// Each packet sent twice with this probability (percent), both ways.
        case duplicate(percent: Int)
        /// Every packet dropped, both ways.
        case partition
        /// At most this many kilobits per second each way, with a queue of up to 300 ms.
        case rateLimit(kilobits: Int)
    }

    /// Impairs the link in both directions, replacing any earlier impairment.
    public func impair(_ impairment: Impairment) throws {
        heal()
        for (interface, namespace) in [(hostInterface, nil), (peerInterface, self.namespace.name)]
            as [(String, String?)]
        {
            let prefix = namespace.map { ["-n", $0] } ?? []
            switch impairment {
            case .rateLimit(let kilobits):
                try Self.run(
                    prefix + [
                        "qdisc", "replace", "dev", interface, "root", "tbf", "rate", "\(kilobits)kbit",
                        "burst", "16kb", "latency", "300ms",
                    ], tool: "tc")
            case .loss, .duplicate, .partition:
                let statement: String
                switch impairment {
                case .loss(let percent): statement = "numgen random mod 100 < \(percent) drop"
                case .duplicate(let percent): statement = "numgen random mod 100 < \(percent) dup to \"\(interface)\""
                default: statement = "drop"
                }
                let rules =
                    """
                    table netdev fgbi_impair {\n  chain egress {\n    type filter hook egress device \
                    \"\(interface)\" priority 0;\n    \(statement)\n  }\n}\n
                    """
                try Self.nft(namespace: namespace, file: rules)
            }
        }
    }

    /// Removes any impairment.
    public func heal() {
        for (interface, namespace) in [(hostInterface, nil), (peerInterface, self.namespace.name)]
            as [(String, String?)]
        {
            let prefix = namespace.map { ["-n", $0] } ?? []
            _ = try? Self.run(prefix + ["qdisc", "del", "dev", interface, "root"], tool: "tc")
            _ = try? Self.nft(namespace: namespace, file: "delete table netdev fgbi_impair\n")
        }
    }

    /// Whether impairments can be made here: `tc` and `nft` (Debian's iproute2 and nftables).
    public static let canImpair: Bool = ["tc", "nft"].allSatisfy { tool in
        FileManager.default.isExecutableFile(atPath: "/usr/sbin/\(tool)")
            || FileManager.default.isExecutableFile(atPath: "/sbin/\(tool)")
    }

    /// Runs `rules` as an nft script (`nft -f`), in `namespace` when given.
    private static func nft(namespace: String?, file rules: String) throws {
        let path = NSTemporaryDirectory() + "fgbi-nft-\(getpid())-\(counter.next()).nft"
        try rules.write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        if let namespace {
            try run(["netns", "exec", namespace, "nft", "-f", path])
        } else {
            try run(["-f", path], tool: "nft")
        }
    }

    /// Where a system tool (`ip`, `nft`, `tc`) is: /usr/sbin, else /sbin.
    static func toolPath(_ tool: String) -> String {
        FileManager.default.isExecutableFile(atPath: "/usr/sbin/\(tool)") ? "/usr/sbin/\(tool)" : "/sbin/\(tool)"
    }

    @discardableResult
    static func run(_ arguments: [String], tool: String = "ip") throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: toolPath(tool))
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw BenchmarkError(
                """
                \(tool) \(arguments.joined(separator: " ")) failed: \
                \(message.trimmingCharacters(in: .whitespacesAndNewlines))
                """
            )
        }
        return message
    }
}

/// A thread-safe counter.
final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
