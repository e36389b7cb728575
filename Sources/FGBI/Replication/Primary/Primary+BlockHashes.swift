import CSupport

/// A resynchronisation at block granularity (``BlockHashExchange``, ``PrecopyPolicy/fetchesBlockHashes``):
/// before the first pass, the primary asks its one backup for the block hashes of the pages that differ from
/// the backup's page hashes, and records them in the engine's block tables, so the first pass sends only the
/// blocks of those pages that differ.
extension Primary {
    /// Pages asked for first; their answers say whether asking for the rest pays.
    static let blockHashSamplePages = 64

    /// Asks `link`'s backup for the block hashes of the pages its `summary` shows differing, and hands them to
    /// the engine. A sample comes first: when more than 7 blocks in 8 of its pages differ, the hashes (an
    /// eighth of a page each) would cost more than they save, and the rest of the pages go whole. Returns the
    /// pages asked for and the bytes of the answers.
    ///
    /// - Throws: ``WireError`` for a refusal or an answer that does not match the request; the connection's
    ///   error when it fails.
    func fetchBlockHashes(from link: BackupLink, summary: ReplicaSummary) throws -> (pages: Int, bytes: Int) {
        var runs: [BlockHashExchange.Run] = []
        for (index, region) in regions.enumerated() {
            let held = summary.pageHashes[index]
            for page in 0..<region.pageCount
            where CSupport_xxh3_64(region.page(page), GuestMemory.pageSize) != held[page] {
                if let last = runs.last, last.region == index, last.start + last.count == page {
                    runs[runs.count - 1].count += 1
                } else {
                    runs.append(.init(region: index, start: page, count: 1))
                }
            }
        }
        let (sample, rest) = Self.split(runs, afterPages: Self.blockHashSamplePages)
        guard !sample.isEmpty else { return (0, 0) }
        let sampled = try exchangeBlockHashes(sample, with: link)
        var pages = sample.reduce(0) { $0 + $1.count }
        var bytes = sampled.bytes
        let blocks = pages * pipeline.engine.geometry.blocksPerPage
        if !rest.isEmpty, sampled.differing * 8 <= blocks * 7 {
            bytes += try exchangeBlockHashes(rest, with: link).bytes
            pages += rest.reduce(0) { $0 + $1.count }
        } else if !rest.isEmpty {
            logger.info(
                """
                block hashes would not pay: \(sampled.differing) of \(blocks) blocks of the sampled pages differ; \
                the other differing pages go whole
                """
            )
        }
        return (pages, bytes)
    }

    /// `runs` cut after `limit` pages: the first part and the rest.
    static func split(_ runs: [BlockHashExchange.Run], afterPages limit: Int) -> (
        [BlockHashExchange.Run], [BlockHashExchange.Run]
    ) {
        var first: [BlockHashExchange.Run] = []
        var rest: [BlockHashExchange.Run] = []
        var taken = 0
        for run in runs {
            if taken >= limit {
                rest.append(run)
            } else if taken + run.count <= limit {
                first.append(run)
                taken += run.count
            } else {
                let head = limit - taken
                first.append(.init(region: run.region, start: run.start, count: head))
                rest.append(.init(region: run.region, start: run.start + head, count: run.count - head))
                taken = limit
            }
        }
        return (first, rest)
    }

    /// One request for `runs` and its answers, recorded in the engine: the bytes of the answers and how many
    /// of the blocks differ from this primary's now.
    private func exchangeBlockHashes(_ runs: [BlockHashExchange.Run], with link: BackupLink) throws -> (
        bytes: Int, differing: Int
    ) {
        for payload in BlockHashExchange.requestPayloads(runs) { try link.connection.send(.blockHashRequest, payload) }
        let geometry = pipeline.engine.geometry
        var hasher = PageBlockHasher(geometry: geometry)
        var bytes = 0
        var differing = 0
        for run in runs {
            var page = run.start
            while page < run.start + run.count {
                let frame = try link.connection.receive()
                switch frame.type {
                case .blockHashes:
                    let (count, hashes) = try BlockHashExchange.decodeAnswer(
                        frame.payload, expecting: run, from: page,
                        blocksPerPage: geometry.blocksPerPage)
                    pipeline.engine.learnBackupBlocks(region: run.region, firstPage: page, hashes: hashes)
                    for offset in 0..<count {
                        let mine = hasher.hashes(of: regions[run.region].page(page + offset))
                        for block in 0..<geometry.blocksPerPage
                        where mine[block] != hashes[offset * geometry.blocksPerPage + block] {
                            differing += 1
                        }
                    }
                    bytes += frame.payload.count
                    page += count
                case .heartbeat:
                    continue
                case .error:
                    throw WireError.refused(PeerText.printable(frame.payload))
                default:
                    throw WireError.unexpected("\(frame.type) while reading the backup's block hashes")
                }
            }
        }
        return (bytes, differing)
    }
}
