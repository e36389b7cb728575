#if canImport(Glibc)
    import Glibc
#endif

/// A host and TCP port, as given on the command line ("127.0.0.1:7070", "[::1]:7070", "backup.lan:7070").
public struct Endpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses "HOST:PORT" (IPv6 literals in brackets).
    public init(parsing text: String) throws(FGBIError) {
        var hostPart: Substring
        var portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw .invalidArgument("'\(text)' is not HOST:PORT (write IPv6 addresses as [ADDRESS]:PORT)")
            }
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw .invalidArgument("'\(text)' is not HOST:PORT") }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        guard !hostPart.isEmpty, let port = UInt16(portPart) else {
            throw .invalidArgument("'\(text)' is not HOST:PORT with a port from 0 to 65535")
        }
        host = String(hostPart)
        self.port = port
    }

    /// Whether the host is a loopback address literal (127.0.0.0/8, ::1) or `localhost`. A name such as
    /// `127.0.0.1.example` is not: only the literal's parsed address counts, and the primary checks the
    /// address it actually reached too.
    public var isLoopback: Bool {
        if host == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, host, &v6) == 1 else { return false }
        return withUnsafeBytes(of: &v6) { Array($0) } == [UInt8](repeating: 0, count: 15) + [1]
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
