import FGBI
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// How epoch payloads go out on a stream socket.
public enum SendMethod: String, CaseIterable, Sendable, Codable {
    /// Blocking send(2), resumed after short sends.
    case send
    /// io_uring IORING_OP_SEND.
    case uringSend = "uring-send"
    /// io_uring IORING_OP_SEND_ZC: the kernel sends from the buffer without copying it, when the path
    /// allows (on loopback and veth it copies anyway and says so in the notification).
    case uringZeroCopy = "uring-send-zc"
}

/// Sends buffers on a connected stream socket with one ``SendMethod``.
public final class StreamSender: @unchecked Sendable {
    public let method: SendMethod
    private let descriptor: Int32
    private let ring: IOURing?

    /// What a send did.
    public struct Report: Sendable, Equatable {
        /// Send calls or io_uring operations issued.
        public var operations = 0
        /// SEND_ZC notifications, and how many reported that the kernel copied the data.
        public var notifications = 0
        public var copiedNotifications = 0

        public init(operations: Int = 0, notifications: Int = 0, copiedNotifications: Int = 0) {
            self.operations = operations
            self.notifications = notifications
            self.copiedNotifications = copiedNotifications
        }
    }

    /// - Throws: ``SystemError`` when the method needs io_uring and the kernel refuses it.
    public init(descriptor: Int32, method: SendMethod) throws {
        self.descriptor = descriptor
        self.method = method
        ring = method == .send ? nil : try IOURing()
    }

    /// Sends all of `buffer` in messages of `messageSize` bytes; returns when the buffer may be reused.
    public func send(_ buffer: UnsafeRawBufferPointer, messageSize: Int) throws -> Report {
        guard let ring else {
            var report = Report()
            var offset = 0
            while offset < buffer.count {
                let length = min(messageSize, buffer.count - offset)
                let sent = Glibc.send(descriptor, buffer.baseAddress! + offset, length, Int32(MSG_NOSIGNAL))
                if sent < 0 {
                    if errno == EINTR { continue }
                    throw SystemError(operation: "send", errno: errno)
                }
                report.operations += 1
                offset += sent // a short send resumes from where it stopped
            }
            return report
        }
        let ringReport = try ring.send(
            buffer, on: descriptor, messageSize: messageSize, zeroCopy: method == .uringZeroCopy)
        return Report(
            operations: ringReport.operations, notifications: ringReport.notifications,
            copiedNotifications: ringReport.copiedNotifications)
    }
}

/// A connected TCP pair on this machine: for benchmarks and tests of the send paths.
public final class TCPConnectionPair: @unchecked Sendable {
    private let listener: Socket
    private let client: Socket
    private let server: Socket

    /// The sending end's descriptor and the receiving end's.
    public var senderDescriptor: Int32 { client.descriptor }
    public var receiverDescriptor: Int32 { server.descriptor }

    /// Listens on `host` (port chosen by the kernel), connects, accepts.
    public convenience init(host: String = "127.0.0.1") throws {
        try self.init(host: host, listenerSetup: nil)
    }

    /// Creates the listening socket on a thread of its own that first runs `listenerSetup` (entering a
    /// network namespace, say), then connects from the calling thread and accepts.
    init(host: String, listenerSetup: (@Sendable () throws -> Void)?) throws {
        guard let listenerSetup else {
            listener = try Socket.listen(on: Endpoint(host: host, port: 0))
            client = try Socket.connect(to: Endpoint(host: host, port: listener.localPort))
            server = try listener.accept().socket
            return
        }
        let made = Mutex<Result<Socket, Error>?>(nil)
        let thread = try JoinableThread(name: "fgbi-listener") {
            made.withLock {
                $0 = Result {
                    try listenerSetup()
                    return try Socket.listen(on: Endpoint(host: host, port: 0))
                }
            }
        }
        thread.join()
        listener = try made.withLock { $0! }.get()
        client = try Socket.connect(to: Endpoint(host: host, port: listener.localPort))
        server = try listener.accept().socket
    }

    /// Shrinks the sender's kernel buffer (tests use it to force short sends).
    public func setSendBuffer(bytes: Int) { client.setSendBuffer(bytes: bytes) }
}
