import Logging
import Synchronization

/// The ways a primary's replication ends: a primaryship that lapses, a session that fails (and reconnects), a
/// failure for good.
extension Primary {
    /// Watches the ``PrimaryConfiguration/authority`` while replication runs: once it no longer surely
    /// holds, replication halts (within one lease time to live of the last renewal).
    func authorityLoop() {
        guard let authority = configuration.authority else { return }
        while running.load() {
            let now = MonotonicClock.nanoseconds()
            let until = authority.validUntilNanoseconds
            if now >= until {
                losePrimaryship(authority)
                return
            }
            MonotonicClock.sleep(nanoseconds: min(until - now, 2_000_000))
        }
    }

    /// Halts replication for good with ``LostPrimaryship``: no epoch is confirmed from now on, and the
    /// connection closes without a bye, so the backup treats this primary as lost and asks its coordinator.
    func losePrimaryship(_ authority: any PrimaryAuthority) {
        let error = LostPrimaryship(
            term: authority.term, lastCommittedEpoch: committedEpoch, reason: authority.lossReason)
        let first = shared.withLock { shared -> Bool in
            guard shared.failure == nil else { return false }
            shared.failure = error
            return true
        }
        if first { logger.critical("\(error)") }
        fail(error)
    }

    /// The session's connection failed: record why and close it, which wakes every session thread. The
    /// checkpoint thread then reconnects or gives up.
    func sessionFailed(_ error: Error) {
        let first = shared.withLock { shared -> Bool in
            guard shared.sessionFailure == nil else { return false }
            shared.sessionFailure = error
            return true
        }
        if first { session.closeLinks() }
    }

    /// Replication stops for good.
    func fail(_ error: Error) {
        shared.withLock { shared in
            if shared.failure == nil { shared.failure = error }
        }
        running.store(false)
        session.closeLinks()
        commitTracker.finish()
    }
}
