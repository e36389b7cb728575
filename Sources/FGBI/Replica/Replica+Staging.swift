import CSupport

/// How `apply` stages a record's bytes before the commit: copies, zeros, differences and sparse blocks,
/// appended to the staging area with where in the regions each goes.
extension Replica {
    /// Stages a block given in sparse form: its mask of non-zero bytes, then those bytes.
    func stageSparse(_ reader: inout ByteReader, region: Int, offset: Int, length: Int, what: Place)
        throws(DeltaError)
    {
        let maskBytes = length / 8
        let mask = try reader.bytes(maskBytes, "\(what) sparse mask")
        var nonzero = 0
        for word in 0..<(maskBytes / 8) {
            nonzero +=
                UInt64(littleEndian: mask.loadUnaligned(fromByteOffset: 8 * word, as: UInt64.self))
                .nonzeroBitCount
        }
        for index in (maskBytes & ~7)..<maskBytes {
            nonzero += mask.load(fromByteOffset: index, as: UInt8.self).nonzeroBitCount
        }
        _ = try reader.bytes(nonzero, "\(what) sparse bytes")
        stage(region: region, offset: offset, length: length) { destination, _ in
            // Cannot fail: the mask's bits and the bytes read agree.
            _ = CSupport_sparse_decode(
                mask.assumingMemoryBound(to: UInt8.self), maskBytes + nonzero,
                destination.assumingMemoryBound(to: UInt8.self), length)
        }
    }

    /// Stages the replica's current bytes at (region, offset) with a run-length difference applied.
    func stageDiff(_ reader: inout ByteReader, region: Int, offset: Int, length: Int, what: Place)
        throws(DeltaError)
    {
        let encodedLength = try reader.uleb("\(what) difference length")
        guard encodedLength <= UInt64(reader.remaining) else { throw .truncated("\(what) difference") }
        let encoded = try reader.bytes(Int(encodedLength), "\(what) difference")
        let current = regions[region].base + offset
        var ok = true
        stage(region: region, offset: offset, length: length) { destination, _ in
            destination.copyMemory(from: current, byteCount: length)
            ok =
                CSupport_diff_decode(
                    encoded.assumingMemoryBound(to: UInt8.self), Int(encodedLength),
                    destination.assumingMemoryBound(to: UInt8.self), length) == 0
        }
        guard ok else { throw .malformed("\(what): difference runs past the end or is malformed") }
    }

    /// Stages `length` bytes copied from `source` for (region, offset).
    @inline(__always)
    func stageCopy(of source: UnsafeRawPointer, region: Int, offset: Int, length: Int) {
        stage(region: region, offset: offset, length: length) { destination, _ in
            destination.copyMemory(from: source, byteCount: length)
        }
    }

    /// Stages `length` zero bytes for (region, offset).
    @inline(__always)
    func stageZeros(region: Int, offset: Int, length: Int) {
        stage(region: region, offset: offset, length: length) { destination, _ in
            destination.initializeMemory(as: UInt8.self, repeating: 0, count: length)
        }
    }

    /// Appends `length` staged bytes for (region, offset), filled by `fill`, which also gets the start of the
    /// staging area (staged bytes move as the area grows: never keep a pointer into it). Bytes that continue
    /// the previous entry in both the region and the staging area extend it: the blocks of a page commit as
    /// one copy.
    @inline(__always)
    func stage(
        region: Int, offset: Int, length: Int, _ fill: (UnsafeMutableRawPointer, UnsafeRawPointer) -> Void
    ) {
        let stagingOffset = staging.count
        staging.append(upTo: length) { destination, start in
            fill(destination, start)
            return length
        }
        if let last = staged.indices.last, staged[last].region == region,
            staged[last].offset + staged[last].length == offset,
            staged[last].stagingOffset + staged[last].length == stagingOffset
        {
            staged[last].length += length
        } else {
            staged.append(Staged(region: region, offset: offset, length: length, stagingOffset: stagingOffset))
        }
    }
}
