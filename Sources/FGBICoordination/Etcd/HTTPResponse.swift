import Foundation

/// An HTTP/1.1 response as read off a ``HTTPConnection``: the status line, the headers, and a body framed by
/// Content-Length, by chunked transfer coding (whose trailers, which etcd's gateway sends with every error,
/// are read and dropped) or by the end of the connection.
struct HTTPResponse {
    var status: Int
    /// Header names in lower case; a repeated header keeps its last value.
    var headers: [String: String]
    var body: [UInt8]
    /// Whether the connection can carry another request: HTTP/1.1, no `Connection: close`, and a body whose
    /// end was marked (not read to the end of the connection).
    var keepAlive: Bool

    /// Longest header line, and largest body, accepted: etcd's answers are far smaller (its default request
    /// limit is 1.5 MiB), so anything bigger is not etcd.
    static let lineLimit = 16 << 10
    static let bodyLimit = 64 << 20

    /// Reads one response. Interim 1xx responses are skipped.
    static func read(from connection: HTTPConnection, deadline: UInt64) throws(HTTPConnection.Failure) -> HTTPResponse {
        while true {
            let response = try readOne(from: connection, deadline: deadline)
            if !(100...199).contains(response.status) { return response }
        }
    }

    private static func readOne(from connection: HTTPConnection, deadline: UInt64) throws(HTTPConnection.Failure)
        -> HTTPResponse
    {
        let statusLine = try readStatusLine(from: connection, deadline: deadline)
        var headers: [String: String] = [:]
        var headerBytes = 0
        while true {
            let line = try connection.readLine(limit: lineLimit, deadline: deadline)
            if line.isEmpty { break }
            headerBytes += line.count
            guard headerBytes <= 4 * lineLimit else { throw .notHTTP("headers over \(4 * lineLimit) bytes") }
            let text = String(decoding: line, as: UTF8.self)
            guard let colon = text.firstIndex(of: ":") else {
                throw .notHTTP("a header line without a colon: \(shown(line))")
            }
            headers[text[..<colon].lowercased()] = text[text.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        let status = statusLine.status
        var keepAlive = statusLine.minorVersion >= 1 && headers["connection"]?.lowercased() != "close"
        let body: [UInt8]
        if (100...199).contains(status) || status == 204 || status == 304 {
            body = []
        } else if let coding = headers["transfer-encoding"]?.lowercased(), coding != "identity" {
            guard coding == "chunked" else { throw .notHTTP("transfer coding '\(coding)' is not supported") }
            body = try readChunked(from: connection, deadline: deadline)
        } else if let length = headers["content-length"] {
            guard let count = Int(length), count >= 0 else {
                throw .notHTTP("Content-Length '\(length)' is not a length")
            }
            guard count <= bodyLimit else { throw .notHTTP("a body of \(count) bytes") }
            body = try connection.read(count, deadline: deadline)
        } else {
            body = try connection.readToEnd(limit: bodyLimit, deadline: deadline)
            keepAlive = false
        }
        return HTTPResponse(status: status, headers: headers, body: body, keepAlive: keepAlive)
    }

    /// `HTTP/1.x NNN reason`; anything else is not HTTP, reported with what came instead.
    private static func readStatusLine(
        from connection: HTTPConnection,
        deadline: UInt64
    ) throws(HTTPConnection.Failure) -> (minorVersion: Int, status: Int) {
        let line: [UInt8]
        do {
            line = try connection.readLine(limit: lineLimit, deadline: deadline)
        } catch {
            // A peer that sends something other than HTTP and holds the connection would otherwise keep the
            // caller waiting for a line end until the deadline; what it sent tells enough.
            if case .timedOut = error, !connection.pending.isEmpty,
                !connection.pending.starts(with: "HTTP/1.".utf8.prefix(connection.pending.count))
            {
                throw .notHTTP("the answer begins \(shown(connection.pending))")
            }
            throw error
        }
        let text = String(decoding: line, as: UTF8.self)
        let parts = text.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let minor = Int(parts[0].dropFirst("HTTP/1.".count)),
            parts[1].count == 3, let status = Int(parts[1]), status >= 100
        else {
            throw .notHTTP("the answer begins \(shown(line))")
        }
        return (minor, status)
    }

    /// A chunked body: hex sizes (extensions ignored), each chunk followed by CRLF, a zero-size chunk, then
    /// trailer lines up to an empty one.
    private static func readChunked(from connection: HTTPConnection, deadline: UInt64) throws(HTTPConnection.Failure)
        -> [UInt8]
    {
        var body: [UInt8] = []
        while true {
            let line = try connection.readLine(limit: lineLimit, deadline: deadline)
            let sizeText = String(decoding: line, as: UTF8.self).split(separator: ";", maxSplits: 1).first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                throw .notHTTP("a chunk size '\(shown(line))'")
            }
            if size == 0 { break }
            guard body.count + size <= bodyLimit else { throw .notHTTP("a body over \(bodyLimit) bytes") }
            body += try connection.read(size, deadline: deadline)
            guard try connection.readLine(limit: 2, deadline: deadline).isEmpty else {
                throw .notHTTP("a chunk longer than its size")
            }
        }
        while try !connection.readLine(limit: lineLimit, deadline: deadline).isEmpty {}
        return body
    }

    /// The start of some bytes, printable, for error messages.
    static func shown(_ bytes: some Collection<UInt8>) -> String {
        let text = bytes.prefix(40).map { $0 >= 0x20 && $0 < 0x7F ? String(UnicodeScalar($0)) : "." }.joined()
        return "'\(text)\(bytes.count > 40 ? "..." : "")'"
    }
}
