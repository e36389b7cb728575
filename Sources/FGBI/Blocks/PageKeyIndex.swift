import CSupport

/// Where whole pages' contents lie, found by a key of each page's block hashes: the pages a written page may be
/// a copy of (``PageCopyFinder``).
///
/// For every page of every region it keeps the key of the content it had when last captured (0: none known;
/// a key mixes the hashes of four of its blocks, ``key(ofHashes:count:)``),
/// and a table from key to page: buckets of eight 8-byte entries, one cache line each (the key's high 24 bits,
/// the page's version when the entry was made, the page's number across the regions), the newest entry first.
/// Each page has a one-byte version, bumped whenever its key is recorded or forgotten, so an entry whose page
/// has changed since (stale) is known without reading the page's key; a full bucket drops a stale entry
/// before its oldest, and lookups pass over stale entries. Without that, the entries of pages rewritten
/// since would push out those of pages left alone, and a page unwritten for a few dozen epochs of heavy
/// writing would no longer be found as a source.
/// An entry is only a lead: a lookup takes a page whose kept key is the key asked, that the current capture
/// does not hold, and the caller compares its bytes. Keys come from the block hashes the block tables already
/// hold (``key(ofHashes:count:)``), so keeping them costs no pass over the pages. About 6.3 MiB per GiB of
/// regions (the versions, 256 KiB of it, stay in the caches). Allocates only at creation; not thread-safe.
final class PageKeyIndex {
    /// The first page of each region in the numbering across regions.
    private let firstPages: [Int]
    private let pageCount: Int
    private let keys: UnsafeMutablePointer<UInt64>
    /// Per page, bumped (wrapping) whenever its key changes: entries made before are stale.
    private let versions: UnsafeMutablePointer<UInt8>
    /// One bit per page: held by the capture being encoded.
    private let captured: UnsafeMutablePointer<UInt64>
    private let table: UnsafeMutablePointer<UInt64>
    private let bucketMask: Int
    private static let bucketEntries = 8
    /// Keys recorded soon (``recordSoon(region:page:key:)``): a ring, and how many were added since the last
    /// flush.
    private let pending: UnsafeMutablePointer<(key: UInt64, number: Int)>
    private var pendingCount = 0
    private static let pendingCapacity = 8
    private static let empty = UInt64.max

    /// The most pages the numbering across regions can hold (entries keep 32 bits of it, one value meaning
    /// empty).
    static let maximumPages = Int(UInt32.max) - 1

    /// An index of the pages of regions of `regionPageCounts` pages, with every key unknown.
    init(regionPageCounts: [Int]) {
        var first = 0
        var firsts: [Int] = []
        for count in regionPageCounts {
            firsts.append(first)
            first += count
        }
        precondition(first <= Self.maximumPages, "a page-key index of \(first) pages")
        firstPages = firsts
        pageCount = first
        keys = HugePageMemory.allocate(UInt64.self, capacity: max(first, 1))
        keys.initialize(repeating: 0, count: max(first, 1))
        versions = .allocate(capacity: max(first, 1))
        versions.initialize(repeating: 0, count: max(first, 1))
        captured = .allocate(capacity: max((first + 63) / 64, 1))
        captured.initialize(repeating: 0, count: max((first + 63) / 64, 1))
        var buckets = 1
        while buckets * Self.bucketEntries < 2 * first { buckets <<= 1 }
        bucketMask = buckets - 1
        table = HugePageMemory.allocate(UInt64.self, capacity: buckets * Self.bucketEntries)
        table.initialize(repeating: Self.empty, count: buckets * Self.bucketEntries)
        pending = .allocate(capacity: Self.pendingCapacity)
        pending.initialize(repeating: (0, 0), count: Self.pendingCapacity)
    }

    deinit {
        keys.deallocate()
        versions.deallocate()
        captured.deallocate()
        table.deallocate()
        pending.deallocate()
    }

    /// Bytes held.
    var metadataBytes: Int {
        pageCount * 9 + (pageCount + 63) / 64 * 8 + (bucketMask + 1) * Self.bucketEntries * 8
    }

    /// The blocks of a page of `count` blocks whose hashes make its key: the first, the last, and two between.
    /// A key only leads to a page whose bytes are then compared, so four blocks' hashes are enough: a page that
    /// shares them with another but differs elsewhere costs a comparison that stops at the first difference.
    static func probes(count: Int) -> (Int, Int, Int, Int) { (0, count / 3, 2 * count / 3, count - 1) }

    /// The key of a page whose probe blocks (``probes(count:)``) hash to `a`, `b`, `c`, `d`: never 0.
    @inline(__always)
    static func key(_ a: UInt64, _ b: UInt64, _ c: UInt64, _ d: UInt64) -> UInt64 {
        var mixed = a &+ (b << 17 | b >> 47) &+ (c << 31 | c >> 33) &+ (d << 45 | d >> 19)
        mixed ^= mixed >> 33
        mixed &*= 0xff51_afd7_ed55_8ccd
        mixed ^= mixed >> 33
        mixed &*= 0xc4ce_b9fe_1a85_ec53
        mixed ^= mixed >> 33
        return mixed == 0 ? 1 : mixed
    }

    /// The key of a page whose blocks hash to `hashes` (`count` of them).
    @inline(__always)
    static func key(ofHashes hashes: UnsafePointer<UInt64>, count: Int) -> UInt64 {
        let (a, b, c, d) = probes(count: count)
        return key(hashes[a], hashes[b], hashes[c], hashes[d])
    }

    @inline(__always)
    private func number(region: Int, page: Int) -> Int { firstPages[region] + page }

    /// The table line (bucket) of `key`.
    @inline(__always)
    private func bucket(of key: UInt64) -> UnsafeMutablePointer<UInt64> {
        table + (Int(truncatingIfNeeded: key) & bucketMask) * Self.bucketEntries
    }

    /// ``record(region:page:key:)`` a few calls later, its two cache lines requested now: for a caller that
    /// records a key per page it reads (the staged reader), whose pages' lines would otherwise each be waited
    /// for. ``flush()`` records what is still pending; lookups see a key only once it is recorded.
    @inline(__always)
    func recordSoon(region: Int, page: Int, key: UInt64) {
        let number = number(region: region, page: page)
        CSupport_prefetch(bucket(of: key))
        CSupport_prefetch(keys + number)
        let slot = pendingCount & (Self.pendingCapacity - 1)
        if pendingCount >= Self.pendingCapacity { record(number: pending[slot].number, key: pending[slot].key) }
        pending[slot] = (key, number)
        pendingCount += 1
    }

    /// Records every key ``recordSoon(region:page:key:)`` left pending.
    func flush() {
        let first = max(pendingCount - Self.pendingCapacity, 0)
        for index in first..<pendingCount {
            let entry = pending[index & (Self.pendingCapacity - 1)]
            record(number: entry.number, key: entry.key)
        }
        pendingCount = 0
    }

    /// Records that `page` of `region` now holds content whose key is `key`.
    @inline(__always)
    func record(region: Int, page: Int, key: UInt64) { record(number: number(region: region, page: page), key: key) }

    @inline(__always)
    private func record(number: Int, key: UInt64) {
        keys[number] = key
        versions[number] &+= 1
        let bucket = bucket(of: key)
        let entry = Self.fingerprint(key) | UInt64(versions[number]) << 32 | UInt64(number) // see number(of:)
        // Drop an empty place or an older entry of this page, else the oldest stale entry, else the oldest; the
        // entries before it move down one.
        var last = -1
        for slot in 0..<Self.bucketEntries
        where Self.number(of: bucket[slot]) == number || bucket[slot] == Self.empty {
            last = slot
            break
        }
        if last < 0 {
            last = Self.bucketEntries - 1
            for slot in stride(from: Self.bucketEntries - 1, through: 0, by: -1) where isStale(bucket[slot]) {
                last = slot
                break
            }
        }
        var slot = last
        while slot > 0 {
            bucket[slot] = bucket[slot - 1]
            slot -= 1
        }
        bucket[0] = entry
    }

    /// Records that `page` of `region` holds content of no known key (zeros, never looked up).
    func forget(region: Int, page: Int) {
        let number = number(region: region, page: page)
        keys[number] = 0
        versions[number] &+= 1
    }

    /// The bits of `key` an entry keeps (its high 24), in their place.
    @inline(__always)
    private static func fingerprint(_ key: UInt64) -> UInt64 { (key >> 40) << 40 }

    /// The page (its number across regions) of `entry`: its low 32 bits, under the page's version (8 bits)
    /// and the key's ``fingerprint(_:)``.
    @inline(__always)
    private static func number(of entry: UInt64) -> Int { Int(entry & 0xFFFF_FFFF) }

    /// Whether `entry` (not empty) was made before its page's key last changed.
    @inline(__always)
    private func isStale(_ entry: UInt64) -> Bool {
        versions[Self.number(of: entry)] != UInt8(truncatingIfNeeded: entry >> 32)
    }

    /// A page, not held by the capture being encoded, whose content was last recorded with `key`.
    @inline(__always)
    func candidate(key: UInt64) -> (region: Int, page: Int)? {
        newest(key: key, current: true).map(place(of:))
    }

    /// Starts loading the table line a lookup of `key` reads.
    @inline(__always)
    func prefetchBucket(key: UInt64) { CSupport_prefetch(bucket(of: key)) }

    /// The number (across regions) of the newest page recorded with `key`'s high bits, not stale, that the
    /// capture being encoded does not hold, without reading its kept key: a lead for ``isCurrent(_:key:)`` to
    /// confirm once its line has loaded (``prefetchKey(of:)``), and for ``candidate(key:)`` to replace when it
    /// is not the page's key (another key with the same high bits).
    @inline(__always)
    func lead(key: UInt64) -> Int? { newest(key: key, current: false) }

    /// The newest entry of `key`'s bucket with its high bits, not stale, whose page the capture does not hold
    /// and, with `current`, whose kept key is `key`.
    @inline(__always)
    private func newest(key: UInt64, current: Bool) -> Int? {
        let bucket = bucket(of: key)
        for slot in 0..<Self.bucketEntries {
            let entry = bucket[slot]
            guard entry != Self.empty else { return nil }
            let number = Self.number(of: entry)
            guard Self.fingerprint(entry) == Self.fingerprint(key), !isStale(entry), !current || keys[number] == key,
                !isCaptured(number)
            else { continue }
            return number
        }
        return nil
    }

    /// Starts loading the kept key of page `number`.
    @inline(__always)
    func prefetchKey(of number: Int) { CSupport_prefetch(keys + number) }

    /// Starts loading the kept key of `page` of `region` (which a zero page's or a copy's record writes).
    @inline(__always)
    func prefetchKey(region: Int, page: Int) { CSupport_prefetch(keys + number(region: region, page: page)) }

    /// Whether page `number` (across regions) was last recorded with `key`.
    @inline(__always)
    func isCurrent(_ number: Int, key: UInt64) -> Bool { keys[number] == key }

    /// The (region, page) of a page's number across regions.
    func place(of number: Int) -> (region: Int, page: Int) {
        var region = firstPages.count - 1
        while firstPages[region] > number { region -= 1 }
        return (region, number - firstPages[region])
    }

    @inline(__always)
    private func isCaptured(_ number: Int) -> Bool { captured[number >> 6] & (1 << UInt64(number & 63)) != 0 }

    /// Marks (or, with `held` false, unmarks) `page` of `region` as held by the capture being encoded: no
    /// lookup answers with it.
    @inline(__always)
    func setCaptured(region: Int, page: Int, _ held: Bool) {
        let number = number(region: region, page: page)
        if held {
            captured[number >> 6] |= 1 << UInt64(number & 63)
        } else {
            captured[number >> 6] &= ~(1 << UInt64(number & 63))
        }
    }
}
