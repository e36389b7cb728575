import ArgumentParser
import FGBI
import FGBICoordination
import Foundation
import Logging

/// Failover coordination through etcd, shared by `fgbi primary` and `fgbi backup`.
struct CoordinationOptions: ParsableArguments {
    @Option(help: ArgumentHelp("etcd members, comma-separated (http://HOST:PORT,...): the primary holds a lease and a fencing term, the backup takes over only once that lease expired. Without it failover rests on heartbeats alone, which is not partition-safe.",
                               valueName: "urls"))
    var etcd: String?

    @Option(help: "Cluster name in the etcd keys (/fgbi/CLUSTER/GUEST/primary).")
    var cluster = "default"

    @Option(name: .customLong("guest-name"), help: "The guest's name: carried in the handshake (primary and backup must agree; session keys are derived from it) and, with --etcd, in the keys (/fgbi/CLUSTER/GUEST/..., default: guest). With `fgbi primary --guest` specs, each spec's name is used instead.")
    var guestName: String?

    /// The guest's name in the keys.
    var guest: String { guestName ?? "guest" }

    @Option(help: "This node's name, recorded as primary in etcd (default: the host name).")
    var node: String?

    @Option(name: .customLong("lease-ttl-s"), help: "Lease time to live in seconds: a primary cut from etcd stops within it, a backup takes over after it.")
    var leaseTTLSeconds = 3

    @Option(name: .customLong("etcd-timeout-ms"), help: "How long one etcd request may take before the next member is tried.")
    var etcdTimeoutMilliseconds = 1000

    /// Whether `--etcd` was given.
    var isEnabled: Bool { etcd != nil }

    func validate() throws {
        // The same rules as in the etcd keys, with or without etcd: the name travels in the handshake too.
        if let guestName {
            do { _ = try GuestKeys(cluster: cluster, guest: guestName) } catch { throw ValidationError("\(error)") }
        }
        guard let etcd else {
            guard node == nil else { throw ValidationError("--node names this node in etcd: give --etcd too") }
            return
        }
        guard (1...3600).contains(leaseTTLSeconds) else { throw ValidationError("--lease-ttl-s must be between 1 and 3600") }
        guard (50...60_000).contains(etcdTimeoutMilliseconds) else { throw ValidationError("--etcd-timeout-ms must be between 50 and 60000") }
        do {
            _ = try EtcdClient(endpoints: Self.members(etcd), requestTimeout: .milliseconds(etcdTimeoutMilliseconds))
            _ = try GuestKeys(cluster: cluster, guest: guest)
            try GuestKeys.validate(nodeName, what: "node")
        } catch {
            throw ValidationError("\(error)")
        }
    }

    static func members(_ list: String) -> [String] {
        list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    var nodeName: String {
        if let node { return node }
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "node"
        return String(host.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "-" }.prefix(64))
    }

    /// Connects to etcd and checks that it answers (a bad or unreachable endpoint fails here, at start-up,
    /// with the reason); nil without `--etcd`.
    func connect(role: String) throws -> (client: EtcdClient, keys: GuestKeys, node: String)? {
        guard let etcd else {
            Progress.note("\(role): no --etcd: failover rests on heartbeats alone, which is NOT partition-safe (a cut link can leave two primaries); fine for a two-node lab, not for production")
            return nil
        }
        let client = try EtcdClient(endpoints: Self.members(etcd), requestTimeout: .milliseconds(etcdTimeoutMilliseconds))
        let status = try client.status()
        Progress.note("\(role): etcd \(status.version) answers at \(client.endpoints.joined(separator: ",")); guest \(guest) of cluster \(cluster), node \(nodeName)")
        return (client, try GuestKeys(cluster: cluster, guest: guest), nodeName)
    }
}
