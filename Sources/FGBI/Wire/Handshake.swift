/// The primary's opening message: which guest it replicates, what memory and how, and a fresh nonce.
package struct Hello: Equatable {
    var mode: ReplicationMode
    var wantsAuthentication: Bool
    var wantsEncryption = false
    var blockSize: Int
    var pageSize: Int
    var regionLengths: [Int]
    /// The guest's name (empty: unnamed). The backup refuses another guest's primary, and both ends derive
    /// the session's keys from the guest's own key (``PresharedKey/forGuest(_:cluster:)``).
    var guest = ""
    /// The cluster the guest belongs to (`--cluster`; empty: none): checked and keyed as the name is, so two
    /// clusters with guests of one name cannot cross.
    var cluster = ""
    var nonce: [UInt8]
    /// With several backups: the session's stream, 16 random bytes that name the epochs of this
    /// synchronisation. A backup that returns holding an epoch of the same stream can catch up from the
    /// epochs the primary kept; any other is resynchronised. Nil with one backup.
    var stream: [UInt8]?
    /// With a ``stream``: how many backups the primary replicates to and how many must acknowledge an epoch
    /// (the commit policy), so a backup that loses the primary knows how many of them must stand as
    /// candidates before the one holding the newest epoch may be promoted.
    var group: BackupGroup?

    static let maximumRegions = 4096
    static let maximumGuestNameBytes = 128

    package var encoded: [UInt8] {
        var bytes: [UInt8] = []
        bytes.append(mode.wireCode)
        bytes.append((wantsAuthentication ? 1 : 0) | (wantsEncryption ? 2 : 0) | (stream != nil ? 4 : 0))
        appendLittleEndian(UInt32(blockSize), to: &bytes)
        appendLittleEndian(UInt32(pageSize), to: &bytes)
        appendLittleEndian(UInt32(regionLengths.count), to: &bytes)
        for length in regionLengths { appendLittleEndian(UInt64(length), to: &bytes) }
        for name in [guest, cluster] {
            bytes.append(UInt8(name.utf8.count))
            bytes += Array(name.utf8)
        }
        bytes += nonce
        if let stream {
            bytes += stream
            bytes.append(UInt8(group?.backups ?? 0))
            bytes.append(UInt8(group?.quorum ?? 0))
        }
        return bytes
    }

    package init(
        mode: ReplicationMode, wantsAuthentication: Bool, blockSize: Int, pageSize: Int, regionLengths: [Int],
        nonce: [UInt8]
    ) {
        self.mode = mode
        self.wantsAuthentication = wantsAuthentication
        self.blockSize = blockSize
        self.pageSize = pageSize
        self.regionLengths = regionLengths
        self.nonce = nonce
    }

    package init(decoding payload: [UInt8]) throws(WireError) {
        var reader = PayloadReader(payload)
        guard let mode = ReplicationMode(wireCode: try reader.byte()) else { throw .malformed("hello: unknown mode") }
        self.mode = mode
        let flags = try reader.byte()
        guard flags & ~7 == 0 else { throw .malformed("hello: unknown flags \(flags)") }
        wantsAuthentication = flags & 1 != 0
        wantsEncryption = flags & 2 != 0
        blockSize = Int(try reader.u32())
        pageSize = Int(try reader.u32())
        let count = Int(try reader.u32())
        guard count >= 1, count <= Self.maximumRegions else { throw .malformed("hello: \(count) regions") }
        regionLengths = try (0..<count).map { _ throws(WireError) in
            let length = try reader.u64()
            guard length <= 1 << 50 else { throw .malformed("hello: region of \(length) bytes") }
            return Int(length)
        }
        func name(_ what: String) throws(WireError) -> String {
            let length = Int(try reader.byte())
            guard length <= Self.maximumGuestNameBytes else {
                throw .malformed("hello: a \(what) name of \(length) bytes")
            }
            let bytes = try reader.bytes(length)
            let text = String(decoding: bytes, as: UTF8.self)
            guard Array(text.utf8) == bytes else { throw .malformed("hello: the \(what) name is not UTF-8") }
            return text
        }
        guest = try name("guest")
        cluster = try name("cluster")
        nonce = try reader.bytes(32)
        if flags & 4 != 0 {
            stream = try reader.bytes(16)
            let backups = Int(try reader.byte())
            let quorum = Int(try reader.byte())
            guard backups >= 2, (1...backups).contains(quorum) else {
                throw .malformed("hello: a group of \(backups) backups with a quorum of \(quorum)")
            }
            group = BackupGroup(backups: backups, quorum: quorum)
        }
        try reader.finish("hello")
    }
}

/// The backup's answer: a session id, its nonce and where it stands. It proves the key only after the
/// primary has (``SessionSetup``), so a stranger gets nothing keyed to attack offline.
package struct Welcome: Equatable {
    var sessionID: [UInt8]
    var nonce: [UInt8]
    /// The epoch the backup's replica expects next (0 for an empty replica).
    var nextEpoch: UInt64
    /// Answering a hello with a ``Hello/stream``: the stream of the epoch the replica holds (16 zero bytes
    /// when it holds none of a stream, e.g. after a restart). Nil otherwise.
    var heldStream: [UInt8]?

    package var encoded: [UInt8] {
        var bytes = sessionID + nonce
        appendLittleEndian(nextEpoch, to: &bytes)
        if let heldStream { bytes += heldStream }
        return bytes
    }

    package init(sessionID: [UInt8], nonce: [UInt8], nextEpoch: UInt64) {
        self.sessionID = sessionID
        self.nonce = nonce
        self.nextEpoch = nextEpoch
    }

    package init(decoding payload: [UInt8]) throws(WireError) {
        var reader = PayloadReader(payload)
        sessionID = try reader.bytes(16)
        nonce = try reader.bytes(32)
        nextEpoch = try reader.u64()
        if payload.count == 16 + 32 + 8 + 16 { heldStream = try reader.bytes(16) }
        try reader.finish("welcome")
    }
}

/// What both ends derive their proofs and session key from: the hello, the session id, both nonces, the
/// epoch the backup expects and the primary's fencing term (so no one on the path can alter any of them
/// unnoticed).
func handshakeTranscript(hello: [UInt8], welcome: Welcome, clientNonce: [UInt8], term: UInt64) -> [UInt8] {
    var transcript = Cryptography.sha256(hello) + welcome.sessionID + clientNonce + welcome.nonce
    appendLittleEndian(welcome.nextEpoch, to: &transcript)
    if let held = welcome.heldStream { transcript += held }
    appendLittleEndian(term, to: &transcript)
    return transcript
}

/// Fresh random bytes for nonces and session ids.
func randomBytes(_ count: Int) -> [UInt8] {
    Cryptography.randomBytes(count)
}

/// A bounds-checked reader for small control payloads.
struct PayloadReader {
    private let bytes: [UInt8]
    private var offset = 0

    package init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func byte() throws(WireError) -> UInt8 {
        guard offset < bytes.count else { throw .malformed("payload too short") }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func bytes(_ count: Int) throws(WireError) -> [UInt8] {
        guard bytes.count - offset >= count else { throw .malformed("payload too short") }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    mutating func u32() throws(WireError) -> UInt32 {
        try bytes(4).enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << UInt32(8 * $1.offset) }
    }

    mutating func u64() throws(WireError) -> UInt64 {
        try bytes(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << UInt64(8 * $1.offset) }
    }

    func finish(_ what: String) throws(WireError) {
        guard offset == bytes.count else { throw .malformed("\(what): \(bytes.count - offset) trailing bytes") }
    }
}
