extension Backup {
    /// A primary that completed its handshake.
    struct Session {
        var connection: FrameConnection
        var hello: Hello
        var term: UInt64
        var peer: String
    }

    /// One connection's handshake, on its ``HandshakeGate`` thread: checks the primary (key, guest, layout,
    /// term) under one deadline for the whole exchange.
    func handshake(_ attempt: HandshakeGate<Session>.Attempt, peer: String, peerIsLoopback: Bool) throws -> Session {
        let connection = try FrameConnection(
            socket: attempt.socket, peer: peer, isPrimary: false,
            maximumPayload: replica.maximumDeltaLength, sendPath: configuration.sendPath)
        connection.setReceiveTimeout(milliseconds: configuration.handshakeTimeout.wholeMilliseconds)
        connection.setHandshakeDeadline(milliseconds: configuration.handshakeTimeout.wholeMilliseconds)
        do {
            let layout = SessionSetup.Layout(
                blockSize: replica.geometry.blockSize, pageSize: replica.geometry.pageSize,
                regionLengths: replica.regions.map(\.length))
            let (hello, term) = try SessionSetup.openAsBackup(
                connection, layout: layout, key: configuration.key,
                peerIsLoopback: peerIsLoopback,
                peerIsSameUser: configuration.key != nil || LoopbackPeerOwner.isTrusted(attempt.socket),
                guest: configuration.guestName ?? "",
                cluster: configuration.clusterName ?? "",
                nextEpoch: heldEpoch.map { $0 + 1 } ?? 0,
                heldStream: heldStream.withLock { $0 },
                requireEncryption: configuration.requireEncryption
                    || (configuration.key != nil && !peerIsLoopback && !configuration.allowPlaintext),
                helloAccepted: attempt.greeted,
                minimumTerm: { [self] in
                    max(configuration.arbiter?.currentTerm() ?? 0, knownTerm.load(ordering: .acquiring))
                })
            return Session(connection: connection, hello: hello, term: term, peer: peer)
        } catch {
            connection.close()
            throw error
        }
    }
}
