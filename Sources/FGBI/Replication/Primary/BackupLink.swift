import Dispatch
import Synchronization

/// One backup of a primary's session: its authenticated connection, what it said it holds, and the state its
/// threads share (``Primary`` runs them: acknowledgements, heartbeats and, with several backups, a writer
/// that sends the session's frames from the ``EpochBacklog``).
final class BackupLink: @unchecked Sendable {
    /// The backup's position in ``PrimaryConfiguration/backups``.
    let index: Int
    let endpoint: Endpoint
    let connection: FrameConnection
    let welcome: Welcome
    /// The page hashes of what the backup holds, when it holds an epoch.
    let summary: ReplicaSummary?
    let encrypts: Bool
    /// Open and served by its threads (cleared when this side closes it, or when it is lost).
    let isOpen = Atomic<Bool>(true)
    let lastSendNanoseconds = Atomic<UInt64>(MonotonicClock.nanoseconds())
    /// Wakes the writer when the backlog has a new frame.
    let frameReady = DispatchSemaphore(value: 0)
    /// Distinguishes this connection's threads from those of an earlier connection to the same backup.
    let serial: Int

    private static let serials = Atomic<Int>(0)

    private init(
        index: Int, endpoint: Endpoint, connection: FrameConnection, welcome: Welcome, summary: ReplicaSummary?,
        encrypts: Bool
    ) {
        self.index = index
        self.endpoint = endpoint
        self.connection = connection
        self.welcome = welcome
        self.summary = summary
        self.encrypts = encrypts
        serial = Self.serials.add(1, ordering: .relaxed).newValue
    }

    /// Whether the backup holds an epoch of `stream` (it may catch up from the epochs kept for that stream).
    func holdsEpoch(of stream: [UInt8]?) -> UInt64? {
        guard let stream, welcome.heldStream == stream, welcome.nextEpoch > 0 else { return nil }
        return welcome.nextEpoch - 1
    }

    /// Closes the connection on purpose: its threads end without reporting a failure.
    func close() {
        isOpen.store(false, ordering: .releasing)
        connection.close()
        frameReady.signal()
    }

    /// Connects to backup `index`, shakes hands and reads its summary when it holds content.
    ///
    /// - Throws: ``WireError`` when the backup refuses or the handshake fails, ``SystemError`` when it cannot
    ///   be reached; the connection is closed then.
    static func open(
        index: Int, configuration: PrimaryConfiguration, hello template: Hello, pageCounts: [Int],
        handshakeTimeout: Duration
    ) throws -> BackupLink {
        let endpoint = configuration.backups[index]
        let socket = try Socket.connect(
            to: endpoint, timeoutMilliseconds: min(handshakeTimeout.wholeMilliseconds, 3000))
        let connection: FrameConnection
        let encrypts: Bool
        do {
            // Judged by the address reached, not by the name given: without a key only loopback is allowed,
            // and off loopback memory travels encrypted unless the operator allows plaintext.
            let (address, isLoopback) = try socket.peerAddress()
            if configuration.key == nil && !isLoopback {
                throw WireError.keyRequired("the backup \(endpoint) was reached at \(address), which is not loopback")
            }
            // On loopback without a key, another local user could have bound the backup's port first.
            if configuration.key == nil && !LoopbackPeerOwner.isTrusted(socket) {
                throw WireError.keyRequired(
                    "the process listening at \(endpoint) runs as another user than this primary")
            }
            encrypts =
                configuration.key != nil && (configuration.encrypt || (!isLoopback && !configuration.allowPlaintext))
            connection = try FrameConnection(
                socket: socket, peer: endpoint.description, isPrimary: true,
                maximumPayload: 64 << 10, sendPath: configuration.sendPath)
        } catch {
            socket.shutdownBoth()
            throw error
        }
        do {
            connection.setReceiveTimeout(milliseconds: handshakeTimeout.wholeMilliseconds)
            var hello = template
            hello.nonce = randomBytes(32)
            hello.wantsEncryption = encrypts
            let welcome = try SessionSetup.openAsPrimary(
                connection, hello: hello, key: configuration.key,
                term: configuration.authority?.term ?? 0)
            var summary: ReplicaSummary?
            if welcome.nextEpoch > 0 {
                var assembler = ReplicaSummary.Assembler(pageCounts: pageCounts)
                while !assembler.isComplete {
                    let frame = try connection.receive()
                    switch frame.type {
                    case .summary: try assembler.add(frame.payload)
                    case .heartbeat: continue
                    case .error: throw WireError.refused(PeerText.printable(frame.payload))
                    default: throw WireError.unexpected("\(frame.type) while reading the backup's summary")
                    }
                }
                summary = assembler.summary
            }
            connection.setReceiveTimeout(milliseconds: configuration.backupTimeout.wholeMilliseconds)
            return BackupLink(
                index: index, endpoint: endpoint, connection: connection, welcome: welcome, summary: summary,
                encrypts: encrypts)
        } catch {
            connection.close()
            throw error
        }
    }
}
