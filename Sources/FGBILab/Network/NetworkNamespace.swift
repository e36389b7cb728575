import CSupport
import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// A named network namespace (as `ip netns` makes them, under /var/run/netns), which a thread can enter so
/// the sockets it creates afterwards live there. Tests and benchmarks use it to put a backup behind a veth
/// link, so replication crosses a real network device instead of loopback.
public struct NetworkNamespace: Sendable {
    public let name: String

    public init(name: String) {
        self.name = name
    }

    /// Moves the calling thread into this namespace (for good: use a thread of its own).
    public func enter() throws {
        let path = "/var/run/netns/\(name)"
        let fd = try Syscall.libc(
            "open(\(path))", hint: { $0 == ENOENT ? "no such namespace; create it with ip netns add" : "" }
        ) {
            open(path, O_RDONLY | O_CLOEXEC)
        }
        defer { close(fd) }
        try Syscall.shim(
            "setns(\(name))", hint: { $0 == EPERM ? "entering a network namespace needs CAP_SYS_ADMIN" : "" }
        ) {
            CSupport_setns(fd, CSupport_CLONE_NEWNET)
        }
    }
}

extension TCPConnectionPair {
    /// A pair whose receiving end listens on `host` inside `namespace` (reached from here through a veth
    /// link) and whose sending end connects from the caller's namespace.
    public convenience init(host: String, receiverIn namespace: NetworkNamespace) throws {
        try self.init(host: host, listenerSetup: { try namespace.enter() })
    }
}
