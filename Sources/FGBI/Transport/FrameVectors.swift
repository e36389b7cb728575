#if canImport(Glibc)
    import Glibc
#endif

/// The iovec array and msghdr a frame write hands to sendmsg(2) or io_uring, allocated once per writer, and
/// the bookkeeping that resumes after a short send: what went out is dropped from the front, across pieces.
///
/// The storage has a stable address, so an io_uring operation may read it until its completion; the
/// writer changes it only between operations.
final class FrameVectors {
    /// The most pieces a frame has: header, payload, authentication code.
    static let capacity = 3

    /// The message to send: `msg_iov` and `msg_iovlen` cover the bytes not yet sent.
    let message: UnsafeMutablePointer<msghdr>
    private let vectors: UnsafeMutablePointer<iovec>
    private var first = 0
    private var count = 0
    /// Bytes not yet sent.
    private(set) var remaining = 0

    init() {
        message = .allocate(capacity: 1)
        message.initialize(to: msghdr())
        vectors = .allocate(capacity: Self.capacity)
        vectors.initialize(repeating: iovec(), count: Self.capacity)
    }

    deinit {
        message.deallocate()
        vectors.deallocate()
    }

    /// Whether every byte went out.
    var isEmpty: Bool { remaining == 0 }

    /// Starts a frame: its pieces in order; empty ones are left out.
    func load(_ header: UnsafeRawBufferPointer, _ payload: UnsafeRawBufferPointer, _ mac: UnsafeRawBufferPointer) {
        first = 0
        count = 0
        remaining = 0
        append(header)
        append(payload)
        append(mac)
        point()
    }

    private func append(_ piece: UnsafeRawBufferPointer) {
        guard let base = piece.baseAddress, piece.count > 0 else { return }
        vectors[count] = iovec(iov_base: UnsafeMutableRawPointer(mutating: base), iov_len: piece.count)
        count += 1
        remaining += piece.count
    }

    /// Drops the first `sent` bytes (what the kernel took): whole pieces, then the front of a partly sent one.
    func advance(by sent: Int) {
        precondition(sent >= 0 && sent <= remaining, "the kernel reported \(sent) bytes sent of \(remaining)")
        remaining -= sent
        var left = sent
        while left > 0 {
            let length = vectors[first].iov_len
            if left >= length {
                left -= length
                first += 1
            } else {
                vectors[first].iov_base += left
                vectors[first].iov_len -= left
                left = 0
            }
        }
        point()
    }

    private func point() {
        message.pointee.msg_iov = vectors + first
        message.pointee.msg_iovlen = count - first
    }
}
