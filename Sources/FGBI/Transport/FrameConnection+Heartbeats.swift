import Synchronization

extension FrameConnection {
    /// Runs `body` (a backup's checkpoint can take seconds for a large replica) while a helper thread sends a
    /// heartbeat every 50 ms, so the peer does not take a busy end for a dead one.
    ///
    /// - Throws: what `body` throws, or ``SystemError`` when the helper thread cannot be created.
    func whileSendingHeartbeats(_ body: () throws -> Void) throws {
        let done = Atomic<Bool>(false)
        let beat = try JoinableThread(name: "fgbi-backup-beat") { [self] in
            var waited: UInt64 = 0
            while !done.load(ordering: .acquiring) {
                MonotonicClock.sleep(nanoseconds: 5_000_000)
                waited += 5_000_000
                if waited >= 50_000_000 {
                    waited = 0
                    try? send(.heartbeat, [UInt8](repeating: 0, count: 8))
                }
            }
        }
        defer {
            done.store(true, ordering: .releasing)
            beat.join()
        }
        try body()
    }
}
