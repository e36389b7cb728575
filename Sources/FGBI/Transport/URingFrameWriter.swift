import CSupport

#if canImport(Glibc)
    import Glibc
#endif

/// ``FrameSendPath/uring`` and ``FrameSendPath/uringZeroCopy(minimumPayloadBytes:)``: each frame is one
/// io_uring submission, IORING_OP_SENDMSG (or IORING_OP_SENDMSG_ZC for a large enough payload) carrying all
/// of its pieces, with MSG_WAITALL so the kernel sends the whole frame before completing.
///
/// Buffer lifetime: the frame's bytes, the iovecs and the msghdr must stay unchanged until the kernel is
/// done with them. For a plain send that is its completion; for a zero-copy send it is the notification
/// completion (IORING_CQE_F_NOTIF) that follows a completion flagged IORING_CQE_F_MORE, possibly much later
/// (when the data is acknowledged). ``write(header:payload:mac:)`` returns only after the completion of its
/// last submission and every notification, even when it throws, so its caller may reuse buffers at once.
final class URingFrameWriter: FrameWriter, @unchecked Sendable { // one thread at a time (FrameWriter)
    let path: FrameSendPath
    private let socket: Socket
    private let counters: FrameSendCounters
    private let ring: IOURing
    private let vectors = FrameVectors()
    /// Payloads this long or longer go out zero-copy; nil: never.
    private let zeroCopyMinimum: Int?
    /// The zero-copy flags: IORING_SEND_ZC_REPORT_USAGE (Linux 6.2) so notifications say whether the kernel
    /// copied; 0 after a kernel refused it.
    private(set) var zeroCopyFlags = CSupport_IORING_SEND_ZC_REPORT_USAGE
    /// Ask the kernel to complete only when the whole frame went out (MSG_WAITALL), so a frame is one
    /// submission however small the socket buffer. Older kernels may ignore it for sends and complete
    /// short, which the writer resumes; tests turn it off to exercise that.
    var asksForWholeFrames = true
    /// Set when the ring failed in a way that may leave an operation queued or in flight: every later write
    /// throws it rather than risk a stale submission going out.
    private var failure: SystemError?
    private var tag: UInt64 = 0

    /// Sets up a small ring of its own for `socket`.
    /// - Throws: ``SystemError`` from io_uring_queue_init (EPERM when io_uring is disabled, ENOSYS without it).
    init(socket: Socket, counters: FrameSendCounters, zeroCopyMinimumPayloadBytes: Int?) throws(SystemError) {
        self.socket = socket
        self.counters = counters
        zeroCopyMinimum = zeroCopyMinimumPayloadBytes
        path = zeroCopyMinimumPayloadBytes.map { .uringZeroCopy(minimumPayloadBytes: $0) } ?? .uring
        // One operation is in flight at a time; the completion queue (twice this) holds its notification too.
        ring = try IOURing(entries: 4)
    }

    /// Whether zero-copy notifications report copies (false after the kernel refused to).
    var reportsZeroCopyUsage: Bool { zeroCopyFlags & CSupport_IORING_SEND_ZC_REPORT_USAGE != 0 }

    func write(header: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, mac: UnsafeRawBufferPointer)
        throws(SystemError)
    {
        if let failure { throw failure }
        let zeroCopy = zeroCopyMinimum.map { payload.count >= $0 } ?? false
        vectors.load(header, payload, mac)
        var pendingNotifications = 0
        var sendError: SystemError?
        do throws(SystemError) {
            var sentAny = false
            while !vectors.isEmpty {
                let offered = vectors.remaining
                let result = try submit(zeroCopy: zeroCopy, pendingNotifications: &pendingNotifications)
                if result <= 0 {
                    let code = result == 0 ? EIO : -result
                    if code == EINTR { continue } // nothing went out: offer the same bytes again
                    if code == EINVAL && zeroCopy && reportsZeroCopyUsage && !sentAny {
                        zeroCopyFlags = 0 // a 6.1 kernel: zero copy without the usage report
                        continue
                    }
                    sendError = SystemError(
                        operation: zeroCopy ? "io_uring sendmsg_zc" : "io_uring sendmsg", errno: code,
                        hint: result == 0 ? "the kernel took no bytes" : FrameWriterHints.send(code))
                    break
                }
                sentAny = true
                if Int(result) < offered { FrameSendCounters.increment(counters.shortSends) }
                vectors.advance(by: Int(result))
            }
            // The buffers are the kernel's until every notification is in, also after a failed send.
            while pendingNotifications > 0 {
                let completion = try ring.waitCompletion()
                if completion.flags & CSupport_IORING_CQE_F_NOTIF != 0 {
                    notified(completion.result, &pendingNotifications)
                }
            }
        } catch {
            failure = error
            throw error
        }
        if let sendError { throw sendError }
        if zeroCopy {
            FrameSendCounters.increment(counters.zeroCopyFrames)
        } else {
            FrameSendCounters.increment(counters.uringFrames)
        }
    }

    /// Submits one sendmsg of what is left of the frame and waits for its completion (counting the
    /// notifications of earlier zero-copy submissions that arrive meanwhile). Returns its result: bytes sent
    /// or -errno.
    private func submit(zeroCopy: Bool, pendingNotifications: inout Int) throws(SystemError) -> Int32 {
        tag &+= 1
        let flags = Int32(MSG_NOSIGNAL) | (asksForWholeFrames ? Int32(MSG_WAITALL) : 0)
        try ring.queueSendmsg(
            vectors.message, on: socket.descriptor, flags: flags,
            zeroCopyFlags: zeroCopy ? zeroCopyFlags : nil, tag: tag)
        try ring.submitAndWait()
        FrameSendCounters.increment(counters.uringSubmissions)
        while true {
            let completion = try ring.waitCompletion()
            if completion.flags & CSupport_IORING_CQE_F_NOTIF != 0 {
                notified(completion.result, &pendingNotifications)
                continue
            }
            guard completion.userData == tag else { continue }
            if completion.flags & CSupport_IORING_CQE_F_MORE != 0 { pendingNotifications += 1 }
            return completion.result
        }
    }

    private func notified(_ result: Int32, _ pendingNotifications: inout Int) {
        pendingNotifications -= 1
        FrameSendCounters.increment(counters.zeroCopyNotifications)
        if UInt32(bitPattern: result) & CSupport_IORING_NOTIF_USAGE_ZC_COPIED != 0 {
            FrameSendCounters.increment(counters.copiedNotifications)
        }
    }
}
