/// An append-only byte buffer for building epoch deltas, backed by memory it owns and keeps across epochs
/// (no per-append allocation, no bounds checks beyond the capacity test).
struct ByteWriter: ~Copyable {
    private var storage: UnsafeMutableRawPointer
    private var capacity: Int
    private(set) var count = 0

    init(reservingCapacity capacity: Int = 4096) {
        self.capacity = max(capacity, 64)
        storage = .allocate(byteCount: self.capacity, alignment: 16)
    }

    deinit { storage.deallocate() }

    /// The bytes written so far; valid until the next mutation.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: storage, count: count) }

    /// A copy of the bytes written, as an array.
    var array: [UInt8] { Array(bytes) }

    mutating func removeAll() { count = 0 }

    /// Drops the bytes written after the first `length`.
    @inline(__always)
    mutating func truncate(to length: Int) {
        precondition(length >= 0 && length <= count, "truncating \(count) bytes to \(length)")
        count = length
    }

    @inline(__always)
    private mutating func ensure(_ extra: Int) {
        if count + extra > capacity { grow(count + extra) }
    }

    private mutating func grow(_ needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        replaceStorage(capacity: newCapacity)
    }

    private mutating func replaceStorage(capacity newCapacity: Int) {
        let bigger = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        bigger.copyMemory(from: storage, byteCount: count)
        storage.deallocate()
        storage = bigger
        capacity = newCapacity
    }

    /// Makes room for `total` bytes in all, and writes the room past the bytes written once now, so that
    /// appends up to `total` neither grow the buffer (a copy) nor touch fresh memory (a page fault each 4 KiB,
    /// about 0.4 GB/s here). For set-up, not for a timed path.
    mutating func reserve(faultedIn total: Int) {
        if total > capacity { replaceStorage(capacity: total) }
        (storage + count).initializeMemory(as: UInt8.self, repeating: 0, count: capacity - count)
    }

    @inline(__always)
    mutating func byte(_ value: UInt8) {
        ensure(1)
        storage.storeBytes(of: value, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    /// Unsigned LEB128.
    @inline(__always)
    mutating func uleb(_ value: UInt64) {
        ensure(10)
        var rest = value
        while rest >= 0x80 {
            storage.storeBytes(of: UInt8(truncatingIfNeeded: rest) | 0x80, toByteOffset: count, as: UInt8.self)
            count += 1
            rest >>= 7
        }
        storage.storeBytes(of: UInt8(rest), toByteOffset: count, as: UInt8.self)
        count += 1
    }

    @inline(__always)
    mutating func uleb(_ value: Int) { uleb(UInt64(value)) }

    mutating func littleEndian<T: FixedWidthInteger>(_ value: T) {
        ensure(MemoryLayout<T>.size)
        storage.storeBytes(of: value.littleEndian, toByteOffset: count, as: T.self)
        count += MemoryLayout<T>.size
    }

    @inline(__always)
    mutating func raw(_ source: UnsafeRawPointer, count length: Int) {
        ensure(length)
        (storage + count).copyMemory(from: source, byteCount: length)
        count += length
    }

    mutating func raw(_ source: [UInt8]) {
        source.withUnsafeBytes { raw($0.baseAddress!, count: $0.count) }
    }

    /// Lets `body` fill up to `length` bytes at the end and return how many it used, and keeps those.
    /// `body` also gets the start of the buffer (which moves as it grows: keep offsets, not pointers).
    @inline(__always)
    mutating func append(upTo length: Int, _ body: (UnsafeMutableRawPointer, UnsafeRawPointer) throws -> Int) rethrows {
        ensure(length)
        let used = try body(storage + count, UnsafeRawPointer(storage))
        precondition(used >= 0 && used <= length, "filled more than reserved")
        count += used
    }

    /// Makes room for `length` more bytes, counted as written, and returns where they start: the caller fills
    /// them (from several threads, each its own range) before the next mutation.
    mutating func extend(by length: Int) -> UnsafeMutableRawPointer {
        ensure(length)
        let start = storage + count
        count += length
        return start
    }

    /// Overwrites the bytes at `offset` with `bytes`.
    mutating func patch(bytes: [UInt8], at offset: Int) {
        precondition(offset >= 0 && offset + bytes.count <= count)
        bytes.withUnsafeBytes { (storage + offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    /// Overwrites a little-endian integer at `offset`.
    mutating func patch<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        precondition(offset + MemoryLayout<T>.size <= count)
        storage.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }
}
