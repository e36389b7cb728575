import FGBI

/// What one traced epoch wrote: the pages the tracker reported, how many of their blocks really changed, and
/// how much of the written content is shared. One `epoch` record of `fgbi trace` output (Docs/TRACE.md).
public struct EpochTrace: Codable, Sendable, Equatable {
    /// Always `"epoch"`: the record type in trace output.
    public var record = "epoch"
    /// The epoch's number, from 1.
    public var epoch: Int
    /// Milliseconds from the start of tracking to this epoch's collection.
    public var endMs: Double
    /// The epoch's length in milliseconds (nominal for a replayed trace).
    public var durationMs: Double
    /// Pages the tracker reported written.
    public var writtenPages: Int
    /// Blocks (at the trace's block size) of the written pages whose content changed.
    public var dirtyBlocks: Int
    /// Written pages with at least one changed block.
    public var changedPages: Int
    /// Written pages written for the first time in this trace.
    public var newPages: Int
    /// Written pages that are all zeros after the epoch.
    public var zeroPages: Int
    /// Changed blocks that are all zeros after the epoch.
    public var zeroBlocks: Int
    /// Element k: written pages with exactly k changed blocks (k from 0 to blocks per page).
    public var dirtyBlockHistogram: [Int]
    /// Groups of two or more written pages with identical content after the epoch.
    public var duplicatePageGroups: Int
    /// Pages in those groups.
    public var duplicatePages: Int
    /// The groups' sizes, largest first (at most ``SharingGroups/listedGroups`` listed).
    public var duplicatePageGroupSizes: [Int]
    /// Groups of two or more changed blocks with identical new content.
    public var duplicateBlockGroups: Int
    /// Blocks in those groups.
    public var duplicateBlocks: Int
    /// The groups' sizes, largest first (at most ``SharingGroups/listedGroups`` listed).
    public var duplicateBlockGroupSizes: [Int]
    /// Write-protect faults recorded in this epoch (`uffd-sync` only; nil for other trackers).
    public var faults: Int?

    public init(
        epoch: Int, endMs: Double, durationMs: Double, writtenPages: Int, dirtyBlocks: Int, changedPages: Int,
        newPages: Int, zeroPages: Int, zeroBlocks: Int, dirtyBlockHistogram: [Int], pageSharing: SharingGroups,
        blockSharing: SharingGroups, faults: Int?
    ) {
        self.epoch = epoch
        self.endMs = endMs
        self.durationMs = durationMs
        self.writtenPages = writtenPages
        self.dirtyBlocks = dirtyBlocks
        self.changedPages = changedPages
        self.newPages = newPages
        self.zeroPages = zeroPages
        self.zeroBlocks = zeroBlocks
        self.dirtyBlockHistogram = dirtyBlockHistogram
        duplicatePageGroups = pageSharing.groups
        duplicatePages = pageSharing.members
        duplicatePageGroupSizes = pageSharing.listedSizes
        duplicateBlockGroups = blockSharing.groups
        duplicateBlocks = blockSharing.members
        duplicateBlockGroupSizes = blockSharing.listedSizes
        self.faults = faults
    }
}

/// One write-protect fault the `uffd-sync` tracker saw: a `fault` record of `fgbi trace` output.
public struct FaultTrace: Codable, Sendable, Equatable {
    /// Always `"fault"`.
    public var record = "fault"
    /// The epoch whose collection took the fault.
    public var epoch: Int
    /// The page's index within the region.
    public var page: Int
    /// Nanoseconds from the start of tracking to the fault (as the fault thread read it).
    public var timeNs: UInt64
    /// The faulting thread's kernel id (gettid), 0 when the kernel did not report it.
    public var thread: UInt32

    public init(epoch: Int, page: Int, timeNs: UInt64, thread: UInt32) {
        self.epoch = epoch
        self.page = page
        self.timeNs = timeNs
        self.thread = thread
    }
}

/// One page written at least once during a trace: a `page` record of `fgbi trace` output.
public struct PageActivity: Codable, Sendable, Equatable {
    /// Always `"page"`.
    public var record = "page"
    /// The page's index within the region.
    public var page: Int
    /// Epochs in which the tracker reported the page written.
    public var epochsWritten: Int
    /// Changed blocks of the page, summed over those epochs.
    public var dirtyBlocks: Int

    public init(page: Int, epochsWritten: Int, dirtyBlocks: Int) {
        self.page = page
        self.epochsWritten = epochsWritten
        self.dirtyBlocks = dirtyBlocks
    }
}
