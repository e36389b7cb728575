/// One etcd member's client URL, checked: `http://host:port`, where host is a name, an IPv4 address or a
/// bracketed IPv6 address, and nothing follows the port but an optional `/`.
struct EtcdEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// The URL as the operator wrote it, without a trailing slash: what errors name.
    let url: String
    let host: String
    let port: Int

    /// Checks `text`; the error says what is wrong with it and what a good one looks like.
    init(_ text: String) throws(EtcdError) {
        func invalid(_ problem: String) -> EtcdError {
            EtcdError(operation: "etcd client", endpoint: text, reason: .invalidEndpoint(problem))
        }
        let trimmed = text.hasSuffix("/") ? String(text.dropLast()) : text
        if trimmed.lowercased().hasPrefix("https://") {
            throw invalid("https is not supported: this client speaks plain HTTP to etcd's JSON gateway; give http://host:port (reach a TLS-only cluster through a local proxy)")
        }
        guard trimmed.lowercased().hasPrefix("http://") else {
            if trimmed.contains("://") {
                throw invalid("only http:// URLs are supported (give http://host:port)")
            }
            throw invalid("the scheme is missing: give http://\(trimmed.isEmpty ? "host:port" : trimmed)")
        }
        let authority = trimmed.dropFirst("http://".count)
        guard !authority.contains("/"), !authority.contains("?"), !authority.contains("#") else {
            throw invalid("a client URL has no path: give http://host:port")
        }
        guard !authority.contains("@") else {
            throw invalid("user names and passwords in the URL are not supported")
        }
        let host: Substring
        let portText: Substring
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw invalid("an IPv6 address needs its closing ]") }
            host = authority[authority.startIndex...close]
            let rest = authority[authority.index(after: close)...]
            guard rest.hasPrefix(":") else { throw invalid("the port is missing: give http://\(host):2379") }
            portText = rest.dropFirst()
        } else {
            guard let colon = authority.lastIndex(of: ":") else {
                throw invalid("the port is missing: give http://\(authority.isEmpty ? "host" : String(authority)):2379")
            }
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
            guard !host.contains(":") else { throw invalid("put an IPv6 address in brackets: http://[address]:port") }
        }
        guard !host.isEmpty, host != "[]" else { throw invalid("the host is missing: give http://host:port") }
        let allowed = host.hasPrefix("[")
            ? host.dropFirst().dropLast().allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
            : host.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_") }
        guard allowed else { throw invalid("'\(host)' is not a host name or address") }
        guard let port = Int(portText), (1...65_535).contains(port) else {
            throw invalid("'\(portText)' is not a port (1-65535)")
        }
        self.url = "http://\(host):\(port)"
        self.host = String(host)
        self.port = port
    }

    var description: String { url }
}
