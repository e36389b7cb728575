import FGBI
import Foundation
import Logging

/// Several guests replicated by one process (`fgbi primary --guest ...`): per guest a region filled with the
/// same initial content (as if booted from one image), a ``WorkloadDriver`` with its own seed (so the guests
/// diverge) and a ``Primary`` with its own backup, key and epochs; all the primaries share one
/// ``SharedContentIndex`` unless told not to (or in a page mode, which has no content index).
public final class GuestGroup: @unchecked Sendable {
    /// What every guest has in common.
    public struct Settings: Sendable {
        /// Everything but the backup, the key and the guest name, which each guest sets.
        public var primary: PrimaryConfiguration
        /// A guest's region size when its specification gives none.
        public var regionMiB = 64
        /// A guest's key when its specification names no key file.
        public var key: PresharedKey?
        public var workload = SyntheticWorkload.sparse
        public var threads = 2
        public var pagesPerSecond = 200_000
        /// Share one content index (`fgbi` mode): its budget and keying are the engine configuration's.
        public var shareIndex = true
        /// Each guest's right to act as primary (an etcd lease on its own key), asked once per guest while
        /// the group is made; nil: heartbeats alone.
        public var authority: (@Sendable (GuestSpecification) throws -> (any PrimaryAuthority)?)?

        public init(primary: PrimaryConfiguration) {
            self.primary = primary
        }
    }

    /// One guest: its memory, the writers standing in for it, its primary.
    public final class Guest: @unchecked Sendable {
        public let specification: GuestSpecification
        public let memory: GuestMemory
        public let driver: WorkloadDriver
        public let primary: Primary
        /// Why the guest could not start, or nil.
        public fileprivate(set) var startFailure: Error?
        fileprivate var started = false

        init(specification: GuestSpecification, memory: GuestMemory, driver: WorkloadDriver, primary: Primary) {
            self.specification = specification
            self.memory = memory
            self.driver = driver
            self.primary = primary
        }

        public var name: String { specification.name }
    }

    /// How a guest ended.
    public struct Report: Sendable, Codable {
        public var name: String
        public var backup: String
        public var epochsSent: UInt64
        public var lastCommittedEpoch: UInt64?
        /// Epoch frames' bytes, and pre-copy frames' bytes.
        public var bytesSent: Int
        public var precopyBytes: Int
        public var pauseMsP50: Double
        public var pauseMsP99: Double
        public var pagesWritten: Int
        public var indexEntries: Int
        /// Why the guest failed (could not start, lost its backup, its final epoch was not acknowledged), or nil.
        public var failure: String?
    }

    /// The guests that failed, named.
    public struct Failure: Error, CustomStringConvertible {
        public var reports: [Report]
        public init(reports: [Report]) { self.reports = reports }
        public var description: String {
            reports.map { "guest \($0.name) failed: \($0.failure ?? "unknown")" }.joined(separator: "; ")
        }
    }

    public let guests: [Guest]
    public let sharedIndex: SharedContentIndex?

    /// Makes every guest's region (filled), writers and primary; nothing runs until ``start()``.
    ///
    /// - Throws: ``FGBIError`` for a bad configuration, a key file that cannot be read (naming the guest),
    ///   or what a region or primary could not be made with.
    public init(
        _ specifications: [GuestSpecification], settings: Settings, logger: Logger = Logger(label: "fgbi.primary")
    ) throws {
        let engine = settings.primary.engine
        // A guest that reconnects holds two engines for a moment (the new one joins before the old leaves).
        if settings.shareIndex && engine.mode == .fgbi && specifications.count > SharedContentIndex.maximumMembers / 2 {
            throw FGBIError.invalidArgument(
                """
                at most \(SharedContentIndex.maximumMembers / 2) guests share one content index, not \
                \(specifications.count)
                """
            )
        }
        sharedIndex =
            settings.shareIndex && engine.mode == .fgbi
            ? try SharedContentIndex(
                blockSize: engine.blockSize, budgetBytes: engine.contentBudgetBytes, keying: engine.indexKeying)
            : nil
        var guests: [Guest] = []
        for (index, specification) in specifications.enumerated() {
            var configuration = settings.primary
            configuration.backup = specification.backup
            configuration.guestName = specification.name
            configuration.engine.sharedIndex = sharedIndex
            configuration.authority = try settings.authority?(specification)
            do {
                configuration.key = try specification.keyFile.map { try PresharedKey(file: $0) } ?? settings.key
            } catch {
                throw FGBIError.invalidArgument("guest '\(specification.name)': \(error)")
            }
            if configuration.encrypt && configuration.key == nil {
                throw FGBIError.invalidArgument("guest '\(specification.name)': encryption needs a key")
            }
            let memory = try GuestMemory.anonymous(length: (specification.regionMiB ?? settings.regionMiB) << 20)
            try memory.prefault()
            SyntheticWorkload.fillInitial(memory, seed: 1) // one image for all
            let driver = WorkloadDriver(
                memory: memory, workload: settings.workload, threads: settings.threads,
                pagesPerSecond: settings.pagesPerSecond, seed: 7 &+ UInt64(index) &* 0x9E37_79B9)
            var guestLogger = logger
            guestLogger[metadataKey: "guest"] = "\(specification.name)"
            let primary = try Primary(
                regions: [memory], configuration: configuration, hooks: driver.hooks, logger: guestLogger)
            guests.append(Guest(specification: specification, memory: memory, driver: driver, primary: primary))
        }
        self.guests = guests
    }

    /// Starts each guest's primary (connect, synchronise), then its writers. A guest that cannot start is
    /// recorded (``Guest/startFailure``) and left out; the others run. Returns the guests that failed.
    @discardableResult
    public func start(progress: (String) -> Void = { _ in }) -> [Guest] {
        var failed: [Guest] = []
        for guest in guests {
            progress("\(guest.name): connecting to \(guest.specification.backup)")
            do {
                try guest.primary.start()
                guest.driver.start()
                guest.started = true
            } catch {
                guest.startFailure = error
                failed.append(guest)
                progress("\(guest.name): could not start: \(error)")
            }
        }
        return failed
    }

    /// Whether any started guest still replicates.
    public var anyRunning: Bool { guests.contains { $0.started && $0.primary.isRunning } }

    /// One progress line per guest.
    public func progressLines() -> [String] {
        guests.map { guest in
            guard guest.started else {
                return "\(guest.name): not running (\(guest.startFailure.map { "\($0)" } ?? "not started"))"
            }
            let s = guest.primary.statistics
            let state =
                guest.primary.isRunning ? "" : ", stopped: \(guest.primary.failure.map { "\($0)" } ?? "unknown")"
            return
                """
                \(guest.name): epoch \(s.lastCapturedEpoch.map(String.init) ?? "-"), committed \
                \(s.lastCommittedEpoch.map(String.init) ?? "-"),\u{20}
                """
                    + "lag \(s.lag), sent \(String(format: "%.1f", Double(s.bytesSent + s.precopyBytes) / 1e6)) MB, "
                    + "pause p99 \(String(format: "%.2f", s.pausePercentile(0.99))) ms"
                    + (s.reconnects > 0 ? ", reconnects \(s.reconnects)" : "") + state
        }
    }

    /// Stops every guest's writers, then each primary (a final epoch, acknowledged), and reports each guest.
    public func stop() -> [Report] {
        for guest in guests where guest.started { guest.driver.stop() } // the final epochs hold every write
        return guests.map { guest in
            var failure = guest.startFailure.map { "could not start: \($0)" }
            var last: UInt64?
            if guest.started {
                do { last = try guest.primary.stop() } catch { failure = "\(error)" }
            }
            let s = guest.primary.statistics
            return Report(
                name: guest.name, backup: guest.specification.backup.description, epochsSent: s.epochsSent,
                lastCommittedEpoch: last ?? s.lastCommittedEpoch, bytesSent: s.bytesSent, precopyBytes: s.precopyBytes,
                pauseMsP50: s.pausePercentile(0.5), pauseMsP99: s.pausePercentile(0.99),
                pagesWritten: guest.driver.written,
                indexEntries: s.indexEntries, failure: failure)
        }
    }
}
