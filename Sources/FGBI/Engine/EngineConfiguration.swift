/// How a ``PrimaryEngine`` encodes epochs.
public struct EngineConfiguration: Sendable, Equatable {
    /// What to send: FGBI's blocks or one of the page baselines.
    public var mode: ReplicationMode = .fgbi
    /// Block size for the `fgbi` mode (64 bytes by default, as in the FGBI paper).
    public var blockSize = 64
    /// The general compressor over each epoch's body; nil takes the mode's default.
    public var compression: Compression?
    /// The general compressor runs on an epoch's body only when a sample of it shrinks by at least this
    /// fraction (bodies of 1 MiB or less are always compressed); below, the body goes as it is. 0 compresses
    /// every body. nil takes the mode's: 0.10 for `fgbi`, which skips LZ4 on nearly incompressible bodies,
    /// where it costs more CPU than the rest of the encoder to save 3-6% (Docs/BENCHMARKS.md); 0 for the
    /// baselines, which stay what they model (`page-lz4` always compresses).
    public var compressionMinimumSaving: Double?
    /// Memory for the content index's stored copies (`fgbi`): sharing and differences reach only content
    /// held here. 64 MiB by default, like QEMU's XBZRLE cache; never more than the regions' size (it holds at
    /// most one copy per block location). The default comes from a curve of bytes against budget on the
    /// redis and memcached traces, where 64 MiB reached the plateau (Docs/BENCHMARKS.md). Beside the copies,
    /// the index keeps a table (the budget again), their bookkeeping (half the budget) and, per 64-byte block
    /// of the regions, a bit and a slot number (about 6.4% of the regions' size).
    public var contentBudgetBytes = 64 << 20
    /// Threads that encode one `fgbi` epoch together while the guest runs (`ParallelBlockDeltaEncoder`): the
    /// sender's thread and `encodeThreads - 1` helpers, writing exactly the one thread's bytes. They compete with
    /// the guest for CPUs, so the default is what a machine offers beside it: half its CPUs, at most 4 (1 on
    /// this project's 2-CPU hosts, where two threads measured only 1.0-1.2x one: Docs/BENCHMARKS.md). Ignored
    /// with a ``sharedIndex`` (encoded on one thread) and by the page modes.
    public var encodeThreads = EngineConfiguration.defaultEncodeThreads
    /// Epochs with fewer changed blocks (a copied page counting as all of its blocks) are encoded on the
    /// sender's thread alone (waking helpers costs more); tests set 0 to exercise the helpers on small epochs.
    public var parallelEncodeMinimumBlocks = 4096
    /// Whether an epoch that ``encodeThreads`` could split is split only while splitting has measured 10% faster
    /// than encoding it on the sender's thread alone (both write the same bytes; each way is tried again every
    /// 16 such epochs). Where a second core adds little memory bandwidth, or epochs are small, the split is
    /// slower (Docs/BENCHMARKS.md). Tests turn it off to exercise the helpers on every epoch.
    public var choosesEncodeThreadsByTime = true
    /// The most encode threads an engine takes.
    public static let maximumEncodeThreads = 64
    /// Half the CPUs, at least 1 and at most 4.
    public static var defaultEncodeThreads: Int { min(max(ProcessInfoLite.activeProcessorCount / 2, 1), 4) }
    /// Memory for the `xbzrle` mode's page cache; never more than the regions' size.
    public var pageCacheBudgetBytes = 64 << 20
    /// Whether the encoders' stores (content index, page cache) learn from every capture of a synchronisation's
    /// first pass. By default (false) they learn only from the captures whose content they would keep past the
    /// pass: when the regions outgrow the budget, the rest would be evicted before the pass ends, having
    /// served only copies found within the pass. On the demo's 256 MiB (64 MiB budget) learning it all took the
    /// `fgbi` synchronisation's encode 174 ms on average against 110, to send 6% fewer bytes (Docs/BENCHMARKS.md);
    /// set it where the link, not the CPU, bounds the synchronisation.
    public var learnsWholeFirstPass = false
    /// How the `fgbi` mode captures while the guest is paused (the page modes always copy pages).
    public var captureStrategy = CaptureStrategy.automatic
    /// Threads that capture an epoch together while the guest is paused (its cores are idle then): the
    /// checkpoint thread and `captureThreads - 1` helpers, wherever the scheduler puts them. Ignored when
    /// ``captureCPUs`` is set.
    public var captureThreads = min(ProcessInfoLite.activeProcessorCount, 4)
    /// The CPUs the paused guest leaves idle (its vCPUs' CPUs): when set, every capture runs there, on one
    /// helper thread pinned to each, while the checkpoint thread waits. The guest's freshly written pages
    /// are then read on the cores whose caches hold them and stay there: captured from another core, they
    /// would be shared with it, and the guest's next write to each line would have to take it back (on the
    /// LMDB example that cost the writer more time than the pause itself). Nor does the capture queue behind
    /// the encoder and the sender on the replicator's CPUs. Empty (the default): ``captureThreads``.
    public var captureCPUs: [Int] = []
    /// SCHED_FIFO priority (1-99) for the threads of the paused stage, the checkpoint thread during epochs
    /// and the capture's helpers, so that they run the moment the guest stops, ahead of the encoder, the
    /// sender or anything else sharing their CPUs: a busy CPU otherwise delays their wake-up by a
    /// scheduler slice, and the guest waits that long. Needs CAP_SYS_NICE (root) or RLIMIT_RTPRIO. nil (the
    /// default): normal scheduling.
    public var captureRealtimePriority: Int?
    /// Epochs with fewer written pages are captured on one thread (waking helpers costs more).
    public var parallelCaptureMinimumPages = 256
    /// A capture of whole pages up to this size is copied with plain stores, which leave the pages in the
    /// caches for the encoder (the `fgbi` encoder reads each twice: its hashes, then its changed blocks); a
    /// larger one with streaming stores, which write past the caches instead of evicting the guest's and the
    /// encoder's working sets for pages that would be gone from them before they are read. By default a
    /// quarter of the last-level cache (8 MiB here: a 700-page epoch of the demo, a 1024-page pre-copy step),
    /// 4 MiB where the machine reports none; 0 streams every capture. Docs/BENCHMARKS.md has both ways.
    public var cachedCaptureBytes = EngineConfiguration.defaultCachedCaptureBytes
    /// ``cachedCaptureBytes(lastLevelCacheBytes:)`` of this machine's last-level cache as the kernel describes
    /// it (`/sys/devices/system/cpu/cpu0/cache`).
    public static var defaultCachedCaptureBytes: Int {
        cachedCaptureBytes(lastLevelCacheBytes: ProcessInfoLite.lastLevelCacheBytes)
    }
    /// The default ``cachedCaptureBytes`` for a last-level cache of `lastLevelCacheBytes`: a quarter of it, or
    /// 4 MiB when the kernel describes none (nil).
    public static func cachedCaptureBytes(lastLevelCacheBytes: Int?) -> Int { (lastLevelCacheBytes ?? 16 << 20) / 4 }
    /// Whether the `fgbi` encoder looks, at any offset, for the bytes of a block that would go in a long form
    /// in the content index's stored copies (blocks sent earlier in the epoch, and content the backup holds),
    /// and sends it as a splice of those bytes and literal ones when that is shorter (`SpliceMatcher`):
    /// memory whose content moves (copy-on-write database pages, shifted B-tree nodes). Off by default: on
    /// the LMDB trace it takes a third off the bytes for over twice the primary's CPU (Docs/BENCHMARKS.md,
    /// "Moved content"); where splices do not pay on the wire it takes a sample of the blocks only
    /// (`SpliceAdmission`). Memory: a 32 MiB table, kept across epochs.
    public var splicing = false
    /// Whether the `fgbi` encoder sends a written page that is a whole copy of another page of the regions as a
    /// `page-copy` record (a few bytes), comparing it bitwise with that page's live bytes and asking the
    /// tracker that the page was not written since the capture (`WrittenPageWitness`: the uffd-async
    /// tracker, which a ``Primary`` attaches). No effect without a witness. Where copies are rare it
    /// tries a sample of the pages only (`PageCopyAdmission`). Memory: about 6 MiB per GiB of regions.
    public var pageCopies = true
    /// Written pages whose delta the engine's buffers hold from the start: made that large and faulted in when
    /// the engine is made (set-up), so that no encode up to that size pays a copy into a larger buffer or a
    /// first touch of fresh memory (about 0.4 GB/s here; a synchronisation's first steps spent a tenth of their
    /// encode there). At most the regions' pages. A ``Primary`` raises it to its pre-copy step
    /// (``PrecopyPolicy/chunkPages``, 1024 by default); a larger epoch grows the buffers once (and the parallel
    /// encoder's own segments grow as before). Memory: about 8.3 MiB for 1024 pages with a compressor, half
    /// without.
    public var deltaBufferPages = 1024
    /// How the content index keys hashes; tests force collisions with `.lowBits`.
    public var indexKeying = IndexKeying.fullHash
    /// A content index shared with other engines (other guests, each with its own backup), in place of one of
    /// the engine's own (`fgbi` mode only): its block size must be this one, and its budget and keying
    /// replace ``contentBudgetBytes`` and ``indexKeying``. nil (the default): the engine has its own index.
    public var sharedIndex: SharedContentIndex?

    public init(mode: ReplicationMode = .fgbi, blockSize: Int = 64, compression: Compression? = nil) {
        self.mode = mode
        self.blockSize = blockSize
        self.compression = compression
    }

    /// The compressor in force.
    public var effectiveCompression: Compression { compression ?? mode.defaultCompression }

    /// The minimum saving in force (``compressionMinimumSaving``, or the mode's).
    public var effectiveCompressionMinimumSaving: Double { compressionMinimumSaving ?? (mode == .fgbi ? 0.10 : 0) }

    /// Sets both cache budgets, ``contentBudgetBytes`` (`fgbi`) and ``pageCacheBudgetBytes`` (`xbzrle`), to
    /// `bytes`: one number for whichever mode runs, so modes compared side by side get the same memory.
    public mutating func setCacheBudget(bytes: Int) {
        contentBudgetBytes = bytes
        pageCacheBudgetBytes = bytes
    }
}

extension EngineConfiguration {
    /// The block geometry of this configuration, once it is checked against `regions` (and the summary of
    /// what the backup holds, if any).
    ///
    /// - Throws: ``FGBIError/invalidArgument(_:)`` for an unsupported block size, no regions or more than
    ///   ``BlockLocation/maxRegions``, a content budget over the index's copies, thread counts, CPUs or
    ///   priorities out of range, a shared index of another mode or block size, or a summary of another
    ///   layout.
    func checked(regions: [GuestMemory], summary: ReplicaSummary?) throws -> BlockGeometry {
        let geometry = try BlockGeometry(blockSize: blockSize)
        guard !regions.isEmpty, regions.count <= BlockLocation.maxRegions else {
            throw FGBIError.invalidArgument(
                "an engine replicates 1 to \(BlockLocation.maxRegions) regions, not \(regions.count)")
        }
        guard captureThreads >= 1 else { throw FGBIError.invalidArgument("captureThreads must be at least 1") }
        guard (1...EngineConfiguration.maximumEncodeThreads).contains(encodeThreads) else {
            throw FGBIError.invalidArgument(
                "encodeThreads must be between 1 and \(EngineConfiguration.maximumEncodeThreads), not \(encodeThreads)")
        }
        let copies = min(contentBudgetBytes, regions.reduce(0) { $0 + $1.length }) / geometry.blockSize
        guard sharedIndex != nil || copies <= ContentIndex.maximumCopies else {
            throw FGBIError.invalidArgument(
                """
                a content budget of \(contentBudgetBytes) bytes holds \(copies) copies of \(geometry.blockSize)-byte \
                blocks, more than the index's \(ContentIndex.maximumCopies): use a smaller budget or larger blocks
                """
            )
        }
        if let cpu = captureCPUs.first(where: { !(0..<64).contains($0) }) {
            throw FGBIError.invalidArgument("capture CPU \(cpu) is not between 0 and 63")
        }
        if let priority = captureRealtimePriority, !ThreadScheduling.realtimePriorities.contains(priority) {
            throw FGBIError.invalidArgument("capture realtime priority \(priority) is not between 1 and 99")
        }
        if let summary {
            guard summary.pageHashes.map(\.count) == regions.map(\.pageCount) else {
                throw FGBIError.invalidArgument(
                    """
                    the backup's summary covers \(summary.pageHashes.map(\.count)) pages, the regions \
                    \(regions.map(\.pageCount))
                    """
                )
            }
        }
        if let shared = sharedIndex {
            guard mode == .fgbi else {
                throw FGBIError.invalidArgument("a shared content index needs the fgbi mode, not \(mode)")
            }
            guard shared.blockSize == geometry.blockSize else {
                throw FGBIError.invalidArgument(
                    """
                    the shared content index has \(shared.blockSize)-byte blocks, the engine \
                    \(geometry.blockSize)-byte ones
                    """
                )
            }
        }
        return geometry
    }
}
