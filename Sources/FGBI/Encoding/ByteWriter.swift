/// An append-only byte buffer for building epoch deltas; keeps its storage across epochs.
struct ByteWriter {
    private(set) var bytes: [UInt8] = []

    init(reservingCapacity capacity: Int = 0) {
        bytes.reserveCapacity(capacity)
    }

    var count: Int { bytes.count }

    mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }

    @inline(__always)
    mutating func byte(_ value: UInt8) { bytes.append(value) }

    /// Unsigned LEB128.
    @inline(__always)
    mutating func uleb(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    @inline(__always)
    mutating func uleb(_ value: Int) { uleb(UInt64(value)) }

    mutating func littleEndian<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    @inline(__always)
    mutating func raw(_ source: UnsafeRawPointer, count: Int) {
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: source, count: count))
    }

    mutating func raw(_ source: [UInt8]) { bytes.append(contentsOf: source) }

    /// Grows the buffer by `count` bytes, lets `body` fill them and return how many it used, and keeps those.
    mutating func reserveAndFill(_ count: Int, _ body: (UnsafeMutableRawPointer) throws -> Int) rethrows {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: count))
        let used = try bytes.withUnsafeMutableBytes { try body($0.baseAddress! + start) }
        bytes.removeLast(count - used)
    }

    /// Overwrites a little-endian integer at `offset`.
    mutating func patch<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { source in
            for (i, byte) in source.enumerated() { bytes[offset + i] = byte }
        }
    }
}
