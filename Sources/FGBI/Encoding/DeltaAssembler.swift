import CSupport

/// Wraps an encoded body into an epoch delta: header, the body through the general compressor, checksum.
///
/// The compressor runs only where it pays: when a body's sample saves less than ``minimumSaving`` of its
/// bytes the body is stored as it is (the header says so, and the backup reads either), and so are the next
/// bodies until the decision is made again, as often as ``SampleCadence`` says: at first every body of 6 MiB
/// or more, every second or third of a few MiB, every 16th small one. A large body's sample only costs (its
/// output is not sent), so a decision that samples confirm lasts up to four times as long (a pre-copy round's
/// 2 MiB bodies sampled every third, then sixth, then twelfth: Docs/BENCHMARKS.md); a small body's trial pays
/// for itself and is never stretched. A large body's sample is a few chunks spread over it, compressed apart;
/// a small body (up to ``sampleThreshold``) is its own sample, compressed whole and sent compressed if that
/// saved anything at all. LZ4 on nearly incompressible bytes runs at ~0.6 GB/s here, slower than the whole
/// `fgbi` encoder, to save a few percent: on the demo's guest workload it took a fifth of the encoder's time to
/// save 8% of the bytes (Docs/BENCHMARKS.md).
final class DeltaAssembler {
    let mode: ReplicationMode
    let compression: Compression
    let geometry: BlockGeometry
    let regionCount: Int
    /// The fraction of its bytes a sample must save for the body to be compressed; 0 compresses always.
    let minimumSaving: Double

    /// Bodies this long or shorter are their own sample: compressed whole when a decision is due.
    static let sampleThreshold = 1 << 20
    /// The sample: this many chunks of ``sampleChunkBytes``, evenly spaced over the body. A chunk is over
    /// 64 KiB because LZ4 finds more matches in inputs under 64 KiB (a denser table) than in a large body:
    /// 32 KiB chunks of a dense epoch saved 15% where the whole body saved 6%.
    static let sampleChunks = 4
    static let sampleChunkBytes = 96 << 10

    private let sampleOutput: UnsafeMutableRawPointer
    private let sampleCapacity: Int
    /// A decision to compress or not, and when to make it again.
    private struct Decision {
        var worth = true
        var cadence = SampleCadence()

        /// The decision in force for a body of `bytes` (the body counted against it), or nil when a new one
        /// is due.
        mutating func inForce(bytes: Int) -> Bool? { cadence.reuses(bytes: bytes) ? worth : nil }

        /// Makes the decision from a sample of `sampled` bytes that compressed to `compressed`.
        mutating func decide(sampled: Int, compressed: Int, minimumSaving: Double) {
            let decided = Double(compressed) <= Double(sampled) * (1 - minimumSaving)
            cadence.sampled(bytes: sampled, confirming: decided == worth)
            worth = decided
        }
    }
    /// The decisions in force for small bodies (up to ``sampleThreshold``) and for large ones, made apart: a
    /// pre-copy round's body and an epoch's few changes differ in kind, and one's decision would otherwise
    /// hold for the other's next 16 bodies.
    private var small = Decision()
    private var large = Decision(cadence: SampleCadence(maximumStretch: 4))
    /// Samples taken so far.
    var samples: Int { small.cadence.samples + large.cadence.samples }

    init(
        mode: ReplicationMode, compression: Compression, geometry: BlockGeometry, regionCount: Int,
        minimumSaving: Double = 0
    ) {
        self.mode = mode
        self.compression = compression
        self.geometry = geometry
        self.regionCount = regionCount
        self.minimumSaving = minimumSaving
        sampleCapacity = max(compression.bound(Self.sampleChunkBytes), Self.sampleChunkBytes)
        sampleOutput = .allocate(byteCount: sampleCapacity, alignment: 16)
    }

    deinit { sampleOutput.deallocate() }

    /// What ``finish(epoch:records:delta:scratch:)`` did with the body.
    struct Outcome {
        /// Nanoseconds spent in the compressor, the sample included.
        var nanoseconds: UInt64
        /// The body was stored as it is because its sample did not compress enough.
        var storedRaw: Bool
    }

    /// Starts a delta in `delta` (replacing its content): room for the header, after which the encoders write
    /// the body; ``finish(epoch:records:delta:scratch:)`` then makes it whole.
    static func start(_ delta: inout ByteWriter) {
        delta.removeAll()
        _ = delta.extend(by: DeltaFormat.headerLength)
    }

    /// Makes `delta` (begun by ``start(_:)``, the body written after the header's room) an epoch delta: the
    /// body compressed where that pays, the header filled in, the checksum appended. A body stored as it is
    /// stays where the encoders wrote it (no copy); a compressed one is written to `scratch`, which then
    /// trades places with `delta`.
    @discardableResult
    func finish(epoch: UInt64, records: Int, delta: inout ByteWriter, scratch: inout ByteWriter) throws -> Outcome {
        let start = MonotonicClock.nanoseconds()
        let headerLength = DeltaFormat.headerLength
        precondition(delta.count >= headerLength, "a delta begun without room for its header")
        let bodyLength = delta.count - headerLength
        let plan = try plan(for: UnsafeRawBufferPointer(rebasing: delta.bytes[headerLength...]))
        var compression = plan == .store ? .none : self.compression
        let compressorRuns = compression != .none
        let compressing = MonotonicClock.nanoseconds()
        if compressorRuns {
            Self.start(&scratch)
            let body = UnsafeRawBufferPointer(rebasing: delta.bytes[headerLength...])
            let capacity = compression.bound(bodyLength)
            try scratch.append(upTo: capacity) { destination, _ in
                try compression.compress(body, into: destination, capacity: capacity)
            }
            let compressed = scratch.count - headerLength
            if plan == .trial {
                small.decide(sampled: bodyLength, compressed: compressed, minimumSaving: minimumSaving)
            }
            // A trial's output is used if it saved anything: it is paid for.
            if compressed < bodyLength || plan == .compress { swap(&delta, &scratch) } else { compression = .none }
        }
        let storedRaw = compression == .none && self.compression != .none
        let end = MonotonicClock.nanoseconds()
        writeHeader(
            &delta, compression: compression, epoch: epoch, records: records, bodyLength: bodyLength,
            storedLength: delta.count - headerLength)
        let checksum = CSupport_xxh3_64(delta.bytes.baseAddress, delta.count)
        delta.littleEndian(checksum)
        return Outcome(
            nanoseconds: compressing - start + (compressorRuns ? end - compressing : 0), storedRaw: storedRaw)
    }

    /// Writes the delta for `body` into `output` (replacing its content): ``start(_:)``, the body copied in,
    /// ``finish(epoch:records:delta:scratch:)``.
    @discardableResult
    func assemble(epoch: UInt64, records: Int, body: UnsafeRawBufferPointer, into output: inout ByteWriter) throws
        -> Outcome
    {
        Self.start(&output)
        if let base = body.baseAddress { output.raw(base, count: body.count) }
        var scratch = ByteWriter()
        return try finish(epoch: epoch, records: records, delta: &output, scratch: &scratch)
    }

    /// Fills in the header at the start of `delta` (DeltaFormat's layout).
    private func writeHeader(
        _ delta: inout ByteWriter, compression: Compression, epoch: UInt64, records: Int,
        bodyLength: Int, storedLength: Int
    ) {
        delta.patch(bytes: DeltaFormat.magic, at: 0)
        delta.patch(DeltaFormat.version, at: 4)
        delta.patch(mode.wireCode, at: 6)
        delta.patch(compression.wireCode, at: 7)
        delta.patch(UInt32(geometry.blockSize), at: 8)
        delta.patch(UInt32(geometry.pageSize), at: 12)
        delta.patch(epoch, at: 16)
        delta.patch(UInt32(regionCount), at: 24)
        delta.patch(UInt32(records), at: 28)
        delta.patch(UInt64(bodyLength), at: 32)
        delta.patch(UInt64(storedLength), at: 40)
    }

    /// What ``finish(epoch:records:delta:scratch:)`` does with a body.
    private enum Plan {
        /// Stored as it is: no compressor, or the decision in force says it does not pay.
        case store
        /// Compressed: every body must be, or the decision in force says it pays.
        case compress
        /// Compressed whole as its own sample (a small body when a decision is due).
        case trial
    }

    /// The plan for `body`: the decision in force while ``SampleCadence`` keeps it, else a new one, from a
    /// sample of a large body taken now, or from compressing a small one whole (``Plan/trial``).
    private func plan(for body: UnsafeRawBufferPointer) throws -> Plan {
        guard compression != .none else { return .store }
        guard minimumSaving > 0 else { return .compress }
        guard body.count > Self.sampleThreshold else {
            guard let worth = small.inForce(bytes: body.count) else { return .trial }
            return worth ? .compress : .store
        }
        if let worth = large.inForce(bytes: body.count) { return worth ? .compress : .store }
        let chunks = Self.sampleChunks
        let chunk = Self.sampleChunkBytes
        let step = (body.count - chunk) / (chunks - 1)
        var compressed = 0
        for index in 0..<chunks {
            let piece = UnsafeRawBufferPointer(rebasing: body[(index * step)..<(index * step + chunk)])
            compressed += try compression.compress(piece, into: sampleOutput, capacity: sampleCapacity)
        }
        large.decide(sampled: chunks * chunk, compressed: compressed, minimumSaving: minimumSaving)
        return large.worth ? .compress : .store
    }
}
