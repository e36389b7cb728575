#if canImport(Glibc)
    import Glibc
#endif

/// Who runs the other end of a loopback TCP connection: the user ID the kernel lists for that socket in
/// `/proc/net/tcp` (or `tcp6`), found by its address and port. Without a key, a connection on loopback is
/// trusted only when the process at the other end runs as the same user as this one, or as root: otherwise
/// any local user could feed a backup epochs, or bind the backup's port first and receive the primary's
/// memory (Docs/SECURITY.md).
enum LoopbackPeerOwner {
    /// Whether the other end of `socket` runs as this process's user or as root. False when it cannot be
    /// told (not found, already closed): keyless trust fails closed.
    static func isTrusted(_ socket: Socket) -> Bool {
        guard let owner = owner(of: socket) else { return false }
        return owner == geteuid() || owner == 0
    }

    /// The user ID owning the other end of `socket`, if the kernel lists it.
    static func owner(of socket: Socket) -> uid_t? {
        guard let ours = address(socket.descriptor, getsockname), let theirs = address(socket.descriptor, getpeername),
            ours.family == theirs.family
        else { return nil }
        let table = ours.family == AF_INET ? "/proc/net/tcp" : "/proc/net/tcp6"
        guard let text = try? KernelFile.text(table) else { return nil }
        // The other end's socket has their address as local and ours as remote.
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 7, fields[1] == theirs.text, fields[2] == ours.text else { continue }
            return uid_t(fields[7])
        }
        return nil
    }

    /// A socket's own or peer address as `/proc/net/tcp` prints it: the address's 32-bit words in hex as the
    /// kernel holds them, a colon, the port in hex.
    private static func address(
        _ descriptor: Int32,
        _ query: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32
    )
        -> (family: Int32, text: Substring)?
    {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { query(descriptor, $0, &length) }
        }
        guard rc == 0 else { return nil }
        return withUnsafeBytes(of: &storage) { raw -> (Int32, Substring)? in
            let family = Int32(raw.load(as: sa_family_t.self))
            let port = UInt16(raw[2]) << 8 | UInt16(raw[3])
            let (offset, words) = family == AF_INET ? (4, 1) : family == AF_INET6 ? (8, 4) : (0, 0)
            guard words > 0 else { return nil }
            var text = ""
            for word in 0..<words {
                let value = raw.loadUnaligned(fromByteOffset: offset + 4 * word, as: UInt32.self)
                text += hex(UInt64(value), digits: 8)
            }
            return (family, Substring(text + ":" + hex(UInt64(port), digits: 4)))
        }
    }

    private static func hex(_ value: UInt64, digits: Int) -> String {
        let text = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(digits - text.count, 0)) + text
    }
}
