/// A ``Backup`` serving on a thread of its own, as ``Backup/start()`` returns it: the embedder's thread goes
/// on, and asks for the outcome when it wants it (a failover to act on, say).
///
/// ```swift
/// let service = try backup.start()
/// // ... the program runs ...
/// switch try service.outcome() {           // waits until the service ends
/// case .failedOver(let epoch, _), .promoted(let epoch, _, _): print("take over at epoch \(String(describing: epoch))")
/// default: break
/// }
/// ```
public final class BackupService: Sendable {
    /// The backup being served.
    public let backup: Backup
    /// The serving thread, behind a lock: joining is not safe from two threads at once.
    private let thread: PthreadLock<JoinableThread>
    private let result = PthreadLock<Result<BackupOutcome, any Error>?>(nil)

    init(_ backup: Backup) throws(SystemError) {
        self.backup = backup
        let result = self.result
        thread = PthreadLock(
            try JoinableThread(name: "fgbi-backup") {
                let outcome = Result { try backup.serve() }
                result.withLock { $0 = outcome }
            })
    }

    /// Whether ``Backup/serve()`` has returned (the primary finished or was lost, or the backup was stopped).
    public var isFinished: Bool { result.withLock { $0 != nil } }

    /// Waits until the service ends and returns how (what ``Backup/serve()`` returned).
    ///
    /// - Throws: what ``Backup/serve()`` threw (``PersistFailure`` when this backup could not make an epoch
    ///   durable, a ``SystemError`` of its listening socket).
    public func outcome() throws -> BackupOutcome {
        join()
        return try result.withLock { $0! }.get()
    }

    /// ``outcome()``, waiting at most `timeout`: nil when the backup is still serving then.
    public func outcome(timeout: Duration) throws -> BackupOutcome? {
        let deadline = MonotonicClock.nanoseconds() + timeout.wholeNanoseconds
        while !isFinished {
            guard MonotonicClock.nanoseconds() < deadline else { return nil }
            MonotonicClock.sleep(nanoseconds: 1_000_000)
        }
        return try outcome()
    }

    /// Stops the backup (``Backup/stop()``: the replica stays at its last committed epoch, no failover) and
    /// returns the outcome once the serving thread has ended.
    @discardableResult
    public func stop() throws -> BackupOutcome {
        backup.stop()
        return try outcome()
    }

    private func join() {
        thread.withLock { $0.join() }
    }
}

extension Backup {
    /// Serves primaries (``serve()``) on a thread of its own and returns at once; the service's
    /// ``BackupService/outcome()`` says how it ended.
    ///
    /// - Throws: ``SystemError`` when the thread cannot be created.
    public func start() throws -> BackupService {
        try BackupService(self)
    }
}
