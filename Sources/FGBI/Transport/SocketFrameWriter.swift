#if canImport(Glibc)
    import Glibc
#endif

/// ``FrameSendPath/socket``: blocking sendmsg(2) of all of a frame's pieces, resumed after short sends,
/// without SIGPIPE.
package final class SocketFrameWriter: FrameWriter, @unchecked Sendable { // one thread at a time (FrameWriter)
    let path = FrameSendPath.socket
    private let socket: Socket
    private let counters: FrameSendCounters
    private let vectors = FrameVectors()

    package init(socket: Socket, counters: FrameSendCounters) {
        self.socket = socket
        self.counters = counters
    }

    package func write(header: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, mac: UnsafeRawBufferPointer)
        throws(SystemError)
    {
        vectors.load(header, payload, mac)
        while !vectors.isEmpty {
            let sent = sendmsg(socket.descriptor, vectors.message, Int32(MSG_NOSIGNAL))
            if sent < 0 {
                let code = errno
                if code == EINTR { continue }
                throw SystemError(operation: "sendmsg", errno: code, hint: FrameWriterHints.send(code))
            }
            guard sent > 0 else {
                throw SystemError(operation: "sendmsg", errno: EIO, hint: "the kernel took no bytes")
            }
            if sent < vectors.remaining { FrameSendCounters.increment(counters.shortSends) }
            vectors.advance(by: sent)
        }
        FrameSendCounters.increment(counters.socketFrames)
    }
}
