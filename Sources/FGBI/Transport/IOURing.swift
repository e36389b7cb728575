import CSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A liburing ring used to send on stream sockets, plain (IORING_OP_SEND) or zero-copy (IORING_OP_SEND_ZC).
///
/// Buffer lifetime, the one rule that matters: a buffer given to a send must stay valid and unchanged
/// until that send completes, and for a zero-copy send until its notification completion
/// (IORING_CQE_F_NOTIF) arrives, which can come after the send's own completion. ``send(_:on:messageSize:zeroCopy:)``
/// returns only after both, so its caller may reuse the buffer at once.
package final class IOURing: @unchecked Sendable {
    private let ring: OpaquePointer

    /// What a send reported.
    package struct SendReport: Sendable, Equatable {
        /// Send operations issued (more than the messages when the kernel sent short and the rest was resent).
        package var operations = 0
        /// Zero-copy notifications received, and how many of them said the kernel copied the data anyway.
        package var notifications = 0
        package var copiedNotifications = 0
    }

    package init(entries: UInt32 = 64) throws(SystemError) {
        var error: Int32 = 0
        guard let ring = CSupport_io_uring_new(entries, &error) else {
            throw SystemError(
                operation: "io_uring_queue_init", errno: error,
                hint: error == EPERM || error == ENOSYS
                    ? "io_uring is disabled (kernel.io_uring_disabled) or absent; FGBI falls back to send()" : "")
        }
        self.ring = ring
    }

    deinit { CSupport_io_uring_delete(ring) }

    /// Sends all of `buffer` on `fd` in messages of `messageSize` bytes, one in flight at a time, resuming
    /// after short sends. Returns once every byte went out and, for zero-copy, every notification arrived.
    package func send(_ buffer: UnsafeRawBufferPointer, on fd: Int32, messageSize: Int, zeroCopy: Bool)
        throws(SystemError) -> SendReport
    {
        var report = SendReport()
        var offset = 0
        var pendingNotifications = 0
        while offset < buffer.count {
            let length = min(messageSize, buffer.count - offset)
            let start = buffer.baseAddress! + offset
            let tag = UInt64(offset)
            let queued =
                zeroCopy
                ? CSupport_io_uring_prep_send_zc(
                    ring, fd, start, length, Int32(MSG_NOSIGNAL), CSupport_IORING_SEND_ZC_REPORT_USAGE, tag)
                : CSupport_io_uring_prep_send(ring, fd, start, length, Int32(MSG_NOSIGNAL), tag)
            guard queued == 0 else { throw SystemError(operation: "io_uring_get_sqe", errno: -queued) }
            try Syscall.shim("io_uring_submit") { CSupport_io_uring_submit(ring) }
            report.operations += 1
            // Wait for this send's own completion (notifications of earlier sends may arrive first).
            var sent: Int32?
            while sent == nil {
                let completion = try waitCompletion()
                if completion.flags & CSupport_IORING_CQE_F_NOTIF != 0 {
                    pendingNotifications -= 1
                    report.notifications += 1
                    if UInt32(bitPattern: completion.result) & CSupport_IORING_NOTIF_USAGE_ZC_COPIED != 0 {
                        report.copiedNotifications += 1
                    }
                    continue
                }
                if completion.flags & CSupport_IORING_CQE_F_MORE != 0 { pendingNotifications += 1 }
                sent = completion.result
            }
            guard let result = sent, result >= 0 else {
                let code = -(sent ?? -EIO)
                throw SystemError(
                    operation: zeroCopy ? "io_uring send_zc" : "io_uring send", errno: code,
                    hint: code == EPIPE || code == ECONNRESET ? "the peer closed the connection" : "")
            }
            offset += Int(result) // a short send resumes from where it stopped
        }
        while pendingNotifications > 0 {
            let completion = try waitCompletion()
            guard completion.flags & CSupport_IORING_CQE_F_NOTIF != 0 else { continue }
            pendingNotifications -= 1
            report.notifications += 1
            if UInt32(bitPattern: completion.result) & CSupport_IORING_NOTIF_USAGE_ZC_COPIED != 0 {
                report.copiedNotifications += 1
            }
        }
        return report
    }

    /// Queues one sendmsg of `message` on `fd` (IORING_OP_SENDMSG, or IORING_OP_SENDMSG_ZC with
    /// `zeroCopyFlags` when given), tagged `tag`. `message`, its iovecs and their bytes must stay unchanged
    /// until the completion (and for zero copy the notification) arrives.
    func queueSendmsg(_ message: UnsafePointer<msghdr>, on fd: Int32, flags: Int32, zeroCopyFlags: UInt16?, tag: UInt64)
        throws(SystemError)
    {
        let queued =
            if let zeroCopyFlags {
                CSupport_io_uring_prep_sendmsg_zc(ring, fd, message, flags, zeroCopyFlags, tag)
            } else {
                CSupport_io_uring_prep_sendmsg(ring, fd, message, flags, tag)
            }
        guard queued == 0 else {
            throw SystemError(operation: "io_uring_get_sqe", errno: -queued, hint: "the submission queue is full")
        }
    }

    /// Submits what is queued and waits until a completion is ready, in one system call.
    func submitAndWait() throws(SystemError) {
        try Syscall.shim("io_uring_submit_and_wait") { CSupport_io_uring_submit_and_wait(ring, 1) }
    }

    /// Waits for the next completion and consumes it.
    func waitCompletion() throws(SystemError) -> (userData: UInt64, result: Int32, flags: UInt32) {
        var userData: UInt64 = 0
        var result: Int32 = 0
        var flags: UInt32 = 0
        try Syscall.shim("io_uring_wait_cqe") { CSupport_io_uring_wait_cqe(ring, &userData, &result, &flags) }
        return (userData, result, flags)
    }
}
