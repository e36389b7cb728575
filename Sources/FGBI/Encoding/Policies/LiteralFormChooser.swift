import CSupport

/// Chooses, once per epoch, how the `fgbi` encoder sends blocks with no usable previous content: in sparse
/// form (a mask of the non-zero bytes, then those bytes: cheap, and shrinks words of small values) or as
/// literals left for the general compressor (which finds repeats that the sparse form hides from it: text,
/// repeated keys, structures). It samples the epoch's capture (its changed blocks, or the written pages whole when
/// the capture staged pages, which the encoder rehashes as it reads them): four 96 KiB chunks spread over them
/// (or all of them, when fewer), compressed as literals and measured in sparse form; the literals win only
/// when compressed they are smaller than the sparse form by twice the minimum saving that pays for the
/// compressor (``marginFactor``): the sample holds whole pages, and the repeats the compressor finds there
/// include blocks that the body sends otherwise (unchanged, or copies the index finds first), so the body's
/// literals compress less than the sample does.
/// A decision is made again only as often as ``SampleCadence`` says (content changes kind slowly), with
/// ``cadenceBytesFactor``: the sample is of the capture, which the encoder passes over far faster than LZ4
/// does (a page hashed in place, most of its blocks unchanged).
final class LiteralFormChooser {
    let compression: Compression
    let minimumSaving: Double
    let blockSize: Int
    private let output: UnsafeMutableRawPointer
    private let outputCapacity: Int
    private let sparse: UnsafeMutablePointer<UInt8>
    /// The last decision, and when to make it again.
    private var lastChoice = true
    private var cadence = SampleCadence(
        bytesFactor: LiteralFormChooser.cadenceBytesFactor, maximumStretch: LiteralFormChooser.maximumStretch)
    /// Samples taken so far.
    var samples: Int { cadence.samples }

    /// How many times the minimum saving the compressed sample must beat the sparse form by. Measured
    /// (Docs/BENCHMARKS.md, "The literal form's margin"): with the minimum saving alone, LMDB's epochs chose
    /// literals a quarter to a third of the time, each spending 14-33 ms in LZ4 for bodies no smaller per
    /// page written than the sparse epochs'; with twice it, every other source measured chose as before.
    static let marginFactor = 2.0

    /// How many times its sample's bytes of capture a decision lasts (``SampleCadence``), at most 16 epochs,
    /// before the stretch of confirmed decisions. With 16, the demo's guest (700 pages, 2.8 MB per epoch) was
    /// sampled every third epoch and those epochs took 0.37 ms (40%) longer, an eighth of the encoder's mean
    /// time (Docs/BENCHMARKS.md); with 64 it is sampled every ninth at first (then every 18th and 36th while
    /// the samples confirm the decision), an epoch of 24 MiB or more every epoch at first.
    static let cadenceBytesFactor = 64

    /// How far confirmed decisions stretch (``SampleCadence``): the sample is only a cost (0.35 ms a tenth of the
    /// demo guest's epochs, which it confirmed every time), so while the content keeps its kind it is taken a
    /// quarter as often.
    static let maximumStretch = 4

    init(compression: Compression, minimumSaving: Double, blockSize: Int) {
        self.compression = compression
        self.minimumSaving = minimumSaving
        self.blockSize = blockSize
        outputCapacity = max(compression.bound(DeltaAssembler.sampleChunkBytes), DeltaAssembler.sampleChunkBytes)
        output = .allocate(byteCount: outputCapacity, alignment: 16)
        sparse = .allocate(capacity: blockSize + 16)
    }

    deinit {
        output.deallocate()
        sparse.deallocate()
    }

    /// Whether this epoch's blocks go in sparse form where it is shorter.
    func prefersSparse(_ capture: EpochCapture.View) throws -> Bool {
        guard compression != .none else { return true }
        let total = capture.count * capture.itemSize
        guard total > 0 else { return lastChoice }
        if cadence.reuses(bytes: total) { return lastChoice }
        let chunk =
            min(DeltaAssembler.sampleChunkBytes, max(total / DeltaAssembler.sampleChunks, blockSize)) / blockSize
            * blockSize
        let chunks = min(DeltaAssembler.sampleChunks, total / chunk)
        let step = chunks > 1 ? (total - chunk) / (chunks - 1) / blockSize * blockSize : 0
        var compressed = 0
        var sparseBytes = 0
        for index in 0..<chunks {
            let start = capture.arena + index * step
            compressed += try compression.compress(
                UnsafeRawBufferPointer(start: start, count: chunk), into: output, capacity: outputCapacity)
            for block in stride(from: 0, to: chunk, by: blockSize) {
                let encoded = CSupport_sparse_encode(
                    (start + block).assumingMemoryBound(to: UInt8.self), blockSize, sparse, blockSize - 4)
                sparseBytes += encoded > 0 ? encoded : blockSize
            }
        }
        let choice = Double(compressed) > Double(sparseBytes) * (1 - min(minimumSaving * Self.marginFactor, 1))
        cadence.sampled(bytes: chunks * chunk, confirming: choice == lastChoice)
        lastChoice = choice
        return lastChoice
    }
}
