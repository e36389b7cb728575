/// Text a peer sent (the reason in an `error` frame), made safe to log: such text may come before any
/// authentication, from anyone who can reach the port. Control characters (which could forge log lines or
/// drive a terminal) and invalid UTF-8 are written as escapes, and the text is cut to ``maximumBytes``.
enum PeerText {
    /// The most bytes of a peer's text kept.
    static let maximumBytes = 200

    /// `bytes` as printable text: at most ``maximumBytes`` of them, control characters as `\u{..}`, a cut
    /// marked by "…".
    static func printable(_ bytes: [UInt8]) -> String {
        let kept = bytes.prefix(maximumBytes)
        var text = ""
        for scalar in String(decoding: kept, as: UTF8.self).unicodeScalars {
            switch scalar.value {
            // Line and paragraph separators and bidirectional overrides can disguise a log line too.
            case 0x2028, 0x2029, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069:
                text += "\\u{\(String(scalar.value, radix: 16))}"
            case 0x20..<0x7F, 0xA0...: text.unicodeScalars.append(scalar)
            default: text += "\\u{\(String(scalar.value, radix: 16))}"
            }
        }
        return bytes.count > maximumBytes ? text + "…" : text
    }
}
