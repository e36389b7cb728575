/// How often a decision made from a sample of an epoch's bytes is made again, for the `fgbi` encoder's
/// sampled choices (``LiteralFormChooser``, ``DeltaAssembler``): a sample costs a compression pass over its
/// bytes (384 KiB at most, about 0.4 ms here), as much as the whole body of a small epoch. A decision is
/// reused (content changes kind slowly) until the bytes seen since its sample reach ``bytesFactor`` times the
/// bytes it sampled, or for ``epochLimit`` epochs at most: sampling then costs at most about a
/// ``bytesFactor``-th of a compression pass over what is seen. With the default factor, 16, every epoch of
/// 6 MiB or more is sampled at first, a small one every 16th, one of a few MiB every second or third
/// (Docs/BENCHMARKS.md, "The literal form's sample budgeted by the bytes captured").
///
/// With a ``maximumStretch`` over 1, a decision that a new sample confirms lasts twice as long as the one before
/// it (both bounds doubled), up to that many times: content that keeps its kind is sampled less and less, and a
/// sample that changes the decision brings the base cadence back at once. It suits a sample that only costs
/// (``LiteralFormChooser``'s, 4: a change of kind is noticed within 64 epochs, 1.6 s at 25 ms epochs), not one
/// that also pays for itself (``DeltaAssembler``'s trial of a small body, sent compressed when that saved
/// anything: stretched, a run of the duplicate workload kept its bodies raw for 16 more epochs after its
/// content turned compressible, +8% bytes).
struct SampleCadence {
    /// How many epochs a decision lasts at most, before stretching.
    static let epochLimit = 16
    /// How many times its sample's bytes a decision lasts at most, before stretching.
    let bytesFactor: Int
    /// How many times its base life a decision confirmed by samples in a row lasts at most (1: never stretched).
    let maximumStretch: Int

    init(bytesFactor: Int = 16, maximumStretch: Int = 1) {
        self.bytesFactor = bytesFactor
        self.maximumStretch = maximumStretch
    }

    private var sampledBytes = 0
    private var epochsSinceSample = 0
    private var bytesSinceSample = 0
    /// The life of the decision in force, in base lives: 1, doubled by each sample that confirms it.
    private(set) var stretch = 1
    /// Samples taken so far.
    private(set) var samples = 0

    /// Whether the last decision still holds for an epoch of `bytes`; counts the epoch when it does.
    mutating func reuses(bytes: Int) -> Bool {
        guard samples > 0, epochsSinceSample < Self.epochLimit * stretch,
            bytesSinceSample + bytes < bytesFactor * stretch * sampledBytes
        else { return false }
        epochsSinceSample += 1
        bytesSinceSample += bytes
        return true
    }

    /// Records that a new decision was made from a sample of `bytes`; `confirming`: the same decision as the
    /// one before it.
    mutating func sampled(bytes: Int, confirming: Bool) {
        (sampledBytes, epochsSinceSample, bytesSinceSample) = (bytes, 0, 0)
        stretch = samples > 0 && confirming ? min(stretch * 2, maximumStretch) : 1
        samples += 1
    }
}
