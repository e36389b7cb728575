/// The handshake that opens a session (Docs/PROTOCOL.md, "Connection"): the primary says what it replicates
/// and sends a nonce; the backup checks the layout and answers with a session id, its nonce and the epoch it
/// expects; the primary proves the key first (so a stranger who connects gets nothing keyed from the
/// backup), and the backup, once it has checked that proof, sends its own, which the primary checks before
/// anything else. Both then derive the session's frame key, and every later frame is sequence-numbered and,
/// with a key, authenticated.
enum SessionSetup {
    static let backupProofLabel = "fgbi backup proof v1"
    static let primaryProofLabel = "fgbi primary proof v1"
    static let noProof = [UInt8](repeating: 0, count: 32)

    /// The primary's side. Returns the backup's welcome.
    ///
    /// Every frame carries `term` (the primary's fencing term, 0 without a coordinator); the backup's must
    /// carry it too.
    static func openAsPrimary(
        _ connection: FrameConnection, hello: Hello, key sharedKey: PresharedKey?, term: UInt64 = 0
    ) throws -> Welcome {
        let key = sharedKey?.forGuest(hello.guest, cluster: hello.cluster)
        connection.fence(term: term)
        let helloBytes = hello.encoded
        try connection.send(.hello, helloBytes)
        let answer = try connection.receive()
        if answer.type == .error { throw WireError.refused(PeerText.printable(answer.payload)) }
        guard answer.type == .welcome else { throw WireError.unexpected("\(answer.type) instead of welcome") }
        let welcome = try Welcome(decoding: answer.payload)
        guard (welcome.heldStream != nil) == (hello.stream != nil) else {
            let what =
                hello.stream == nil ? "a held stream unasked" : "no held stream for a primary with several backups"
            throw WireError.malformed("welcome: \(what)")
        }
        let transcript = handshakeTranscript(hello: helloBytes, welcome: welcome, clientNonce: hello.nonce, term: term)
        try connection.send(.auth, key?.proof(label: primaryProofLabel, transcript: transcript) ?? noProof)
        let confirmation = try connection.receive()
        if confirmation.type == .error { throw WireError.refused(PeerText.printable(confirmation.payload)) }
        guard confirmation.type == .auth else { throw WireError.unexpected("\(confirmation.type) instead of auth") }
        if let key {
            guard key.verify(confirmation.payload, label: backupProofLabel, transcript: transcript) else {
                try? connection.send(.error, Array("the backup's proof of the key is wrong".utf8))
                throw WireError.authenticationFailed("the backup does not hold the same key")
            }
            connection.startSession(
                key: SymmetricKeyBox(key: key.sessionKey(transcript: transcript)),
                encryptionKey: hello.wantsEncryption
                    ? SymmetricKeyBox(key: key.encryptionKey(transcript: transcript)) : nil)
        } else {
            guard confirmation.payload == noProof else {
                throw WireError.authenticationFailed("unexpected proof on a session without a key")
            }
            connection.startSession(key: nil)
        }
        return welcome
    }

    /// What the backup replicates into, to check the primary's hello against.
    struct Layout {
        var blockSize: Int
        var pageSize: Int
        var regionLengths: [Int]
    }

    /// The backup's side. Returns the primary's hello and fencing term; refuses (telling the primary why) on
    /// any mismatch, and a primary whose term is older than `minimumTerm` (one that lost primaryship).
    /// Without a key, the primary must be on loopback (`peerIsLoopback`) and run as this user or root
    /// (`peerIsSameUser`, ``LoopbackPeerOwner``). `helloAccepted` is called once a well-formed hello of this
    /// guest has arrived (``HandshakeGate`` then evicts this handshake last).
    static func openAsBackup(
        _ connection: FrameConnection, layout: Layout, key: PresharedKey?, peerIsLoopback: Bool,
        peerIsSameUser: Bool = true, guest: String = "", cluster: String = "",
        nextEpoch: UInt64, heldStream: [UInt8]? = nil, requireEncryption: Bool = false,
        helloAccepted: () -> Void = {},
        minimumTerm: () -> UInt64 = { 0 }
    ) throws -> (hello: Hello, term: UInt64) {
        func refuse(_ error: WireError) -> WireError {
            try? connection.send(.error, Array(error.description.utf8))
            return error
        }
        let opening = try connection.receive()
        // From here on both directions carry the primary's term (a refusal too, so the primary reads it);
        // the handshake transcript binds it, so no one on the path can change it unnoticed.
        connection.fence(term: opening.term)
        guard opening.type == .hello else { throw refuse(.unexpected("\(opening.type) instead of hello")) }
        let helloBytes = opening.payload
        let hello = try Hello(decoding: helloBytes)
        guard hello.guest == guest, hello.cluster == cluster else {
            let primary = PresharedKey.identity(guest: hello.guest, cluster: hello.cluster)
            throw refuse(
                .guestMismatch(
                    primary: PeerText.printable(Array(primary.utf8)),
                    backup: PresharedKey.identity(guest: guest, cluster: cluster)))
        }
        helloAccepted()
        // Asked only now, for a well-formed hello of this guest: with a coordinator this is a request to it,
        // which a stranger's empty connection must not cost.
        let newestTerm = minimumTerm()
        guard opening.term >= newestTerm else { throw refuse(.fenced(term: opening.term, current: newestTerm)) }
        let key = key?.forGuest(guest, cluster: cluster)
        if key == nil && !peerIsLoopback {
            throw refuse(.keyRequired("the primary at \(connection.peer) is not on loopback"))
        }
        if key == nil && !peerIsSameUser {
            throw refuse(.keyRequired("the primary at \(connection.peer) runs as another user than this backup"))
        }
        if key != nil && !hello.wantsAuthentication {
            throw refuse(.authenticationFailed("this backup requires a pre-shared key and the primary offered none"))
        }
        if key == nil && hello.wantsAuthentication {
            throw refuse(.authenticationFailed("the primary uses a key and this backup has none"))
        }
        if hello.wantsEncryption && !hello.wantsAuthentication {
            throw refuse(.malformed("encryption needs a pre-shared key"))
        }
        if requireEncryption && !hello.wantsEncryption {
            throw refuse(
                .authenticationFailed(
                    peerIsLoopback
                        ? "this backup requires encryption (--encrypt on the primary)"
                        : """
                        this backup requires encryption off loopback (the primary sends in clear: drop \
                        --allow-plaintext there,\u{20}
                        """
                            + "or pass --allow-plaintext to the backup too)"))
        }
        guard hello.blockSize == layout.blockSize, hello.pageSize == layout.pageSize,
            hello.regionLengths == layout.regionLengths
        else {
            throw refuse(
                .layoutMismatch(
                    """
                    primary: \(hello.blockSize)-byte blocks, \(hello.pageSize)-byte pages, regions \
                    \(hello.regionLengths);\u{20}
                    """
                        + "backup: \(layout.blockSize), \(layout.pageSize), \(layout.regionLengths)"))
        }
        var welcome = Welcome(sessionID: randomBytes(16), nonce: randomBytes(32), nextEpoch: nextEpoch)
        if hello.stream != nil { welcome.heldStream = heldStream ?? [UInt8](repeating: 0, count: 16) }
        let transcript = handshakeTranscript(
            hello: helloBytes, welcome: welcome, clientNonce: hello.nonce, term: opening.term)
        try connection.send(.welcome, welcome.encoded)
        let auth = try connection.receive()
        if auth.type == .error { throw WireError.refused(PeerText.printable(auth.payload)) }
        guard auth.type == .auth else { throw refuse(.unexpected("\(auth.type) instead of auth")) }
        if let key {
            guard key.verify(auth.payload, label: primaryProofLabel, transcript: transcript) else {
                throw refuse(.authenticationFailed("the primary's proof of the key is wrong"))
            }
            // Only now, to a peer that proved the key, does the backup prove it.
            try connection.send(.auth, key.proof(label: backupProofLabel, transcript: transcript))
            connection.startSession(
                key: SymmetricKeyBox(key: key.sessionKey(transcript: transcript)),
                encryptionKey: hello.wantsEncryption
                    ? SymmetricKeyBox(key: key.encryptionKey(transcript: transcript)) : nil)
        } else {
            guard auth.payload == noProof else {
                throw refuse(.authenticationFailed("unexpected proof on a session without a key"))
            }
            try connection.send(.auth, noProof)
            connection.startSession(key: nil)
        }
        return (hello, opening.term)
    }
}
