import FGBI
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

    /// Whether links can be made here: root, iproute2, and network namespaces.
    public static let isAvailable: Bool = {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") || FileManager.default.isExecutableFile(atPath: "/sbin/ip") else { return false }
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
        let peerInterface = "fgp\(tag)"
        let subnet = (Int(getpid()) % 60) * 1000 + serial  // spreads concurrent runs over the /16
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

    @discardableResult
    static func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip")
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw BenchmarkError("ip \(arguments.joined(separator: " ")) failed: \(message.trimmingCharacters(in: .whitespacesAndNewlines))")
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
