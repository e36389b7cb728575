import CSupport

/// The fixed part of an epoch delta, read and checked before anything else (see ``DeltaFormat``).
struct DeltaHeader: Equatable {
    var version: UInt16
    var mode: ReplicationMode
    var compressionCode: UInt8
    var blockSize: Int
    var pageSize: Int
    var epoch: UInt64
    var regionCount: Int
    var recordCount: Int
    var bodyLength: Int
    var storedLength: Int

    /// Reads the header and verifies the checksum over the whole delta; the stored body is what lies
    /// between the header and the checksum.
    static func read(_ delta: UnsafeRawBufferPointer) throws(DeltaError) -> DeltaHeader {
        guard delta.count >= DeltaFormat.headerLength + DeltaFormat.checksumLength else {
            throw .truncated("\(delta.count) bytes is shorter than a header and checksum")
        }
        var reader = ByteReader(delta)
        let magic = try reader.bytes(4, "magic")
        guard UnsafeRawBufferPointer(start: magic, count: 4).elementsEqual(DeltaFormat.magic) else { throw .badMagic }
        let version = try reader.littleEndian(UInt16.self, "version")
        guard DeltaFormat.readableVersions.contains(version) else { throw .unsupportedVersion(version) }
        let checksumOffset = delta.count - DeltaFormat.checksumLength
        let expected = UInt64(littleEndian: delta.loadUnaligned(fromByteOffset: checksumOffset, as: UInt64.self))
        guard CSupport_xxh3_64(delta.baseAddress, checksumOffset) == expected else { throw .checksumMismatch }

        let modeCode = try reader.byte("mode")
        guard let mode = ReplicationMode(wireCode: modeCode) else { throw .malformed("unknown mode \(modeCode)") }
        let compressionCode = try reader.byte("compression")
        guard compressionCode <= 2 else { throw .malformed("unknown compression \(compressionCode)") }
        let blockSize = Int(try reader.littleEndian(UInt32.self, "block size"))
        let pageSize = Int(try reader.littleEndian(UInt32.self, "page size"))
        let epoch = try reader.littleEndian(UInt64.self, "epoch")
        let regionCount = Int(try reader.littleEndian(UInt32.self, "region count"))
        let recordCount = Int(try reader.littleEndian(UInt32.self, "record count"))
        let bodyLength = try reader.littleEndian(UInt64.self, "body length")
        let storedLength = try reader.littleEndian(UInt64.self, "stored length")
        guard storedLength == UInt64(checksumOffset - DeltaFormat.headerLength) else {
            throw .malformed(
                """
                stored length \(storedLength) does not match the \(checksumOffset - DeltaFormat.headerLength) \
                bytes present
                """
            )
        }
        guard bodyLength <= UInt64(Int.max / 2) else { throw .malformed("body length \(bodyLength) is absurd") }
        return DeltaHeader(
            version: version, mode: mode, compressionCode: compressionCode, blockSize: blockSize, pageSize: pageSize,
            epoch: epoch, regionCount: regionCount, recordCount: recordCount,
            bodyLength: Int(bodyLength), storedLength: Int(storedLength))
    }
}
