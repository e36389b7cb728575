import CSupport
import FGBI
import Foundation

/// The XXH3-64 of a primary's regions at every epoch it captured, taken while the guest is paused for the
/// capture, so a replica can be checked to hold exactly some epoch: its digest must equal that epoch's.
public final class EpochDigests: @unchecked Sendable {
    private let lock = NSLock()
    private var digests: [UInt64: UInt64] = [:]
    private var pending: (captured: UInt64?, digest: UInt64)?
    private let regions: [GuestMemory]
    private weak var primary: Primary?
    private let onRecord: (@Sendable (UInt64, UInt64) -> Void)?

    /// Digests of `regions`; `onRecord` (if any) hears each epoch and digest as it is recorded, inside the
    /// pause (to report them to another process before the epoch can be committed).
    public init(regions: [GuestMemory], onRecord: (@Sendable (_ epoch: UInt64, _ digest: UInt64) -> Void)? = nil) {
        self.regions = regions
        self.onRecord = onRecord
    }

    /// The digest of `regions` as they are now (the XXH3 of the per-region XXH3s).
    public static func digest(of regions: [GuestMemory]) -> UInt64 {
        var each = regions.map { CSupport_xxh3_64($0.base, $0.length) }
        return CSupport_xxh3_64(&each, each.count * 8)
    }

    /// Hooks that take the digest inside the pause (`inner` pauses the guest first) and file it under the
    /// epoch the primary captured; give them to `primary`'s initialiser, then call ``attach(_:)``.
    public func hooks(wrapping inner: PauseHooks) -> PauseHooks {
        PauseHooks(
            pause: { [self] in
                inner.pause()
                let digest = Self.digest(of: regions)
                let captured = primary?.statistics.lastCapturedEpoch
                lock.withLock { pending = (captured, digest) }
            },
            resume: { [self] in
                // The capture published its epoch before the resume; a capture that failed published none.
                let captured = primary?.statistics.lastCapturedEpoch
                let recorded: (UInt64, UInt64)? = lock.withLock {
                    defer { pending = nil }
                    guard let pending, let captured, captured != pending.captured else { return nil }
                    digests[captured] = pending.digest
                    return (captured, pending.digest)
                }
                if let recorded { onRecord?(recorded.0, recorded.1) }
                inner.resume()
            })
    }

    /// The primary whose epochs these are.
    public func attach(_ primary: Primary) { self.primary = primary }

    /// The digest recorded for `epoch`, if it was captured.
    public func digest(epoch: UInt64) -> UInt64? { lock.withLock { digests[epoch] } }

    /// Records `digest` for `epoch` (digests read from another process's report).
    public func record(epoch: UInt64, digest: UInt64) { lock.withLock { digests[epoch] = digest } }

    /// Epochs recorded.
    public var count: Int { lock.withLock { digests.count } }
}
