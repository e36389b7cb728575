/// A bounds-checked reader over an epoch delta: every read checks the remaining length first and throws
/// ``DeltaError`` instead of reading past the end.
struct ByteReader {
    let base: UnsafeRawPointer
    let count: Int
    private(set) var offset = 0

    init(_ buffer: UnsafeRawBufferPointer) {
        base = buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
        count = buffer.count
    }

    var remaining: Int { count - offset }
    var isAtEnd: Bool { offset == count }

    @inline(__always)
    mutating func byte(_ what: @autoclosure () -> String) throws(DeltaError) -> UInt8 {
        guard offset < count else { throw .truncated(what()) }
        defer { offset += 1 }
        return base.load(fromByteOffset: offset, as: UInt8.self)
    }

    /// Unsigned LEB128 of at most 10 bytes.
    @inline(__always)
    mutating func uleb(_ what: @autoclosure () -> String) throws(DeltaError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let next = try byte(what())
            guard shift < 64, shift < 63 || next <= 1 else { throw .malformed("\(what()): integer too long") }
            result |= UInt64(next & 0x7F) << shift
            if next & 0x80 == 0 { return result }
            shift += 7
        }
    }

    mutating func littleEndian<T: FixedWidthInteger>(_ type: T.Type, _ what: @autoclosure () -> String)
        throws(DeltaError) -> T
    {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw .truncated(what()) }
        defer { offset += size }
        return T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// The next `length` bytes, without copying.
    @inline(__always)
    mutating func bytes(_ length: Int, _ what: @autoclosure () -> String) throws(DeltaError) -> UnsafeRawPointer {
        guard length >= 0, remaining >= length else { throw .truncated(what()) }
        defer { offset += length }
        return base + offset
    }
}
