/// The `fgbi` encoder with its index: the engine's own (on one thread, with the reader of its staged pages,
/// or on several), or its membership of a shared one.
enum BlockEncoding {
    case own(BlockDeltaEncoder<ContentIndex>, ContentIndex, StagedPageReader)
    case parallel(ParallelBlockDeltaEncoder)
    case shared(BlockDeltaEncoder<SharedContentIndex.Member>, SharedContentIndex.Member, StagedPageReader)

    /// The encoder `configuration` asks for, over `tables`: a member of its shared index, or an index of its
    /// own (`contentBudget` bytes of copies) encoded on one thread or on `encodeThreads`.
    init(
        configuration: EngineConfiguration, geometry: BlockGeometry, regions: [GuestMemory], tables: [BlockTable],
        baseline: BaselineHashes, contentBudget: Int
    ) throws {
        let finder =
            configuration.pageCopies ? PageCopyFinder(geometry: geometry, regions: regions, tables: tables) : nil
        if let shared = configuration.sharedIndex {
            let member = try shared.join(blocks: regions.reduce(0) { $0 + $1.length / geometry.blockSize })
            let encoder = BlockDeltaEncoder(geometry: geometry, index: member, splicing: configuration.splicing)
            let reader = StagedPageReader(tables: tables, geometry: geometry, baseline: baseline)
            encoder.pageCopies = finder
            self = .shared(encoder, member, reader)
            return
        }
        let index = ContentIndex(
            blockSize: geometry.blockSize, budgetBytes: contentBudget,
            keying: configuration.indexKeying, regionBlocks: regions.map { $0.length / geometry.blockSize })
        if configuration.encodeThreads > 1 {
            let crew = try CaptureCrew(helpers: configuration.encodeThreads - 1, cpus: [], role: "encode")
            self = .parallel(
                ParallelBlockDeltaEncoder(
                    geometry: geometry, crew: crew, index: index, tables: tables, baseline: baseline,
                    parallelMinimumBlocks: configuration.parallelEncodeMinimumBlocks,
                    choosesByTime: configuration.choosesEncodeThreadsByTime, splicing: configuration.splicing,
                    pageCopies: finder))
        } else {
            let encoder = BlockDeltaEncoder(geometry: geometry, index: index, splicing: configuration.splicing)
            let reader = StagedPageReader(tables: tables, geometry: geometry, baseline: baseline)
            encoder.pageCopies = finder
            self = .own(encoder, index, reader)
        }
    }

    /// What finds the pages sent as copies of others, if the configuration asked for page copies.
    var pageCopyFinder: PageCopyFinder? {
        switch self {
        case .own(let encoder, _, _): return encoder.pageCopies
        case .parallel(let encoder): return encoder.pageCopies
        case .shared(let encoder, _, _): return encoder.pageCopies
        }
    }

    /// Encodes `capture`: its changed blocks, or (`staged`) the staged pages it holds (listing the unchanged
    /// ones when `recordUnchanged`). With a shared index, holding its lock for the whole call. Returns the
    /// records and the pages the backup already held.
    func encode(
        _ capture: EpochCapture, staged: Bool, recordUnchanged: Bool, sparse: Bool,
        into body: inout ByteWriter, stats: inout EpochStatistics
    ) -> (records: Int, pagesHeld: Int) {
        switch self {
        case .own(let encoder, let index, let reader):
            let result = encoder.encode(
                capture, reading: staged ? reader : nil, recordUnchanged: recordUnchanged, sparse: sparse,
                into: &body, stats: &stats)
            stats.indexEntries = index.entryCount
            return result
        case .parallel(let encoder):
            return encoder.encode(
                capture, staged: staged, recordUnchanged: recordUnchanged, sparse: sparse, into: &body, stats: &stats)
        case .shared(let encoder, let member, let reader):
            let waiting = MonotonicClock.nanoseconds()
            return member.exclusively {
                stats.indexWaitNanoseconds = MonotonicClock.nanoseconds() - waiting
                let result = encoder.encode(
                    capture, reading: staged ? reader : nil, recordUnchanged: recordUnchanged,
                    sparse: sparse, into: &body, stats: &stats)
                stats.indexEntries = member.entryCount
                return result
            }
        }
    }

    /// Tells the matcher of moved content, if any, what share of its bytes the last delta body kept through the
    /// compressor (``SpliceAdmission``).
    func noteStoredShare(_ share: Double) {
        switch self {
        case .own(let encoder, _, _): encoder.matcher?.noteStoredShare(share)
        case .parallel(let encoder): encoder.noteStoredShare(share)
        case .shared: break
        }
    }

    /// The engine's own part: its index, or its entry table in the shared one (whose copies are counted
    /// by ``SharedContentIndex/metadataBytes``).
    var metadataBytes: Int {
        switch self {
        case .own(let encoder, let index, _):
            return encoder.metadataBytes + index.metadataBytes + (encoder.pageCopies?.metadataBytes ?? 0)
        case .parallel(let encoder): return encoder.metadataBytes
        case .shared(let encoder, let member, _):
            return encoder.metadataBytes + member.metadataBytes + (encoder.pageCopies?.metadataBytes ?? 0)
        }
    }
}
