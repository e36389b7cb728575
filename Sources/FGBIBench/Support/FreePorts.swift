import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// TCP ports free now, for test clusters whose members must know each other's ports before they start.
public enum FreePorts {
    /// `count` distinct ports free on `host` now (bound together, then released): the usual race with other
    /// programs taking them in between is accepted for tests. An address this namespace lacks (it is in
    /// another) falls back to ports free on every address here.
    public static func take(host: String, count: Int) throws -> [Int] {
        var sockets: [Int32] = []
        defer { for fd in sockets { close(fd) } }
        var ports: [Int] = []
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw SystemError(operation: "socket", errno: errno) }
            sockets.append(fd)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = 0
            if inet_pton(AF_INET, host, &address.sin_addr) != 1 { address.sin_addr.s_addr = INADDR_ANY }
            var bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if bound != 0 {
                address.sin_addr.s_addr = INADDR_ANY
                bound = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
            guard bound == 0 else { throw SystemError(operation: "bind(\(host):0)", errno: errno) }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        return ports
    }
}
