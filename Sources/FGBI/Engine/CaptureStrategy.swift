/// How the `fgbi` mode captures an epoch while the guest is paused.
public enum CaptureStrategy: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Rehash the written pages and copy only the blocks whose hash changed: least copying, hashing in
    /// the pause.
    case rehash
    /// Copy the written pages whole, as Remus does, and rehash the copies after the guest resumes.
    case copyPages = "copy"
    /// Measure both and use the one with the shorter pause per page, trying the other again now and then.
    case automatic = "auto"

    public var description: String { rawValue }

    /// Parses a CLI name.
    public static func parse(_ name: String) throws(FGBIError) -> CaptureStrategy {
        guard let strategy = CaptureStrategy(rawValue: name) else {
            throw .invalidArgument("unknown capture strategy '\(name)'; choose rehash, copy or auto")
        }
        return strategy
    }
}

/// Picks rehash or copy for each epoch from the measured pause per written page: an average per strategy
/// that falls at once to a lower measurement and rises slowly (an exponential average) to a higher one, the
/// cheaper strategy used, the other re-measured every `exploreEvery` epochs so a change of workload is
/// noticed. Falling at once matters: a strategy's first capture may pay one-off costs (its staging memory
/// faulted in for the first time, ten times its usual cost per page), and with a plain average the other
/// strategy's re-measurements, one per `exploreEvery` epochs, would take hundreds of epochs to outweigh it.
/// For the same reason the first measurement is of copy only when the capture can stage the epoch's pages in
/// memory already faulted in (the primary reserves it from the synchronisation's last pre-copy round), and
/// otherwise of rehash, which has no staging memory.
///
/// While page copies pay and copy is in use, rehash is measured (first, or again) only every `exploreEvery`
/// times `rehashExploreSlowdown` epochs: an epoch captured by rehash finds no page copies, and under a
/// copying workload it sends many times the bytes (10 MB against 0.3 MB per epoch for the `duplicate`
/// workload at 256 MiB) and pauses for longer (41 against 2-3 ms).
struct CaptureStrategyChooser {
    static let exploreEvery = 32
    /// Epochs with fewer pages say little about the cost per page.
    static let minimumPages = 64

    private var rehashCost: Double?
    private var copyCost: Double?
    private var epochs = 0

    /// How much cheaper rehash must be, per page, to be chosen over copy while copying pays besides the pause.
    static let copyFavour = 1.25
    /// How many times less often rehash is re-measured while copying pays besides the pause and copy is used.
    static let rehashExploreSlowdown = 8

    /// The strategy for the next epoch; `rehashAllowed` is false while a copied epoch still waits to be
    /// rehashed (the two must not touch the block table at once). `favouringCopy`: copied pages pay besides
    /// the pause (page copies are found only among whole staged pages, ``PageCopyFinder``), so rehash is
    /// chosen only where its pause per page is ``copyFavour`` times cheaper, and measured
    /// ``rehashExploreSlowdown`` times less often. `stagingReady`: the capture can stage this epoch's written
    /// pages whole without growing or faulting in memory, so a first measurement of copy would be fair.
    mutating func choose(rehashAllowed: Bool, favouringCopy: Bool = false, stagingReady: Bool = false)
        -> CaptureStrategy
    {
        epochs += 1
        guard rehashAllowed else { return .copyPages }
        let best: CaptureStrategy
        switch (rehashCost, copyCost) {
        case (nil, nil): return stagingReady ? .copyPages : .rehash
        case (_?, nil): return .copyPages
        case (nil, _?): best = .copyPages
        case (let rehash?, let copy?):
            best = rehash * (favouringCopy ? Self.copyFavour : 1) <= copy ? .rehash : .copyPages
        }
        let slower = favouringCopy && best == .copyPages
        // Rehash not measured yet: at once, unless copies pay (then at the first of its slower explorations).
        if rehashCost == nil && !slower { return .rehash }
        let exploreEvery = Self.exploreEvery * (slower ? Self.rehashExploreSlowdown : 1)
        if epochs % exploreEvery == 0 { return best == .rehash ? .copyPages : .rehash }
        return best
    }

    /// Records what a capture cost.
    mutating func record(_ strategy: CaptureStrategy, nanoseconds: UInt64, pages: Int) {
        guard pages >= Self.minimumPages else { return }
        let perPage = Double(nanoseconds) / Double(pages)
        func blend(_ old: Double?) -> Double {
            old.map { perPage < $0 ? perPage : 0.8 * $0 + 0.2 * perPage } ?? perPage
        }
        switch strategy {
        case .rehash: rehashCost = blend(rehashCost)
        case .copyPages: copyCost = blend(copyCost)
        case .automatic: break
        }
    }
}
