import CSupport

/// An open-addressing map from 64-bit keys to 32-bit slot numbers: linear probing, backward-shift deletion,
/// fixed capacity. Keys must already be well mixed (content hashes are; locations are multiplied by an odd
/// constant first). Allocates only at creation.
final class SlotTable {
    private static let empty = UInt32.max
    private let keys: UnsafeMutablePointer<UInt64>
    private let values: UnsafeMutablePointer<UInt32>
    private let mask: Int
    private(set) var count = 0

    /// A table for up to `maximumCount` entries, kept at most half full.
    init(maximumCount: Int) {
        var capacity = 16
        while capacity < maximumCount * 2 { capacity <<= 1 }
        mask = capacity - 1
        keys = .allocate(capacity: capacity)
        keys.initialize(repeating: 0, count: capacity)
        values = .allocate(capacity: capacity)
        values.initialize(repeating: Self.empty, count: capacity)
    }

    deinit {
        keys.deallocate()
        values.deallocate()
    }

    /// Bytes this table holds.
    var metadataBytes: Int { (mask + 1) * (MemoryLayout<UInt64>.stride + MemoryLayout<UInt32>.stride) }

    @inline(__always)
    private func home(_ key: UInt64) -> Int { Int(truncatingIfNeeded: key ^ (key >> 29)) & mask }

    /// Starts loading the lines a lookup of `key` probes first.
    @inline(__always)
    func prefetch(_ key: UInt64) {
        let index = home(key)
        CSupport_prefetch(keys + index)
        CSupport_prefetch(values + index)
    }

    /// The slot stored for `key`, if any.
    @inline(__always)
    func find(_ key: UInt64) -> UInt32? {
        var index = home(key)
        while values[index] != Self.empty {
            if keys[index] == key { return values[index] }
            index = (index + 1) & mask
        }
        return nil
    }

    /// Stores `value` for `key`, replacing an existing value.
    func set(_ key: UInt64, _ value: UInt32) {
        precondition(value != Self.empty, "slot number reserved")
        var index = home(key)
        while values[index] != Self.empty {
            if keys[index] == key {
                values[index] = value
                return
            }
            index = (index + 1) & mask
        }
        precondition(count * 2 <= mask + 1, "SlotTable over capacity")
        keys[index] = key
        values[index] = value
        count += 1
    }

    /// Removes `key` if it maps to `value` (or to anything, when `value` is nil).
    func remove(_ key: UInt64, ifValue value: UInt32? = nil) {
        var index = home(key)
        while values[index] != Self.empty {
            if keys[index] == key {
                if let value, values[index] != value { return }
                deleteAt(index)
                return
            }
            index = (index + 1) & mask
        }
    }

    /// Backward-shift deletion: moves later entries of the probe run up so lookups need no tombstones.
    private func deleteAt(_ start: Int) {
        var hole = start
        var index = (start + 1) & mask
        while values[index] != Self.empty {
            let wanted = home(keys[index])
            // The entry at `index` may fill the hole if its home is not in (hole, index] cyclically.
            let distanceToHole = (index - hole) & mask
            let distanceToHome = (index - wanted) & mask
            if distanceToHome >= distanceToHole {
                keys[hole] = keys[index]
                values[hole] = values[index]
                hole = index
            }
            index = (index + 1) & mask
        }
        values[hole] = Self.empty
        count -= 1
    }
}
