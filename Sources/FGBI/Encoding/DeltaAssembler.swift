import CSupport

/// Wraps an encoded body into an epoch delta: header, the body through the general compressor, checksum.
///
/// The compressor runs only where it pays: a large body is first sampled (a few chunks spread over it,
/// compressed apart), and when the sample saves less than ``minimumSaving`` of its bytes the body is stored
/// as it is (the header says so, and the backup reads either). LZ4 on nearly incompressible bytes runs at
/// ~0.6 GB/s here, slower than the whole `fgbi` encoder, to save a few percent. The decision is made again
/// as often as ``SampleCadence`` says: every body of 6 MiB or more, every second or third of a few MiB.
final class DeltaAssembler {
    let mode: ReplicationMode
    let compression: Compression
    let geometry: BlockGeometry
    let regionCount: Int
    /// The fraction of its bytes a sample must save for the body to be compressed; 0 compresses always.
    let minimumSaving: Double

    /// Bodies this long or shorter are compressed without a sample.
    static let sampleThreshold = 1 << 20
    /// The sample: this many chunks of ``sampleChunkBytes``, evenly spaced over the body. A chunk is over
    /// 64 KiB because LZ4 finds more matches in inputs under 64 KiB (a denser table) than in a large body:
    /// 32 KiB chunks of a dense epoch saved 15% where the whole body saved 6%.
    static let sampleChunks = 4
    static let sampleChunkBytes = 96 << 10

    private let sampleOutput: UnsafeMutableRawPointer
    private let sampleCapacity: Int
    /// The last sampled decision (compress), and when to make it again.
    private var lastWorth = true
    private var cadence = SampleCadence()
    /// Samples taken so far.
    var samples: Int { cadence.samples }

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
        let storedRaw = try !worthCompressing(UnsafeRawBufferPointer(rebasing: delta.bytes[headerLength...]))
        let compression = storedRaw ? .none : self.compression
        let compressing = MonotonicClock.nanoseconds()
        if compression != .none {
            Self.start(&scratch)
            let body = UnsafeRawBufferPointer(rebasing: delta.bytes[headerLength...])
            let capacity = compression.bound(bodyLength)
            try scratch.append(upTo: capacity) { destination, _ in
                try compression.compress(body, into: destination, capacity: capacity)
            }
            swap(&delta, &scratch)
        }
        let end = MonotonicClock.nanoseconds()
        writeHeader(
            &delta, compression: compression, epoch: epoch, records: records, bodyLength: bodyLength,
            storedLength: delta.count - headerLength)
        let checksum = CSupport_xxh3_64(delta.bytes.baseAddress, delta.count)
        delta.littleEndian(checksum)
        return Outcome(
            nanoseconds: compressing - start + (compression == .none ? 0 : end - compressing), storedRaw: storedRaw)
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

    /// Whether `body` compresses enough to pay: always for small bodies, else by a sample.
    private func worthCompressing(_ body: UnsafeRawBufferPointer) throws -> Bool {
        guard compression != .none else { return false }
        guard minimumSaving > 0, body.count > Self.sampleThreshold else { return true }
        if cadence.reuses(bytes: body.count) { return lastWorth }
        let chunks = Self.sampleChunks
        let chunk = Self.sampleChunkBytes
        let step = (body.count - chunk) / (chunks - 1)
        var compressed = 0
        for index in 0..<chunks {
            let piece = UnsafeRawBufferPointer(rebasing: body[(index * step)..<(index * step + chunk)])
            compressed += try compression.compress(piece, into: sampleOutput, capacity: sampleCapacity)
        }
        cadence.sampled(bytes: chunks * chunk)
        lastWorth = Double(compressed) <= Double(chunks * chunk) * (1 - minimumSaving)
        return lastWorth
    }
}
