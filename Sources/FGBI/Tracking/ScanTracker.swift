import CSupport
import Synchronization

/// The `scan` backend: no kernel help. Keeps one XXH3 hash per page and, at each collection, rehashes the
/// whole region and reports the pages whose hash changed.
///
/// Its cost grows with the region, not with what was written (about 1 GiB per 130 ms here), which is why the
/// userfaultfd backends exist; it stays as the fallback where userfaultfd is missing and as the reference
/// that checks them. It reports pages whose content changed: a write that stores the bytes already there
/// goes unseen, and a 64-bit hash collision (odds 2^-64 per changed page) would hide a change.
/// Reading a memfd region's holes allocates them.
package final class ScanTracker: DirtyTracker, @unchecked Sendable {
    public var kind: TrackerKind { .scan }
    public let memory: GuestMemory

    /// Pages hashed per call into the shim.
    private static let chunkPages = 1024

    private struct State {
        var started = false
        var pageHashes: [UInt64] = []
        var chunkHashes: [UInt64] = []
    }

    private let state = PthreadLock(State())

    public init(memory: GuestMemory) {
        self.memory = memory
    }

    public func start() throws {
        try state.withLock { state in
            guard !state.started else { throw FGBIError.invalidState("scan tracker already started") }
            state.pageHashes = [UInt64](repeating: 0, count: memory.pageCount)
            state.chunkHashes = [UInt64](repeating: 0, count: Self.chunkPages)
            state.pageHashes.withUnsafeMutableBufferPointer { hashes in
                CSupport_hash_blocks(memory.base, GuestMemory.pageSize, memory.pageCount, hashes.baseAddress)
            }
            state.started = true
        }
    }

    public func collect(into set: inout DirtyPageSet) throws {
        set.removeAll()
        try state.withLock { state in
            guard state.started else { throw FGBIError.invalidState("collect on a scan tracker that is not running") }
            let pageCount = memory.pageCount
            var first = 0
            while first < pageCount {
                let count = min(Self.chunkPages, pageCount - first)
                state.chunkHashes.withUnsafeMutableBufferPointer { fresh in
                    CSupport_hash_blocks(memory.page(first), GuestMemory.pageSize, count, fresh.baseAddress)
                    state.pageHashes.withUnsafeMutableBufferPointer { old in
                        for i in 0..<count where fresh[i] != old[first + i] {
                            old[first + i] = fresh[i]
                            set.append(first + i)
                        }
                    }
                }
                first += count
            }
        }
    }

    public func stop() throws {
        state.withLock { state in
            state.started = false
            state.pageHashes = []
            state.chunkHashes = []
        }
    }
}
