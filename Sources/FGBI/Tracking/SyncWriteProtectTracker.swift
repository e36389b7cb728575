import CSupport
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The `uffd-sync` backend: classic userfaultfd write-protect with a fault-handling thread.
///
/// Every first write to a protected page blocks its thread in the kernel until FGBI's fault thread reads the
/// fault, records the page with the time and the faulting thread's id, and unprotects the page, which wakes
/// the writer. Far slower per write than `uffd-async` (two context switches), but it sees each fault: the
/// backend for fault-tracking diagnostics (``takeFaults()``).
///
/// A collection write-protects the pages written so far while holding the lock the fault thread needs, so a
/// write racing it is recorded in the next epoch, never lost.
package final class SyncWriteProtectTracker: DirtyTracker, @unchecked Sendable {
    public var kind: TrackerKind { .uffdSync }
    public let memory: GuestMemory

    /// One write-protect fault as the fault thread saw it.
    public struct FaultRecord: Sendable, Equatable {
        /// The page's index within the region.
        public var page: Int
        /// When the fault thread read it, in CLOCK_MONOTONIC nanoseconds.
        public var monotonicNanoseconds: UInt64
        /// The faulting thread's kernel id (gettid), 0 if the kernel did not report it.
        public var threadID: UInt32
    }

    private struct Shared {
        /// One bit per page: written since the last collection.
        var writtenBits: [UInt64]
        /// The same pages in fault order, for a collection that costs what was written, not the region size.
        var writtenPages: [Int] = []
        var faults: [FaultRecord] = []
        var droppedFaults = 0
        /// The first error the fault thread met; reported by the next collection.
        var threadError: SystemError?
        var running = false
    }

    private let uffd: Userfaultfd
    private let shared: PthreadLock<Shared>
    private let faultLogCapacity: Int
    private let stopPipe: (read: Int32, write: Int32)
    private let thread = PthreadLock<JoinableThread?>(nil)

    /// Features this backend cannot work without, for a region of `kind`.
    public static func requiredFeatures(for kind: GuestMemory.Kind) -> UserfaultfdFeatures {
        var required: UserfaultfdFeatures = [.pagefaultFlagWP, .wpUnpopulated]
        if kind.isSharedFile { required.insert(.wpHugetlbfsShmem) }
        return required
    }

    /// Opens the userfaultfd; `faultLogCapacity` bounds the fault records kept between ``takeFaults()`` calls
    /// (later faults are counted in ``droppedFaults`` instead).
    public init(memory: GuestMemory, faultLogCapacity: Int = 1 << 20) throws {
        self.memory = memory
        self.faultLogCapacity = faultLogCapacity
        uffd = try Userfaultfd(
            required: Self.requiredFeatures(for: memory.kind), optional: [.threadID], purpose: "the uffd-sync tracker")
        var fds: [Int32] = [0, 0]
        try Syscall.libc("pipe") { pipe(&fds) }
        stopPipe = (fds[0], fds[1])
        shared = PthreadLock(Shared(writtenBits: [UInt64](repeating: 0, count: (memory.pageCount + 63) / 64)))
    }

    deinit {
        try? stop()
        close(stopPipe.read)
        close(stopPipe.write)
    }

    public func start() throws {
        try shared.withLock { shared in
            guard !shared.running else { throw FGBIError.invalidState("uffd-sync tracker already started") }
            try uffd.registerAndProtect(address: memory.address, length: UInt64(memory.length))
            shared.running = true
        }
        let handler = try JoinableThread(name: "fgbi-uffd-fault") { [self] in faultLoop() }
        thread.withLock { $0 = handler }
    }

    public func collect(into set: inout DirtyPageSet) throws {
        set.removeAll()
        try shared.withLock { shared in
            guard shared.running else {
                throw FGBIError.invalidState("collect on a uffd-sync tracker that is not running")
            }
            if let error = shared.threadError { throw error }
            shared.writtenPages.sort()
            for page in shared.writtenPages {
                set.append(page)
                shared.writtenBits[page >> 6] &= ~(1 << UInt64(page & 63))
            }
            shared.writtenPages.removeAll(keepingCapacity: true)
            let pageSize = UInt64(GuestMemory.pageSize)
            for run in set.runs {
                try uffd.writeProtect(
                    address: memory.address + UInt64(run.start) * pageSize, length: UInt64(run.count) * pageSize)
            }
        }
    }

    /// Returns the faults recorded since the last call, oldest first, and forgets them.
    public func takeFaults() -> [FaultRecord] {
        shared.withLock { shared in
            defer { shared.faults.removeAll(keepingCapacity: true) }
            return shared.faults
        }
    }

    /// Faults not recorded because the log was full, since the tracker started.
    public var droppedFaults: Int { shared.withLock { $0.droppedFaults } }

    public func stop() throws {
        let wasRunning = shared.withLock { shared in
            defer { shared.running = false }
            return shared.running
        }
        guard wasRunning else { return }
        var byte: UInt8 = 1
        _ = write(stopPipe.write, &byte, 1)
        thread.withLock {
            $0?.join()
            $0 = nil
        }
        // Unregistering also wakes any writer still blocked on a protected page.
        try uffd.unregister(address: memory.address, length: UInt64(memory.length))
    }

    private func faultLoop() {
        var fds = [
            pollfd(fd: uffd.fileDescriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: stopPipe.read, events: Int16(POLLIN), revents: 0),
        ]
        let base = memory.address
        let pageSize = UInt64(GuestMemory.pageSize)
        while true {
            let ready = poll(&fds, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                record(SystemError(operation: "poll(userfaultfd)", errno: errno))
                return
            }
            if fds[1].revents != 0 { return }
            do {
                while let fault = try uffd.readFault() {
                    guard fault.isWriteProtect, fault.address >= base, fault.address < base + UInt64(memory.length)
                    else { continue }
                    let page = Int((fault.address - base) / pageSize)
                    let stamp = MonotonicClock.nanoseconds()
                    try shared.withLock { shared in
                        let (word, bit) = (page >> 6, UInt64(1) << UInt64(page & 63))
                        if shared.writtenBits[word] & bit == 0 {
                            shared.writtenBits[word] |= bit
                            shared.writtenPages.append(page)
                        }
                        if shared.faults.count < faultLogCapacity {
                            shared.faults.append(
                                FaultRecord(page: page, monotonicNanoseconds: stamp, threadID: fault.threadID))
                        } else {
                            shared.droppedFaults += 1
                        }
                        try uffd.unprotect(address: base + UInt64(page) * pageSize, length: pageSize)
                    }
                }
            } catch let error as SystemError {
                record(error)
                return
            } catch {
                return
            }
        }
    }

    /// Keeps the fault thread's first error for the next collection, and lifts write-protection from the
    /// whole region so no writer stays blocked on a fault nobody will read.
    private func record(_ error: SystemError) {
        shared.withLock { shared in
            if shared.threadError == nil { shared.threadError = error }
        }
        try? uffd.unprotect(address: memory.address, length: UInt64(memory.length))
    }
}
