import Glibc
import Testing

@testable import FGBI

/// The send path choice: parsing, what `.automatic` falls back to and why, typed errors for explicit io_uring
/// requests the kernel cannot serve, and the iovec bookkeeping every path resumes short sends with.
@Suite("Frame send paths: choice")
struct FrameSendPathTests {
    @Test func pathsParseFromTheirDescriptions() {
        for path in [
            FrameSendPath.automatic, .socket, .uring, .uringZeroCopy(minimumPayloadBytes: 4096),
            .bySize(uringMinimumPayloadBytes: 1000),
        ] {
            #expect(FrameSendPath(path.description) == path)
        }
        #expect(FrameSendPath("auto") == .automatic)
        #expect(
            FrameSendPath("uring-zc")
                == .uringZeroCopy(minimumPayloadBytes: FrameSendPath.defaultZeroCopyMinimumPayloadBytes))
        #expect(FrameSendPath("uring-zc:-1") == nil)
        #expect(FrameSendPath("by-size") == .bySize(uringMinimumPayloadBytes: FrameSendPath.defaultSplitPayloadBytes))
        #expect(FrameSendPath("by-size:x") == nil)
        #expect(FrameSendPath("sendfile") == nil)
    }

    /// A socket of a connected loopback pair, for building writers.
    func connectedSocket() throws -> (Socket, Socket) {
        let listener = try Socket.listen(on: Endpoint(host: "127.0.0.1", port: 0))
        let client = try Socket.connect(to: Endpoint(host: "127.0.0.1", port: listener.localPort))
        return (client, try listener.accept().socket)
    }

    @Test func automaticIsTheSocketPathAndBySizeFallsBackToItAndRecordsWhy() throws {
        let (socket, _) = try connectedSocket()
        let present = URingSendSupport(sendmsg: true, sendmsgZeroCopy: true)
        let (automatic, none) = try FrameWriters.make(
            for: .automatic, socket: socket, counters: FrameSendCounters(), support: .success(present))
        #expect(automatic.path == .socket, "sendmsg measured fastest at every size here")
        #expect(none == nil)

        let split = FrameSendPath.bySize(uringMinimumPayloadBytes: 1 << 20)
        let disabled = SystemError(operation: "io_uring probe", errno: EPERM, hint: URingSendSupport.hint(EPERM))
        let (writer, fallback) = try FrameWriters.make(
            for: split, socket: socket, counters: FrameSendCounters(),
            support: .failure(disabled))
        #expect(writer.path == .socket)
        #expect(fallback == disabled)
        #expect(fallback?.description.contains("kernel.io_uring_disabled") == true)

        let old = URingSendSupport(sendmsg: false, sendmsgZeroCopy: false)
        let (oldWriter, oldFallback) = try FrameWriters.make(
            for: split, socket: socket, counters: FrameSendCounters(),
            support: .success(old))
        #expect(oldWriter.path == .socket)
        #expect(oldFallback?.operation == "io_uring IORING_OP_SENDMSG" && oldFallback?.errno == EOPNOTSUPP)
    }

    @Test func explicitURingRequestsFailWithTheTypedError() throws {
        let (socket, _) = try connectedSocket()
        let absent = SystemError(operation: "io_uring probe", errno: ENOSYS, hint: URingSendSupport.hint(ENOSYS))
        #expect(throws: absent) {
            _ = try FrameWriters.make(
                for: .uring, socket: socket, counters: FrameSendCounters(), support: .failure(absent))
        }
        #expect(throws: absent) {
            _ = try FrameWriters.make(
                for: .uringZeroCopy(minimumPayloadBytes: 0), socket: socket, counters: FrameSendCounters(),
                support: .failure(absent))
        }
        let noZeroCopy = URingSendSupport(sendmsg: true, sendmsgZeroCopy: false)
        #expect(
            throws: SystemError(
                operation: "io_uring IORING_OP_SENDMSG_ZC", errno: EOPNOTSUPP, hint: "zero-copy sends need Linux 6.1")
        ) {
            _ = try FrameWriters.make(
                for: .uringZeroCopy(minimumPayloadBytes: 0), socket: socket, counters: FrameSendCounters(),
                support: .success(noZeroCopy))
        }
        // The socket path never needs io_uring.
        let (writer, fallback) = try FrameWriters.make(
            for: .socket, socket: socket, counters: FrameSendCounters(), support: .failure(absent))
        #expect(writer.path == .socket && fallback == nil)
    }

    @Test func explicitURingFailsThroughTheConnectionWhenUnavailable() throws {
        let (socket, _) = try connectedSocket()
        if URingSupport.sendmsg {
            let connection = try FrameConnection(
                socket: socket, peer: "test", isPrimary: true, maximumPayload: 1 << 20, sendPath: .uring)
            #expect(connection.sendPath == .uring && connection.sendPathFallback == nil)
        } else {
            #expect(throws: SystemError.self) {
                _ = try FrameConnection(
                    socket: socket, peer: "test", isPrimary: true, maximumPayload: 1 << 20, sendPath: .uring)
            }
        }
    }

    /// The bytes `vectors` still describes, in order.
    func pending(_ vectors: FrameVectors) -> [UInt8] {
        let message = vectors.message.pointee
        var bytes: [UInt8] = []
        for index in 0..<Int(message.msg_iovlen) {
            let vector = message.msg_iov[index]
            bytes += UnsafeRawBufferPointer(start: vector.iov_base, count: vector.iov_len)
        }
        return bytes
    }

    @Test func shortSendsAdvanceAcrossPieces() {
        let header = [UInt8](0..<32)
        let payload = [UInt8](100..<110)
        let mac = [UInt8](200..<204)
        let all = header + payload + mac
        let vectors = FrameVectors()
        header.withUnsafeBytes { header in
            payload.withUnsafeBytes { payload in
                mac.withUnsafeBytes { mac in
                    vectors.load(header, payload, mac)
                    #expect(vectors.message.pointee.msg_iovlen == 3 && vectors.remaining == all.count)
                    var sent = 0
                    // Steps inside, on and across piece ends.
                    for step in [5, 27, 3, 0, 9, 1, 1, 0, 0] where sent + step <= all.count {
                        vectors.advance(by: step)
                        sent += step
                        #expect(pending(vectors) == Array(all[sent...]), "after \(sent) bytes")
                    }
                    vectors.advance(by: vectors.remaining)
                    #expect(vectors.isEmpty && vectors.message.pointee.msg_iovlen == 0)
                    // Empty pieces are left out (an unauthenticated frame with no payload: the header alone).
                    vectors.load(
                        header, UnsafeRawBufferPointer(start: nil, count: 0),
                        UnsafeRawBufferPointer(start: nil, count: 0))
                    #expect(vectors.message.pointee.msg_iovlen == 1 && pending(vectors) == Array(header))
                }
            }
        }
    }
}
