/// One etcd member's client URL, checked: `http://host:port` or `https://host:port` (TLS), where host is a
/// name, an IPv4 address or a bracketed IPv6 address, and nothing follows the port but an optional `/`.
struct EtcdEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// The URL as the operator wrote it, without a trailing slash: what errors name.
    let url: String
    let host: String
    let port: Int
    /// `https://`: the client speaks TLS to this member.
    let isSecure: Bool

    /// Checks `text`; the error says what is wrong with it and what a good one looks like.
    init(_ text: String) throws(EtcdError) {
        func invalid(_ problem: String) -> EtcdError {
            EtcdError(operation: "etcd client", endpoint: text, reason: .invalidEndpoint(problem))
        }
        let trimmed = text.hasSuffix("/") ? String(text.dropLast()) : text
        let secure = trimmed.lowercased().hasPrefix("https://")
        guard secure || trimmed.lowercased().hasPrefix("http://") else {
            if trimmed.contains("://") {
                throw invalid("only http:// and https:// URLs are supported (give https://host:port)")
            }
            throw invalid(
                """
                the scheme is missing: give https://\(trimmed.isEmpty ? "host:port" : trimmed) (or http:// on a \
                private network)
                """
            )
        }
        let scheme = secure ? "https://" : "http://"
        let authority = trimmed.dropFirst(scheme.count)
        guard !authority.contains("/"), !authority.contains("?"), !authority.contains("#") else {
            throw invalid("a client URL has no path: give \(scheme)host:port")
        }
        guard !authority.contains("@") else {
            throw invalid("user names and passwords in the URL are not supported")
        }
        let host: Substring
        let portText: Substring
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw invalid("an IPv6 address needs its closing ]")
            }
            host = authority[authority.startIndex...close]
            let rest = authority[authority.index(after: close)...]
            guard rest.hasPrefix(":") else { throw invalid("the port is missing: give \(scheme)\(host):2379") }
            portText = rest.dropFirst()
        } else {
            guard let colon = authority.lastIndex(of: ":") else {
                throw invalid(
                    "the port is missing: give \(scheme)\(authority.isEmpty ? "host" : String(authority)):2379")
            }
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
            guard !host.contains(":") else { throw invalid("put an IPv6 address in brackets: \(scheme)[address]:port") }
        }
        guard !host.isEmpty, host != "[]" else { throw invalid("the host is missing: give \(scheme)host:port") }
        let allowed =
            host.hasPrefix("[")
            ? host.dropFirst().dropLast().allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
            : host.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_") }
        guard allowed else { throw invalid("'\(host)' is not a host name or address") }
        guard let port = Int(portText), (1...65_535).contains(port) else {
            throw invalid("'\(portText)' is not a port (1-65535)")
        }
        self.url = "\(scheme)\(host):\(port)"
        self.host = String(host)
        self.port = port
        isSecure = secure
    }

    var description: String { url }
}
