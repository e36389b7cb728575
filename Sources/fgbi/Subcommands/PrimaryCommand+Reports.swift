import ArgumentParser
import FGBI
import FGBIBench
import FGBICoordination
import Foundation

/// What `fgbi primary` prints while and after it runs: progress, events for drills, the closing summary.
extension FGBICommand.PrimaryCommand {
    /// The closing lines: the synchronisation, why it stopped, and what was sent.
    func printSummary(
        _ s: ReplicationStatistics, lastCommitted last: UInt64?, stoppedBy signal: Int32?, pagesWritten: Int
    ) {
        if let sync = s.lastSynchronisation {
            print(
                """
                primary: \(sync.resynchronised ? "resynchronised" : "synchronised") in \(sync.rounds) \
                pre-copy round(s)\u{20}
                """
                    + "(pages per round \(sync.pagesPerRound.map(String.init).joined(separator: ", "))) in "
                        + """
                        \(formatted(sync.milliseconds, 0)) ms, \(formatted(Double(s.precopyBytes) / 1e6, 1)) MB \
                        of pre-copy
                        """
                    + (sync.resynchronised
                        ? ", of it \(formatted(Double(sync.firstPassBytes) / 1e6, 2)) MB in the first pass "
                            + "(\(sync.pagesAlreadyHeld) pages already held"
                            + (sync.blockHashPages > 0
                                ? "; block hashes of \(sync.blockHashPages) differing pages, "
                                    + "\(formatted(Double(sync.blockHashBytes) / 1e6, 2)) MB from the backup" : "")
                            + ")" : ""))
        }
        if let number = signal { print("primary: stopped by \(StopSignals.name(number)) after a last epoch") }
        print(
            """
            primary: frames sent with \(s.sendPath); \(s.epochsSent) epochs sent, last committed epoch \
            \(last.map(String.init) ?? "none"),\u{20}
            """
                + """
                \(formatted(Double(s.bytesSent) / 1e6, 1)) MB sent, pause p50 \
                \(formatted(s.pausePercentile(0.5))) ms\u{20}
                """
                + "p99 \(formatted(s.pausePercentile(0.99))) ms, \(pagesWritten) pages written")
    }

    /// Writes the once-a-second progress line to standard error.
    static func noteProgress(_ s: ReplicationStatistics, backups: Int) {
        Progress.note(
            """
            epoch \(s.lastCapturedEpoch.map(String.init) ?? "-"), committed \
            \(s.lastCommittedEpoch.map(String.init) ?? "-"),\u{20}
            """
                + "lag \(s.lag), sent \(formatted(Double(s.bytesSent + s.precopyBytes) / 1e6, 1)) MB, "
                + "pause p99 \(formatted(s.pausePercentile(0.99))) ms, backpressure waits \(s.backpressureWaits)"
                + (s.reconnects > 0 ? ", reconnects \(s.reconnects)" : "")
                + (backups > 1 ? ", backups connected \(s.backupsConnected) of \(backups)" : ""))
    }

    /// With several backups, prints `event every-backup-holds epoch N` when the oldest epoch acknowledged by every
    /// backup passes `previous` (for drills that wait until each backup holds a committed epoch); returns it.
    static func printEveryBackupHolds(_ statistics: ReplicationStatistics, after previous: UInt64?) -> UInt64? {
        let acknowledged = statistics.backupAcknowledgements
        guard acknowledged.allSatisfy({ $0 != nil }), let oldest = acknowledged.compactMap({ $0 }).min() else {
            return previous
        }
        if oldest != previous { EventLine.print("every-backup-holds epoch \(oldest)") }
        return oldest
    }

    /// Runs until the duration passes, replication stops or a signal arrives, printing progress every second
    /// and, with --print-events, the epoch every backup holds.
    func waitWhileReplicating(_ primary: Primary, backups: Int, stop: StopSignals) {
        let started = Date()
        var lastReport = started
        var everyBackupHolds: UInt64?
        while Date().timeIntervalSince(started) < duration, primary.isRunning, stop.received == nil {
            Thread.sleep(forTimeInterval: printEvents ? 0.01 : 0.1)
            if printEvents, backups > 1 {
                everyBackupHolds = Self.printEveryBackupHolds(primary.statistics, after: everyBackupHolds)
            }
            if Date().timeIntervalSince(lastReport) >= 1 {
                lastReport = Date()
                Self.noteProgress(primary.statistics, backups: backups)
            }
        }
    }

    /// With several backups, the last epoch each acknowledged, and those lost and caught up.
    static func printBackups(_ s: ReplicationStatistics, policy: CommitPolicy) {
        let acknowledged = s.backupAcknowledgements.map { $0.map(String.init) ?? "none" }.joined(separator: ", ")
        print(
            "primary: \(s.backupAcknowledgements.count) backups, commit \(policy); last epoch acknowledged by each: "
                + "\(acknowledged); backups lost \(s.backupsLost), caught up \(s.catchUps)")
    }

    /// Digests of each epoch's memory, each printed as `epoch N digest H` (--print-epoch-digests).
    static func printingDigests(of region: GuestMemory) -> EpochDigests {
        EpochDigests(regions: [region]) { epoch, digest in
            // One unbuffered write per epoch, before the epoch can be sent: a kill never hides a committed one.
            var line = "epoch \(epoch) digest \(String(digest, radix: 16))\n"
            line.withUTF8 { _ = write(STDOUT_FILENO, $0.baseAddress, $0.count) }
        }
    }
}
