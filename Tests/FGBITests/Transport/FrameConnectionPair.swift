import Foundation
import Synchronization

@testable import FGBI

/// A primary-side and a backup-side ``FrameConnection`` joined by a real loopback TCP connection, for the
/// send path tests; the primary sends on the path under test.
struct FrameConnectionPair {
    let sender: FrameConnection
    let receiver: FrameConnection

    /// `sendBuffer` shrinks the sender's kernel buffer (forcing short sends); `authenticated` and `encrypted`
    /// start a session with keys on both ends (otherwise a plain session, so frames up to `maximumPayload`
    /// are accepted).
    init(
        sendPath: FrameSendPath, sendBuffer: Int? = nil, authenticated: Bool = false, encrypted: Bool = false,
        maximumPayload: Int = 8 << 20
    ) throws {
        let listener = try Socket.listen(on: Endpoint(host: "127.0.0.1", port: 0))
        let client = try Socket.connect(to: Endpoint(host: "127.0.0.1", port: listener.localPort))
        let server = try listener.accept().socket
        if let sendBuffer { client.setSendBuffer(bytes: sendBuffer) }
        sender = try FrameConnection(
            socket: client, peer: "backup", isPrimary: true, maximumPayload: maximumPayload, sendPath: sendPath)
        receiver = FrameConnection(socket: server, peer: "primary", isPrimary: false, maximumPayload: maximumPayload)
        // Keys derived as a handshake would (and without naming the crypto library's key type).
        let preshared = try PresharedKey(bytes: [UInt8](repeating: 7, count: 32))
        let transcript = Array("frame send path test".utf8)
        let key = authenticated ? SymmetricKeyBox(key: preshared.sessionKey(transcript: transcript)) : nil
        let encryptionKey = encrypted ? SymmetricKeyBox(key: preshared.encryptionKey(transcript: transcript)) : nil
        sender.startSession(key: key, encryptionKey: encryptionKey)
        receiver.startSession(key: key, encryptionKey: encryptionKey)
    }

    /// Receives `count` frames on a thread of its own (so the sender may send more than the socket buffers
    /// hold); ``ConcurrentReceive/wait()`` returns them, or the error that stopped the receiver.
    func receiveConcurrently(_ count: Int) -> ConcurrentReceive {
        let receive = ConcurrentReceive()
        let receiver = receiver
        Thread.detachNewThread {
            var frames: [Frame] = []
            do {
                for _ in 0..<count { frames.append(try receiver.receive()) }
                receive.finish(.success(frames))
            } catch {
                receive.finish(.failure(error))
            }
        }
        return receive
    }
}

/// The outcome of ``FrameConnectionPair/receiveConcurrently(_:)``.
final class ConcurrentReceive: Sendable {
    private let result = Mutex<Result<[Frame], any Error>?>(nil)
    private let done = DispatchSemaphore(value: 0)

    fileprivate func finish(_ outcome: Result<[Frame], any Error>) {
        result.withLock { $0 = outcome }
        done.signal()
    }

    /// The frames received, once the receiver finished (at most `seconds` from now).
    func wait(seconds: Int = 30) throws -> [Frame] {
        guard done.wait(timeout: .now() + .seconds(seconds)) == .success else {
            throw WireError.timedOut(milliseconds: seconds * 1000)
        }
        return try result.withLock { $0! }.get()
    }
}

/// What this kernel lets the io_uring send paths do, for test traits.
enum URingSupport {
    static let probed = URingSendSupport.current
    /// io_uring with IORING_OP_SENDMSG.
    static let sendmsg = (try? probed.get())?.sendmsg == true
    /// io_uring with IORING_OP_SENDMSG_ZC.
    static let sendmsgZeroCopy = (try? probed.get())?.sendmsgZeroCopy == true
}
