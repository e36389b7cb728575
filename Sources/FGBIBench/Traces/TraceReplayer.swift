import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// Replays a ``TraceDirectory`` into a region, an image per epoch, as the program that made it wrote:
/// ``prepare()`` writes the first image whole (set-up, before tracking starts); each ``writeNext()`` writes
/// only the 4 KiB pages of the next image that differ from the region, at their offsets, so a tracker sees
/// the page writes the program made between the two snapshots.
///
/// The counterpart of ``WorkloadDriver`` for recorded memory: the writes happen on the caller's thread inside
/// ``writeNext()``, so ``hooks`` have nothing to stop. Only the replayer may write the region (each image is
/// compared with the region, which must hold the previous image).
public final class TraceReplayer: @unchecked Sendable {
    public let memory: GuestMemory
    public let trace: TraceDirectory
    /// The index of the image the next ``writeNext()`` writes (1 after ``prepare()``).
    public private(set) var nextImage = 0
    /// The pages the last ``writeNext()`` wrote.
    public private(set) var lastWritten = DirtyPageSet()
    /// Pages written by ``writeNext()`` so far.
    public private(set) var written = 0
    private let buffer: UnsafeMutableRawBufferPointer

    /// A replayer of `trace` into `memory`, which must be exactly one image long.
    public init(memory: GuestMemory, trace: TraceDirectory) throws(TraceError) {
        guard memory.length == trace.imageSize else {
            throw .regionMismatch(regionBytes: memory.length, imageBytes: trace.imageSize)
        }
        self.memory = memory
        self.trace = trace
        buffer = .allocate(byteCount: trace.imageSize, alignment: GuestMemory.pageSize)
    }

    deinit { buffer.deallocate() }

    /// Nothing to stop: the replayer writes only inside ``writeNext()``.
    public var hooks: PauseHooks { .none }

    /// Images not yet written.
    public var remaining: Int { trace.images.count - nextImage }

    /// Writes the first image whole. Call before tracking starts.
    public func prepare() throws(TraceError) {
        try trace.readImage(0, into: buffer)
        memory.base.copyMemory(from: buffer.baseAddress!, byteCount: trace.imageSize)
        nextImage = 1
    }

    /// Writes the pages of the next image that differ from the region; false (writing nothing) when every
    /// image has been written.
    public func writeNext() throws(TraceError) -> Bool {
        guard nextImage > 0 else { throw .notPrepared }
        lastWritten.removeAll()
        guard nextImage < trace.images.count else { return false }
        try trace.readImage(nextImage, into: buffer)
        let pageSize = GuestMemory.pageSize
        for page in 0..<trace.pageCount {
            let source = buffer.baseAddress! + page * pageSize
            if memcmp(memory.page(page), source, pageSize) != 0 {
                memory.page(page).copyMemory(from: source, byteCount: pageSize)
                lastWritten.append(page)
            }
        }
        written += lastWritten.pageCount
        nextImage += 1
        return true
    }
}
