import CSupport
import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// Copies another process's memory at a ``CaptureLayout`` into one contiguous image with process_vm_readv(2),
/// in batches of up to 1,024 ranges per call. What cannot be read (a range unmapped since the layout was
/// fixed) is written as zeros and counted, page by page, rather than failing the snapshot.
public struct ProcessMemoryReader: Sendable {
    public let pid: Int32
    public let layout: CaptureLayout

    /// Bytes per remote range of a batch: the unit a failed batch is retried in, page by page.
    static let chunkBytes = 256 << 10
    /// Ranges per call on each side: the kernel's IOV_MAX.
    static let batchLength = 1024

    /// One chunk of the layout: `length` bytes at `address` in the process, at `offset` in the image.
    private struct Chunk: Sendable {
        var address: UInt64
        var offset: Int
        var length: Int
    }
    private let chunks: [Chunk]

    public init(pid: Int32, layout: CaptureLayout) {
        self.pid = pid
        self.layout = layout
        var chunks: [Chunk] = []
        var offset = 0
        for region in layout.regions {
            var done = 0
            while done < region.length {
                let length = min(Self.chunkBytes, region.length - done)
                chunks.append(Chunk(address: region.start + UInt64(done), offset: offset + done, length: length))
                done += length
            }
            offset += region.length
        }
        self.chunks = chunks
    }

    /// Reads the whole layout into `image` (at least ``CaptureLayout/totalBytes`` long). Returns the bytes
    /// that could not be read and were zeroed. Throws ``CaptureError/noSuchProcess(_:)`` when the process is
    /// gone and ``CaptureError/notPermitted(pid:_:)`` without ptrace access to it.
    public func read(into image: UnsafeMutableRawBufferPointer) throws(CaptureError) -> Int {
        precondition(image.count >= layout.totalBytes, "image buffer smaller than the layout")
        var unread = 0
        var local = [iovec](repeating: iovec(), count: Self.batchLength)
        var remote = [iovec](repeating: iovec(), count: Self.batchLength)
        var index = 0
        while index < chunks.count {
            let batch = chunks[index..<min(index + Self.batchLength, chunks.count)]
            var wanted = 0
            for (slot, chunk) in batch.enumerated() {
                local[slot] = iovec(iov_base: image.baseAddress! + chunk.offset, iov_len: chunk.length)
                remote[slot] = iovec(
                    iov_base: UnsafeMutableRawPointer(bitPattern: UInt(chunk.address)), iov_len: chunk.length)
                wanted += chunk.length
            }
            var copied = try call(local: &local, remote: &remote, count: batch.count)
            if copied == wanted {
                index += batch.count
                continue
            }
            // Find the chunk the copy stopped in; redo its rest page by page, then go on after it.
            var failed = index
            while copied >= chunks[failed].length {
                copied -= chunks[failed].length
                failed += 1
            }
            unread += try readPages(
                of: chunks[failed], from: copied / GuestMemory.pageSize * GuestMemory.pageSize, into: image)
            index = failed + 1
        }
        return unread
    }

    /// Reads `chunk` from byte `start` one page per call, zeroing the pages that fail. Returns the bytes zeroed.
    private func readPages(of chunk: Chunk, from start: Int, into image: UnsafeMutableRawBufferPointer)
        throws(CaptureError) -> Int
    {
        let page = GuestMemory.pageSize
        var unread = 0
        var local = [iovec(iov_base: nil, iov_len: page)]
        var remote = [iovec(iov_base: nil, iov_len: page)]
        for offset in stride(from: start, to: chunk.length, by: page) {
            let length = min(page, chunk.length - offset)
            local[0] = iovec(iov_base: image.baseAddress! + chunk.offset + offset, iov_len: length)
            remote[0] = iovec(
                iov_base: UnsafeMutableRawPointer(bitPattern: UInt(chunk.address) + UInt(offset)), iov_len: length)
            if try call(local: &local, remote: &remote, count: 1) != length {
                (image.baseAddress! + chunk.offset + offset).initializeMemory(
                    as: UInt8.self, repeating: 0, count: length)
                unread += length
            }
        }
        return unread
    }

    /// One process_vm_readv. Returns the bytes copied; a range the kernel cannot read (EFAULT, EIO, ENOMEM)
    /// counts as 0 bytes copied, the caller then narrows it down.
    private func call(local: inout [iovec], remote: inout [iovec], count: Int) throws(CaptureError) -> Int {
        while true {
            let result = local.withUnsafeBufferPointer { local in
                remote.withUnsafeBufferPointer { remote in
                    CSupport_process_vm_readv(pid, local.baseAddress, UInt(count), remote.baseAddress, UInt(count))
                }
            }
            if result >= 0 { return result }
            let code = Int32(truncatingIfNeeded: -result)
            switch code {
            case EINTR: continue
            case EFAULT, EIO, ENOMEM: return 0
            case ESRCH: throw .noSuchProcess(pid)
            case EPERM, EACCES:
                throw .notPermitted(
                    pid: pid,
                    SystemError(operation: "process_vm_readv(\(pid))", errno: code, hint: CaptureError.permissionHint))
            default:
                throw .system(pid: pid, SystemError(operation: "process_vm_readv(\(pid))", errno: code))
            }
        }
    }
}
