/// How a connection writes its frames to the socket.
///
/// Every path hands a frame's pieces (header, payload, authentication code) to the kernel together and
/// returns only when all of it went out and the frame's buffers may be reused; they differ in the system
/// interface. Measured frame by frame over loopback here (`fgbi bench send --frames`, Docs/BENCHMARKS.md),
/// sendmsg(2) was as fast as an io_uring SENDMSG submission or faster at every size from 8 bytes to 16 MiB
/// (our sender waits for each frame, so io_uring's asynchrony buys nothing), and zero copy was the slowest
/// (the kernel copies anyway on loopback and veth); so ``automatic`` is sendmsg, and the io_uring paths are
/// there to choose where they measure better (a NIC that transmits without copying).
public enum FrameSendPath: Sendable, Hashable, CustomStringConvertible, LosslessStringConvertible {
    /// The path measured fastest on this kind of machine: ``socket``.
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
    /// the others; sendmsg(2) for all when io_uring is missing or disabled (the connection records why).
    case bySize(uringMinimumPayloadBytes: Int)

    /// The threshold `by-size` alone means on a command line.
    public static let defaultSplitPayloadBytes = 256 << 10

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
        case "by-size": self = .bySize(uringMinimumPayloadBytes: Self.defaultSplitPayloadBytes)
        default:
            for (prefix, make) in [
                ("uring-zc:", { FrameSendPath.uringZeroCopy(minimumPayloadBytes: $0) }),
                ("by-size:", { FrameSendPath.bySize(uringMinimumPayloadBytes: $0) }),
            ] where description.hasPrefix(prefix) {
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
