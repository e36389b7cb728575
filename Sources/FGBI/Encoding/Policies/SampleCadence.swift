/// How often a decision made from a sample of an epoch's bytes is made again, for the `fgbi` encoder's
/// sampled choices (``LiteralFormChooser``, ``DeltaAssembler``): a sample costs a compression pass over its
/// bytes (384 KiB at most, about 0.4 ms here), as much as the whole body of a small epoch. A decision is
/// reused (content changes kind slowly) until the bytes seen since its sample reach ``bytesFactor`` times the
/// bytes it sampled, or for ``epochLimit`` epochs at most: sampling then costs at most about a
/// ``bytesFactor``-th of a compression pass over what is seen. With the default factor, 16, every epoch of
/// 6 MiB or more is sampled, a small one every 16th, one of a few MiB every second or third (Docs/BENCHMARKS.md,
/// "The literal form's sample budgeted by the bytes captured").
struct SampleCadence {
    /// How many epochs a decision lasts at most.
    static let epochLimit = 16
    /// How many times its sample's bytes a decision lasts at most.
    let bytesFactor: Int

    init(bytesFactor: Int = 16) {
        self.bytesFactor = bytesFactor
    }

    private var sampledBytes = 0
    private var epochsSinceSample = 0
    private var bytesSinceSample = 0
    /// Samples taken so far.
    private(set) var samples = 0

    /// Whether the last decision still holds for an epoch of `bytes`; counts the epoch when it does.
    mutating func reuses(bytes: Int) -> Bool {
        guard samples > 0, epochsSinceSample < Self.epochLimit,
            bytesSinceSample + bytes < bytesFactor * sampledBytes
        else { return false }
        epochsSinceSample += 1
        bytesSinceSample += bytes
        return true
    }

    /// Records that a new decision was made from a sample of `bytes`.
    mutating func sampled(bytes: Int) {
        (sampledBytes, epochsSinceSample, bytesSinceSample) = (bytes, 0, 0)
        samples += 1
    }
}
