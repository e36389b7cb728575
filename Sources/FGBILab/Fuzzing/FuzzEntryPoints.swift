import CSupport
import FGBI

/// Entry points for fuzzing FGBI's decoders of untrusted bytes (`Sources/FGBIFuzz`, Docs/RELIABILITY.md).
///
/// Each takes arbitrary bytes, feeds them to one decoder the way a hostile peer or a damaged file would
/// reach it, and returns whether they were accepted. None may crash, trap or read out of bounds whatever the
/// input; where the decoder promises more (a refused epoch delta leaves the replica exactly as it was), the
/// entry point checks that too and stops the process with a message when it does not hold, so the fuzzer
/// records the input. Not for use in a replicator.
public enum FuzzEntryPoints {
    /// A byte stream as a backup's connection reads it: frames (header, payload, authentication code)
    /// until one is refused. The first byte chooses a session without a key, with a key, or with a key and
    /// encryption; the rest is the stream.
    @discardableResult
    public static func frameStream(_ input: UnsafeRawBufferPointer) -> Bool {
        guard let selector = input.first else { return false }
        var opener = FrameOpener(direction: 1, maximumPayload: 1 << 20)
        switch selector % 3 {
        case 0: opener.startSession(key: nil)
        case 1: opener.startSession(key: fuzzKey)
        default: opener.startSession(key: fuzzKey, encryptionKey: fuzzKey)
        }
        var offset = 1
        var accepted = false
        while input.count - offset >= WireFormat.headerLength {
            let headerBytes = Array(input[offset..<(offset + WireFormat.headerLength)])
            offset += WireFormat.headerLength
            guard let header = try? opener.parseHeader(headerBytes) else { return accepted }
            let macLength = FrameOpener.carriesCode(header) ? WireFormat.macLength : 0
            guard input.count - offset >= header.length + macLength else { return accepted }
            let payload = Array(input[offset..<(offset + header.length)])
            offset += header.length
            let mac = Array(input[offset..<(offset + macLength)])
            offset += macLength
            guard (try? opener.accept(header, payload: payload, mac: mac)) != nil else { return accepted }
            accepted = true
        }
        return accepted
    }

    /// A hello (what a primary sends first) and a welcome (a backup's answer), both decoded from the bytes.
    @discardableResult
    public static func handshake(_ input: UnsafeRawBufferPointer) -> Bool {
        let bytes = Array(input)
        let hello = try? Hello(decoding: bytes)
        let welcome = try? Welcome(decoding: bytes)
        // What is decoded must encode back to the same bytes: no field may be half read or ignored.
        if let hello { precondition(hello.encoded == bytes, "a hello decoded from bytes does not encode back to them") }
        if let welcome {
            precondition(welcome.encoded == bytes, "a welcome decoded from bytes does not encode back to them")
        }
        return hello != nil || welcome != nil
    }

    /// Summary frames (a backup's page hashes) for a layout of 16 and 3 pages, the first byte giving the
    /// length of each payload in 8-byte units; until one is refused. The whole input is also read as a
    /// block hash request and answer (``BlockHashExchange``) of that layout.
    @discardableResult
    public static func summary(_ input: UnsafeRawBufferPointer) -> Bool {
        var assembler = ReplicaSummary.Assembler(pageCounts: [16, 3])
        var offset = 0
        while offset < input.count {
            let length = min(16 + 8 * Int(input[offset] % 24), input.count - offset - 1)
            offset += 1
            guard length >= 0 else { break }
            guard (try? assembler.add(Array(input[offset..<(offset + length)]))) != nil else { return false }
            offset += length
        }
        if assembler.isComplete {
            precondition(
                assembler.summary.pageHashes.map(\.count) == [16, 3], "a complete summary has the wrong shape")
        }
        // The same bytes as a block hash request and a block hashes answer for that layout: refused, or within it.
        let bytes = Array(input)
        if let runs = try? BlockHashExchange.decodeRequest(bytes, pageCounts: [16, 3], after: nil) {
            for (index, run) in runs.enumerated() {
                precondition(
                    run.count >= 1 && run.start + run.count <= [16, 3][run.region], "a requested run past its region")
                if index > 0 {
                    let last = runs[index - 1]
                    precondition(
                        (run.region, run.start) >= (last.region, last.start + last.count), "requested runs out of order"
                    )
                }
            }
        }
        if let (pages, hashes) = try? BlockHashExchange.decodeAnswer(
            bytes, expecting: .init(region: 0, start: 4, count: 12), from: 4,
            blocksPerPage: 2)
        {
            precondition((1...12).contains(pages) && hashes.count == 2 * pages, "an answer past the pages asked for")
        }
        return assembler.isComplete
    }

    private static let fuzzKey = SymmetricKey(data: Array(repeating: 0x5A, count: 32))
}

/// Feeds epoch deltas to a small replica (two regions, 8 and 3 pages) and checks the replica's promise:
/// a refused delta changes no byte; an accepted pre-copy delta is taken back exactly by ``Replica/rollBack()``.
///
/// The input is the delta's body and a few header fields; the fuzzer gets a valid magic, version, geometry,
/// next epoch, lengths and checksum for free, so it spends its time in the decoder behind them.
public final class DeltaFuzzer {
    public let replica: Replica
    private let regions: [GuestMemory]

    public init() throws {
        regions = try Self.makeRegions()
        replica = Replica(regions: regions, geometry: try BlockGeometry())
        // The pattern is a committed epoch 0 (a replica without one is all zeros, and rolls back to zeros).
        replica.adopt(epoch: 0)
    }

    /// Regions as the fuzz replica starts: 8 and 3 pages of a fixed pattern (a seed corpus is made by
    /// encoding changes to a copy of them).
    public static func makeRegions() throws -> [GuestMemory] {
        let regions = [
            try GuestMemory.anonymous(length: 8 * GuestMemory.pageSize),
            try GuestMemory.anonymous(length: 3 * GuestMemory.pageSize),
        ]
        for (index, region) in regions.enumerated() {
            for offset in stride(from: 0, to: region.length, by: 8) {
                region.bytes.storeBytes(
                    of: UInt64(offset &* 0x9E37_79B9 &+ index), toByteOffset: offset, as: UInt64.self)
            }
        }
        return regions
    }

    /// The fuzz input that carries `delta` (a whole epoch delta made for these regions): the inverse of
    /// what ``apply(_:)`` builds; nil when it is not a delta.
    public static func input(carrying delta: [UInt8], precopy: Bool = false) -> [UInt8]? {
        guard delta.count >= DeltaFormat.headerLength + DeltaFormat.checksumLength else { return nil }
        let records = UInt32(delta[28]) | UInt32(delta[29]) << 8 | UInt32(delta[30]) << 16 | UInt32(delta[31]) << 24
        let bodyLength = delta[32..<40].enumerated().reduce(UInt64(0)) {
            $0 | UInt64($1.element) << UInt64(8 * $1.offset)
        }
        guard records <= 0xFFFF, bodyLength <= 0xFFFF else { return nil }
        return [
            delta[6], delta[7], precopy ? 1 : 0, UInt8(records & 0xFF), UInt8(records >> 8), UInt8(bodyLength & 0xFF),
            UInt8(bodyLength >> 8),
        ]
            + delta[DeltaFormat.headerLength..<(delta.count - DeltaFormat.checksumLength)]
    }

    /// Input: mode code, compression code, flags (bit 0: pre-copy), record count (u16), body length (u16,
    /// used when compressed), then the stored body.
    @discardableResult
    public func apply(_ input: UnsafeRawBufferPointer) -> Bool {
        guard input.count >= 7 else { return false }
        let mode = input[0] % 5
        let compression = input[1] % 3
        let precopy = input[2] & 1 != 0
        let records = UInt32(input[3]) | UInt32(input[4]) << 8
        let stored = UnsafeRawBufferPointer(rebasing: input[7...])
        let bodyLength = compression == 0 ? UInt64(stored.count) : UInt64(input[5]) | UInt64(input[6]) << 8
        var delta: [UInt8] = []
        delta.reserveCapacity(DeltaFormat.headerLength + stored.count + DeltaFormat.checksumLength)
        delta += DeltaFormat.magic
        appendLittleEndian(DeltaFormat.version, to: &delta)
        delta.append(mode)
        delta.append(compression)
        appendLittleEndian(UInt32(replica.geometry.blockSize), to: &delta)
        appendLittleEndian(UInt32(replica.geometry.pageSize), to: &delta)
        appendLittleEndian(replica.lastEpoch.map { $0 + 1 } ?? 0, to: &delta)
        appendLittleEndian(UInt32(regions.count), to: &delta)
        appendLittleEndian(records, to: &delta)
        appendLittleEndian(bodyLength, to: &delta)
        appendLittleEndian(UInt64(stored.count), to: &delta)
        delta += stored
        appendLittleEndian(CSupport_xxh3_64(delta, delta.count), to: &delta)

        let before = fingerprint()
        do {
            try replica.apply(delta, precopy: precopy)
        } catch {
            precondition(fingerprint() == before, "a refused epoch delta changed the replica (\(error))")
            return false
        }
        if precopy {
            replica.rollBack()
            precondition(fingerprint() == before, "rollBack() did not restore the replica after a pre-copy delta")
        }
        return true
    }

    private func fingerprint() -> [UInt64] {
        regions.map { CSupport_xxh3_64($0.base, $0.length) }
    }
}
