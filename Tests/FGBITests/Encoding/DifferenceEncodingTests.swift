import CSupport
import FGBI
import Testing

/// The run-length difference encoder (CSupport/diff.c): the mask-based encoder gives exactly the bytes of
/// the byte-by-byte reference on every shape of change, including its refusals at the capacity limit, and
/// what it encodes decodes back.
@Suite("Run-length differences")
struct DifferenceEncodingTests {
    /// Inputs of one length: old content, and new content with runs of changes of random lengths.
    static func pair(length: Int, random: inout SeededRandom) -> (old: [UInt8], new: [UInt8]) {
        let old = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        var new = old
        var at = Int(random.next() % UInt64(length))
        let style = random.next() % 4
        while at < length {
            let run = style == 0 ? 1 : Int(random.next() % (style == 1 ? 8 : 200)) + 1
            for i in at..<min(at + run, length) {
                new[i] = style == 3 ? 0 : new[i] &+ UInt8(truncatingIfNeeded: random.next() | 1)
            }
            at += run + Int(random.next() % (style == 2 ? 300 : 12))
        }
        if style == 3 { for i in stride(from: 0, to: length, by: 8) { new[i] = 0 } } // words with zero bytes
        return (old, new)
    }

    static func encode(_ old: [UInt8]?, _ new: [UInt8], capacity: Int, bytewise: Bool) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: 2 * new.count + 64)
        let zeros = [UInt8](repeating: 0, count: new.count)
        let n = out.withUnsafeMutableBufferPointer { out in
            new.withUnsafeBufferPointer { new in
                (old ?? zeros).withUnsafeBufferPointer { old in
                    bytewise
                        ? CSupport_diff_encode_bytewise(
                            old.baseAddress, new.baseAddress, new.count, out.baseAddress, capacity)
                        : CSupport_diff_encode(old.baseAddress, new.baseAddress, new.count, out.baseAddress, capacity)
                }
            }
        }
        return n < 0 ? nil : Array(out[..<n])
    }

    static func sparse(_ bytes: [UInt8], capacity: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0xEE, count: capacity + 8)
        let n = out.withUnsafeMutableBufferPointer { out in
            bytes.withUnsafeBufferPointer {
                CSupport_sparse_encode($0.baseAddress, bytes.count, out.baseAddress, capacity)
            }
        }
        return n == 0 ? nil : Array(out[..<n])
    }

    static func unsparse(_ encoded: [UInt8], length: Int) -> [UInt8]? {
        var target = [UInt8](repeating: 0xEE, count: length)
        let rc = target.withUnsafeMutableBufferPointer { target in
            encoded.withUnsafeBufferPointer {
                CSupport_sparse_decode($0.baseAddress, encoded.count, target.baseAddress, length)
            }
        }
        return rc == 0 ? target : nil
    }

    static func decode(_ encoded: [UInt8], onto base: [UInt8]) -> [UInt8]? {
        var target = base
        let rc = target.withUnsafeMutableBufferPointer { target in
            encoded.withUnsafeBufferPointer {
                CSupport_diff_decode($0.baseAddress, encoded.count, target.baseAddress, target.count)
            }
        }
        return rc == 0 ? target : nil
    }

    @Test("the masked encoder equals the byte-by-byte one", arguments: [64, 128, 100, 4096, 4097])
    func maskedEqualsBytewise(length: Int) throws {
        var random = SeededRandom(seed: UInt64(length))
        for trial in 0..<400 {
            let (old, new) = Self.pair(length: length, random: &random)
            for capacity in [length - 4, length / 2, length / 8, 2 * length] {
                let masked = Self.encode(old, new, capacity: capacity, bytewise: false)
                let reference = Self.encode(old, new, capacity: capacity, bytewise: true)
                try #require(masked == reference, "length \(length), trial \(trial), capacity \(capacity)")
                if let masked { #expect(Self.decode(masked, onto: old) == new) }
            }
        }
    }

    @Test(
        "the sparse form is a mask and the non-zero bytes, and decodes back", arguments: [64, 128, 4096],
        SIMDLevels.available)
    func sparseFormRoundTrips(length: Int, level: Int32) throws {
        try SIMDLevels.at(level) {
            var random = SeededRandom(seed: 99 &+ UInt64(length))
            for trial in 0..<400 {
                let (_, bytes) = Self.pair(length: length, random: &random)
                let nonzero = bytes.filter { $0 != 0 }
                let encoded = Self.sparse(bytes, capacity: 2 * length)
                try #require(encoded?.count == length / 8 + nonzero.count, "trial \(trial)")
                let form = try #require(encoded)
                #expect(Array(form[(length / 8)...]) == nonzero)
                for index in 0..<length {
                    #expect(((form[index / 8] >> UInt8(index % 8)) & 1 == 1) == (bytes[index] != 0))
                }
                #expect(Self.unsparse(form, length: length) == bytes)
                #expect(Self.sparse(bytes, capacity: length / 8 + nonzero.count - 1) == nil || nonzero.isEmpty)
            }
            // Words of 36-bit values (three high bytes zero) shrink by a quarter; random bytes do not fit in a block.
            var words = [UInt8]()
            for _ in 0..<(length / 8) { withUnsafeBytes(of: (random.next() >> 28).littleEndian) { words += $0 } }
            let small = try #require(Self.sparse(words, capacity: length - 4))
            #expect(small.count <= length * 3 / 4)
            let noise = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next() | 1) }
            #expect(Self.sparse(noise, capacity: length - 4) == nil)
        }
    }

    /// What the encoders chose for a 64-byte block before the one-pass choice, from the separate encoders:
    /// a difference when it fits 60 bytes, unless sparse is allowed, the difference is over 9 bytes and
    /// the sparse form is no longer; else the sparse form when it fits 60 bytes; else the literal.
    static func separateChoice(base: [UInt8]?, bytes: [UInt8], allowSparse: Bool) -> [UInt8] {
        if let base, let difference = encode(base, bytes, capacity: 60, bytewise: true) {
            if allowSparse, difference.count > 9, let sparse = sparse(bytes, capacity: difference.count) {
                return [5] + sparse
            }
            return [1, UInt8(difference.count)] + difference
        }
        if allowSparse, let sparse = sparse(bytes, capacity: 60) { return [5] + sparse }
        return [0] + bytes
    }

    @Test(
        "the one-pass choice for a 64-byte block writes what the separate encoders chose",
        arguments: SIMDLevels.available)
    func blockChoiceEqualsSeparateEncoders(level: Int32) throws {
        try SIMDLevels.at(level) {
            var random = SeededRandom(seed: 64)
            var forms = Set<Int32>()
            for trial in 0..<3000 {
                var (base, bytes) = Self.pair(length: 64, random: &random)
                if trial % 5 == 0 { // words of small values: the sparse form competes
                    for word in 0..<8 where random.next() % 2 == 0 {
                        withUnsafeBytes(of: (random.next() >> UInt64(20 + trial % 40)).littleEndian) {
                            bytes.replaceSubrange(8 * word..<8 * word + 8, with: $0)
                        }
                    }
                }
                let withBase = trial % 3 != 0
                for allowSparse in [false, true] {
                    var out = [UInt8](repeating: 0xEE, count: 74)
                    var form: Int32 = -1
                    let written = out.withUnsafeMutableBufferPointer { out in
                        bytes.withUnsafeBufferPointer { bytes in
                            base.withUnsafeBufferPointer { base in
                                CSupport_block64_encode(
                                    withBase ? base.baseAddress : nil, bytes.baseAddress, allowSparse ? 1 : 0,
                                    1, 5, 0, out.baseAddress, &form)
                            }
                        }
                    }
                    let expected = Self.separateChoice(
                        base: withBase ? base : nil, bytes: bytes, allowSparse: allowSparse)
                    try #require(
                        Array(out[..<written]) == expected, "trial \(trial), base \(withBase), sparse \(allowSparse)")
                    #expect(form == [0: 0, 1: 1, 5: 2][expected[0]])
                    forms.insert(form)
                }
            }
            #expect(forms == [0, 1, 2], "every form was chosen at least once")
        }
    }

    @Test func aMalformedSparseFormIsRefused() {
        let block = [UInt8](repeating: 7, count: 64)
        let form = Self.sparse(block, capacity: 100)!
        #expect(Self.unsparse(Array(form.dropLast()), length: 64) == nil, "fewer bytes than bits")
        #expect(Self.unsparse(form + [1], length: 64) == nil, "more bytes than bits")
        #expect(Self.unsparse(form, length: 63) == nil, "not a multiple of 64 bytes")
    }
}
