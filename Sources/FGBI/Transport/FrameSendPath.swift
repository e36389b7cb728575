/// How a connection writes its frames to the socket.
///
/// Every path hands a frame's pieces (header, payload, authentication code) to the kernel together and
/// returns only when all of it went out and the frame's buffers may be reused; they differ in the system
/// interface. Measured frame by frame on loopback (`fgbi bench send --frames`, Docs/BENCHMARKS.md), sendmsg(2)
/// is faster than an io_uring submission for small frames (heartbeats, acknowledgements, small epochs) and
/// the two are even for large ones, while zero copy is the slowest (the kernel copies anyway), so the default
/// splits by size and zero copy is only ever used when asked for.
public enum FrameSendPath: Sendable, Hashable, CustomStringConvertible, LosslessStringConvertible {
    /// ``bySize(uringMinimumPayloadBytes:)`` at ``automaticURingMinimumPayloadBytes`` when this kernel offers
    /// io_uring with IORING_OP_SENDMSG and a ring can be set up for the connection, else ``socket``; the
    /// connection records why it fell back. Never zero copy.
    case automatic
    /// Blocking sendmsg(2) with all of a frame's pieces, resumed after short sends.
    case socket
    /// io_uring: one IORING_OP_SENDMSG submission per frame carrying all of its pieces (the kernel is asked
    /// to send them whole; a short completion is resumed with another submission).
    case uring
    /// As ``uring``, but frames whose payload has at least `minimumPayloadBytes` bytes go out with
    /// IORING_OP_SENDMSG_ZC (Linux 6.1): the kernel sends from the frame's buffers without copying them when
    /// the route allows, and the send returns only after the kernel's notification that it let go of
    /// them. On loopback and veth the kernel copies anyway and this path is the slowest.
    case uringZeroCopy(minimumPayloadBytes: Int)
    /// sendmsg(2) for frames whose payload is smaller than `uringMinimumPayloadBytes`, io_uring SENDMSG for
    /// the others (what ``automatic`` takes when io_uring is here).
    case bySize(uringMinimumPayloadBytes: Int)

    /// Where ``automatic`` switches from sendmsg(2) to io_uring: on loopback here sendmsg sent 8-byte to
    /// 64 KiB frames 8-25% faster, io_uring 256 KiB to 16 MiB frames 5-20% faster (Docs/BENCHMARKS.md).
    public static let automaticURingMinimumPayloadBytes = 256 << 10

    /// The zero-copy threshold used when none is given (`uring-zc` on a command line): below a few tens of
    /// kilobytes, pinning pages and waiting for the notification costs more than copying.
    public static let defaultZeroCopyMinimumPayloadBytes = 64 << 10

    /// `automatic`, `socket`, `uring` or `uring-zc:<minimum payload bytes>`.
    public var description: String {
        switch self {
        case .automatic: "automatic"
        case .socket: "socket"
        case .uring: "uring"
        case .uringZeroCopy(let minimum): "uring-zc:\(minimum)"
        case .bySize(let minimum): "by-size:\(minimum)"
        }
    }

    /// Parses ``description``'s forms; also `auto`, and `uring-zc` alone for the default threshold.
    /// Returns nil for anything else, including a negative threshold.
    public init?(_ description: String) {
        switch description {
        case "automatic", "auto": self = .automatic
        case "socket": self = .socket
        case "uring": self = .uring
        case "uring-zc": self = .uringZeroCopy(minimumPayloadBytes: Self.defaultZeroCopyMinimumPayloadBytes)
        case "by-size": self = .bySize(uringMinimumPayloadBytes: Self.automaticURingMinimumPayloadBytes)
        default:
            for (prefix, make) in [("uring-zc:", { FrameSendPath.uringZeroCopy(minimumPayloadBytes: $0) }),
                                   ("by-size:", { FrameSendPath.bySize(uringMinimumPayloadBytes: $0) })] where description.hasPrefix(prefix) {
                guard let minimum = Int(description.dropFirst(prefix.count)), minimum >= 0 else { return nil }
                self = make(minimum)
                return
            }
            return nil
        }
    }

    /// Whether this path needs io_uring.
    public var usesUring: Bool {
        switch self {
        case .uring, .uringZeroCopy, .bySize: true
        case .automatic, .socket: false
        }
    }
}
