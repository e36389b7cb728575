import ArgumentParser
import FGBI
import FGBICoordination
import Foundation
import Logging

/// Failover coordination through etcd, shared by `fgbi primary` and `fgbi backup`.
struct CoordinationOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            """
            etcd members, comma-separated (https://HOST:PORT,...; http:// only on a network no one else reaches): \
            the primary holds a lease and a fencing term, the backup takes over only once that lease expired. \
            Without it failover rests on heartbeats alone, which is not partition-safe.
            """,
            valueName: "urls"))
    var etcd: String?

    @Option(
        name: .customLong("etcd-ca"),
        help: ArgumentHelp(
            """
            PEM file of the authority that signed etcd's server certificates (https:// members; default: the \
            system's authorities).
            """,
            valueName: "file"))
    var etcdCA: String?

    @Option(
        name: .customLong("etcd-cert"),
        help: ArgumentHelp(
            "PEM file of this node's client certificate, when etcd requires one (--client-cert-auth); with --etcd-key.",
            valueName: "file"))
    var etcdCertificate: String?

    @Option(
        name: .customLong("etcd-key"),
        help: ArgumentHelp("PEM file of the client certificate's key: mode 600, owned by this user.", valueName: "file")
    )
    var etcdKey: String?

    @Option(name: .customLong("etcd-user"), help: "etcd user (etcd's own authentication); with --etcd-password-file.")
    var etcdUser: String?

    @Option(
        name: .customLong("etcd-password-file"),
        help: ArgumentHelp(
            "File holding the etcd user's password (one line; mode 600, owned by this user).", valueName: "file"))
    var etcdPasswordFile: String?

    @Option(
        name: .customLong("cluster"),
        help:
            """
            Cluster name: in the etcd keys (/fgbi/CLUSTER/GUEST/primary, default: default) and, with --etcd or \
            when given, in the handshake (primary and backup must agree; session keys are derived from it).
            """
    )
    var clusterOption: String?

    /// The cluster's name in the keys.
    var cluster: String { clusterOption ?? "default" }

    /// The cluster named in the handshake: with etcd, the keys' cluster; without, only a --cluster given.
    var handshakeCluster: String? { etcd != nil ? cluster : clusterOption }

    @Option(
        name: .customLong("guest-name"),
        help:
            """
            The guest's name: carried in the handshake (primary and backup must agree; session keys are derived \
            from it) and, with --etcd, in the keys (/fgbi/CLUSTER/GUEST/..., default: guest). With `fgbi primary \
            --guest` specs, each spec's name is used instead.
            """
    )
    var guestName: String?

    /// The guest's name in the keys.
    var guest: String { guestName ?? "guest" }

    @Option(help: "This node's name, recorded as primary in etcd (default: the host name).")
    var node: String?

    @Option(
        name: .customLong("lease-ttl-s"),
        help: "Lease time to live in seconds: a primary cut from etcd stops within it, a backup takes over after it.")
    var leaseTTLSeconds = 3

    @Option(
        name: .customLong("etcd-timeout-ms"),
        help: "How long one etcd request may take before the next member is tried.")
    var etcdTimeoutMilliseconds = 1000

    /// Whether `--etcd` was given.
    var isEnabled: Bool { etcd != nil }

    func validate() throws {
        // The same rules as in the etcd keys, with or without etcd: the name travels in the handshake too.
        if guestName != nil || clusterOption != nil {
            do { _ = try GuestKeys(cluster: cluster, guest: guest) } catch { throw ValidationError("\(error)") }
        }
        guard let etcd else {
            guard node == nil else { throw ValidationError("--node names this node in etcd: give --etcd too") }
            return
        }
        guard (1...3600).contains(leaseTTLSeconds) else {
            throw ValidationError("--lease-ttl-s must be between 1 and 3600")
        }
        guard (50...60_000).contains(etcdTimeoutMilliseconds) else {
            throw ValidationError("--etcd-timeout-ms must be between 50 and 60000")
        }
        guard (etcdCertificate == nil) == (etcdKey == nil) else {
            throw ValidationError("--etcd-cert and --etcd-key go together")
        }
        guard (etcdUser == nil) == (etcdPasswordFile == nil) else {
            throw ValidationError("--etcd-user and --etcd-password-file go together")
        }
        do {
            _ = try client(of: etcd)
            _ = try GuestKeys(cluster: cluster, guest: guest)
            try GuestKeys.validate(nodeName, what: "node")
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// The client for `--etcd`, with its TLS and credentials: key and password files must be private.
    private func client(of etcd: String) throws -> EtcdClient {
        let members = Self.members(etcd)
        var tls: EtcdTLS?
        if etcdCA != nil || etcdCertificate != nil || members.contains(where: { $0.lowercased().hasPrefix("https://") })
        {
            if let etcdKey { try PrivateFile.check(path: etcdKey, what: "etcd client key") }
            tls = EtcdTLS(caFile: etcdCA, certificateFile: etcdCertificate, keyFile: etcdKey)
        }
        var credentials: EtcdCredentials?
        if let etcdUser, let etcdPasswordFile {
            try PrivateFile.check(path: etcdPasswordFile, what: "etcd password file")
            let text = try String(contentsOfFile: etcdPasswordFile, encoding: .utf8)
            let password = text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
            guard !password.isEmpty else { throw ValidationError("--etcd-password-file \(etcdPasswordFile) is empty") }
            credentials = EtcdCredentials(user: etcdUser, password: password)
        }
        // TLS options given for http:// members are refused by the client, with the reason.
        return try EtcdClient(
            endpoints: members, requestTimeout: .milliseconds(etcdTimeoutMilliseconds),
            tls: tls, credentials: credentials)
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
            Progress.note(
                """
                \(role): no --etcd: failover rests on heartbeats alone, which is NOT partition-safe (a cut link \
                can leave two primaries); fine for a two-node lab, not for production
                """
            )
            return nil
        }
        let client = try client(of: etcd)
        let plainOffLoopback = client.endpoints.contains { url in
            url.hasPrefix("http://")
                && !((try? Endpoint(parsing: String(url.dropFirst("http://".count))))?.isLoopback ?? false)
        }
        if plainOffLoopback {
            Progress.note(
                """
                \(role): etcd over plain http:// off loopback: anyone on the path can read and steer failover; \
                use https:// members (--etcd-ca) and etcd users (--etcd-user)
                """
            )
        }
        let status = try client.status()
        Progress.note(
            """
            \(role): etcd \(status.version) answers at \(client.endpoints.joined(separator: ",")); guest \(guest) \
            of cluster \(cluster), node \(nodeName)
            """
        )
        return (client, try GuestKeys(cluster: cluster, guest: guest), nodeName)
    }
}
