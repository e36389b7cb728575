/// ``FrameSendPath/bySize(uringMinimumPayloadBytes:)``: small frames through sendmsg(2), large ones through
/// io_uring, on the same socket (one frame at a time, so their bytes never interleave).
final class SizeSplitFrameWriter: FrameWriter, @unchecked Sendable { // one thread at a time (FrameWriter)
    let path: FrameSendPath
    private let small: SocketFrameWriter
    private let large: URingFrameWriter
    private let threshold: Int

    init(small: SocketFrameWriter, large: URingFrameWriter, threshold: Int) {
        self.small = small
        self.large = large
        self.threshold = threshold
        path = .bySize(uringMinimumPayloadBytes: threshold)
    }

    func write(header: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, mac: UnsafeRawBufferPointer)
        throws(SystemError)
    {
        if payload.count < threshold {
            try small.write(header: header, payload: payload, mac: mac)
        } else {
            try large.write(header: header, payload: payload, mac: mac)
        }
    }
}
