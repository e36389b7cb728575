#if canImport(Glibc)
    import Glibc
#endif

/// Writes one frame's pieces to a connected stream socket: all of them, in order, before returning.
///
/// A writer is used by one thread at a time (``FrameConnection`` calls it under its send lock; that is why
/// the implementations may be `@unchecked Sendable`) and keeps preallocated storage, so a frame costs no
/// allocation here.
protocol FrameWriter: AnyObject, Sendable {
    /// The path this writer takes (never ``FrameSendPath/automatic``).
    var path: FrameSendPath { get }

    /// Sends `header`, `payload` and `mac` (any may be empty) as one stream of bytes, resuming after short
    /// sends. Returns once the kernel has taken every byte and no longer reads the buffers (for zero copy:
    /// after its notifications), so the caller may free or reuse them at once.
    /// - Throws: ``SystemError`` naming the failed call; the connection is then unusable.
    func write(header: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, mac: UnsafeRawBufferPointer)
        throws(SystemError)
}

/// Picks and builds the writer for a ``FrameSendPath``.
enum FrameWriters {
    /// The writer for `path` on `socket`, counting into `counters`, and why `.automatic` fell back to the
    /// socket path (nil when it did not, and for explicit paths).
    ///
    /// `.automatic` is the socket path, which measured fastest here at every frame size; `.bySize` falls
    /// back to it (and says why) when io_uring is missing or disabled; `.uring` and `.uringZeroCopy` insist
    /// and throw.
    /// - Throws: ``SystemError`` when an explicitly requested io_uring path cannot run here.
    static func make(
        for path: FrameSendPath, socket: Socket, counters: FrameSendCounters,
        support: Result<URingSendSupport, SystemError> = URingSendSupport.current
    )
        throws(SystemError) -> (writer: any FrameWriter, fallback: SystemError?)
    {
        switch path {
        case .socket:
            return (SocketFrameWriter(socket: socket, counters: counters), nil)
        case .automatic:
            // Measured here (Docs/BENCHMARKS.md, "Replication frames per send path"): sendmsg(2) sent frames
            // of every size as fast as io_uring or faster, so automatic is sendmsg. io_uring stays a choice.
            return (SocketFrameWriter(socket: socket, counters: counters), nil)
        case .bySize(let threshold):
            // Large frames through io_uring when it is here; without it, everything through sendmsg(2).
            let small = SocketFrameWriter(socket: socket, counters: counters)
            do throws(SystemError) {
                let large = try uring(socket: socket, counters: counters, zeroCopyMinimum: nil, support: support)
                return (SizeSplitFrameWriter(small: small, large: large, threshold: max(threshold, 0)), nil)
            } catch {
                return (small, error)
            }
        case .uring:
            return (try uring(socket: socket, counters: counters, zeroCopyMinimum: nil, support: support), nil)
        case .uringZeroCopy(let minimum):
            return (
                try uring(socket: socket, counters: counters, zeroCopyMinimum: max(minimum, 0), support: support), nil
            )
        }
    }

    private static func uring(
        socket: Socket, counters: FrameSendCounters, zeroCopyMinimum: Int?,
        support: Result<URingSendSupport, SystemError>
    ) throws(SystemError) -> URingFrameWriter {
        let path: FrameSendPath = zeroCopyMinimum.map { .uringZeroCopy(minimumPayloadBytes: $0) } ?? .uring
        if let reason = try support.get().unavailableReason(for: path) { throw reason }
        return try URingFrameWriter(socket: socket, counters: counters, zeroCopyMinimumPayloadBytes: zeroCopyMinimum)
    }
}

/// Operator advice for a failed send, shared by the writers.
enum FrameWriterHints {
    /// For an errno from a send.
    static func send(_ code: Int32) -> String {
        code == EPIPE || code == ECONNRESET ? "the peer closed the connection" : ""
    }
}
