import CSupport

/// Wraps an encoded body into an epoch delta: header, the body through the general compressor, checksum.
struct DeltaAssembler {
    let mode: ReplicationMode
    let compression: Compression
    let geometry: BlockGeometry
    let regionCount: Int

    /// Writes the delta for `body` into `output` (replacing its content); returns nanoseconds spent compressing.
    func assemble(epoch: UInt64, records: Int, body: UnsafeRawBufferPointer, into output: inout ByteWriter) throws -> UInt64 {
        output.removeAll()
        output.raw(DeltaFormat.magic)
        output.littleEndian(DeltaFormat.version)
        output.byte(mode.wireCode)
        output.byte(compression.wireCode)
        output.littleEndian(UInt32(geometry.blockSize))
        output.littleEndian(UInt32(geometry.pageSize))
        output.littleEndian(epoch)
        output.littleEndian(UInt32(regionCount))
        output.littleEndian(UInt32(records))
        output.littleEndian(UInt64(body.count))
        let storedLengthOffset = output.count
        output.littleEndian(UInt64(0))
        let start = MonotonicClock.nanoseconds()
        var stored = 0
        let capacity = compression.bound(body.count)
        try output.append(upTo: capacity) { destination, _ in
            stored = try compression.compress(body, into: destination, capacity: capacity)
            return stored
        }
        let elapsed = MonotonicClock.nanoseconds() - start
        output.patch(UInt64(stored), at: storedLengthOffset)
        let checksum = CSupport_xxh3_64(output.bytes.baseAddress, output.count)
        output.littleEndian(checksum)
        return elapsed
    }
}
