/// Why a connection between primary and backup was refused or ended. The replica is never changed by a
/// frame that raised one of these.
public enum WireError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The peer closed the connection.
    case closed
    /// Nothing arrived within the allowed time (a missed heartbeat).
    case timedOut(milliseconds: Int)
    /// Not an FGBI frame.
    case badMagic
    /// A protocol version this build does not speak.
    case unsupportedVersion(UInt16)
    /// A frame longer than the connection allows.
    case frameTooLarge(length: Int, limit: Int)
    /// A frame's authentication code is wrong, missing, or present where none was negotiated.
    case authenticationFailed(String)
    /// A sequence number other than the next one: a replayed, dropped or reordered frame.
    case outOfSequence(expected: UInt64, got: UInt64)
    /// A frame of a type not allowed at this point of the conversation.
    case unexpected(String)
    /// A malformed payload.
    case malformed(String)
    /// The two ends describe different memory (block size, page size or regions).
    case layoutMismatch(String)
    /// A peer refused the connection and said why.
    case refused(String)
    /// A frame of another fencing term than the session's, or a primary whose term is older than one this
    /// backup already knows: a primary that lost primaryship (a partition) is shut out.
    case fenced(term: UInt64, current: UInt64)
    /// Authentication is required because an end is not on loopback, and no key was given.
    case keyRequired(String)
    /// The primary replicates another guest than the one this backup holds.
    case guestMismatch(primary: String, backup: String)

    public var description: String {
        switch self {
        case .closed: return "connection closed by the peer"
        case .timedOut(let ms): return "nothing received for \(ms) ms"
        case .badMagic: return "not an FGBI frame (bad magic)"
        case .unsupportedVersion(let version):
            return "peer speaks protocol version \(version); this build speaks \(WireFormat.version)"
        case .frameTooLarge(let length, let limit): return "frame of \(length) bytes exceeds the limit of \(limit)"
        case .authenticationFailed(let why): return "authentication failed: \(why)"
        case .outOfSequence(let expected, let got):
            return "frame sequence \(got), expected \(expected): replayed or reordered frame refused"
        case .unexpected(let what): return "unexpected frame: \(what)"
        case .malformed(let what): return "malformed frame: \(what)"
        case .layoutMismatch(let what): return "primary and backup memory differ: \(what)"
        case .refused(let why): return "refused by the peer: \(why)"
        case .fenced(let term, let current):
            return term < current
                ? "fenced: term \(term) is older than term \(current); a newer primary was promoted since"
                : "fenced: frame of term \(term) on a session of term \(current)"
        case .keyRequired(let why): return "a pre-shared key is required (\(why)); pass --key-file or set FGBI_KEY_FILE"
        case .guestMismatch(let primary, let backup):
            func named(_ name: String) -> String { name.isEmpty ? "an unnamed guest" : "guest '\(name)'" }
            return
                """
                the primary replicates \(named(primary)) and this backup holds \(named(backup)) (--guest-name and \
                --cluster on both ends must agree)
                """
        }
    }
}
