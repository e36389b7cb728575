/// Pause and lag figures of a running primary: a bounded window of recent epochs, so memory stays flat.
public struct ReplicationStatistics: Sendable {
    /// Epochs captured, sent and acknowledged so far.
    public var epochsCaptured: UInt64 = 0
    public var epochsSent: UInt64 = 0
    public var lastCommittedEpoch: UInt64?
    /// Bytes sent in epoch frames, and the pages those epochs captured: the written ones, and with hot pages
    /// every hot page (whole pages would have been `pagesWritten` x 4 KiB).
    public var bytesSent = 0
    public var pagesWritten = 0
    /// Of the pages epochs captured, those the tracker reported without looking (hot pages,
    /// ``HotPagePolicy``), over all epochs: they cost a copy each, written or not, but no first write.
    public var pagesReportedUnscanned = 0
    /// Blocks (pages in the page modes) sent, and of them shared references.
    public var blocksSent = 0
    public var sharedHits = 0
    /// Guest pause (pause hook to resume hook), recent epochs, milliseconds.
    public var recentPausesMs: [Double] = []
    /// Times an epoch had to wait for a free capture buffer because encoding or sending fell behind.
    public var backpressureWaits = 0
    /// The frame send path the current session's connection took (``FrameSendPath``).
    public var sendPath = ""
    /// Whether the current (or last) session's frames are encrypted.
    public var encrypted = false
    /// Sessions opened after the first (the backup was lost and came back).
    public var reconnects = 0
    /// With several backups: the last epoch each acknowledged (nil: none yet), in the order of
    /// ``PrimaryConfiguration/backups``, and how many are connected now.
    public var backupAcknowledgements: [UInt64?] = []
    public var backupsConnected = 0
    /// With several backups: backups lost while the others went on committing, and backups that returned and
    /// caught up from the frames kept for them (without a resynchronisation).
    public var backupsLost = 0
    public var catchUps = 0
    /// Synchronisations run (one per session), and the last one's figures.
    public var synchronisations = 0
    public var lastSynchronisation: SynchronisationReport?
    /// The engine's metadata: block tables, content index with its stored copies, or page cache, bytes. With
    /// a shared content index, the engine's entry table in it but not the shared copies.
    public var metadataBytes = 0
    /// Entries the content index held for this backup after the last epoch or pre-copy step encoded (`fgbi`).
    public var indexEntries = 0
    /// Pre-copy frames and their bytes, over all synchronisations.
    public var precopyFrames = 0
    public var precopyBytes = 0

    /// The `fraction` percentile of recent pauses.
    public func pausePercentile(_ fraction: Double) -> Double {
        let sorted = recentPausesMs.sorted()
        guard !sorted.isEmpty else { return 0 }
        let rank = max(Int((fraction * Double(sorted.count)).rounded(.up)) - 1, 0)
        return sorted[min(rank, sorted.count - 1)]
    }

    /// The last epoch captured (paused epochs only; pre-copy steps use epoch numbers too, so epoch numbers
    /// are not a count).
    public var lastCapturedEpoch: UInt64?

    /// Epochs captured but not yet acknowledged (counting the numbers between, pre-copy steps included).
    public var lag: UInt64 {
        guard let captured = lastCapturedEpoch else { return 0 }
        guard let committed = lastCommittedEpoch else { return captured + 1 }
        return captured > committed ? captured - committed : 0
    }

    static let window = 1024

    mutating func recordPause(milliseconds: Double) {
        if recentPausesMs.count == Self.window { recentPausesMs.removeFirst(Self.window / 4) }
        recentPausesMs.append(milliseconds)
    }
}

/// How a session's synchronisation went: the pre-copy rounds that brought the backup up to date while the
/// guest ran, before the first paused epoch of the session.
public struct SynchronisationReport: Sendable, Equatable {
    /// The backup held content and sent its page hashes (a resynchronisation), or started empty.
    public var resynchronised = false
    /// Pre-copy rounds (the first covers every page; later ones the pages written meanwhile).
    public var rounds = 0
    /// Pages captured in each round, in order (the dirty rate the rounds converged on).
    public var pagesPerRound: [Int] = []
    /// Pages the first pass found the backup already holding (a resynchronisation), not sent.
    public var pagesAlreadyHeld = 0
    /// Bytes the first pass sent: for a resynchronisation, what differed between the backup's memory and
    /// this primary's when the session began (later rounds send what the guest wrote meanwhile).
    public var firstPassBytes = 0
    /// Pages whose block hashes the backup sent (they differed from its page hashes), and the bytes of those
    /// answers (``PrecopyPolicy/fetchesBlockHashes``).
    public var blockHashPages = 0
    public var blockHashBytes = 0
    /// Wall time from the session's start to the end of the last round, milliseconds.
    public var milliseconds = 0.0
    /// The encoder's time (its compressor included) on the pre-copy steps and on the epoch that ends the
    /// synchronisation, milliseconds: the primary CPU that synchronising took beside the guest's.
    public var encodeMilliseconds = 0.0
    /// The epoch whose commit ends the synchronisation, and its guest pause in milliseconds.
    public var epoch: UInt64 = 0
    public var pauseMilliseconds: Double?
}

extension ReplicationStatistics: CustomStringConvertible {
    /// One line for logs and `print`: counts, bytes, the pause percentiles and the session's state, not the
    /// window of pause samples itself.
    public var description: String {
        var parts = [
            "epochs \(epochsCaptured) captured, \(epochsSent) sent, "
                + "committed \(lastCommittedEpoch.map(String.init) ?? "none") (lag \(lag))"
        ]
        parts.append(
            "\(Self.decimal(Double(bytesSent) / 1e6)) MB sent for \(pagesWritten) pages "
                + "(\(blocksSent) blocks, \(sharedHits) shared)")
        if !recentPausesMs.isEmpty {
            parts.append(
                "pause p50 \(Self.decimal(pausePercentile(0.5))) ms, p99 \(Self.decimal(pausePercentile(0.99))) ms "
                    + "over the last \(recentPausesMs.count) epochs")
        }
        parts.append("backpressure waits \(backpressureWaits)")
        if !sendPath.isEmpty { parts.append("send path \(sendPath), \(encrypted ? "encrypted" : "not encrypted")") }
        parts.append("reconnects \(reconnects), synchronisations \(synchronisations)")
        parts.append("metadata \(Self.decimal(Double(metadataBytes) / 1e6)) MB")
        return parts.joined(separator: "; ")
    }

    /// `value` with at most two decimals.
    private static func decimal(_ value: Double) -> String {
        let rounded = (value * 100).rounded() / 100
        return rounded == rounded.rounded() && abs(rounded) < 1e15 ? String(Int(rounded)) : String(rounded)
    }
}
