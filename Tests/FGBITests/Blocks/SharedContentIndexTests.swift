import Testing

@testable import FGBI

/// The shared content index's rules, member by member: each guest matches only its own entries (its own
/// backup's locations), stored copies of equal content are kept once, and eviction or a member leaving
/// drops exactly the entries that used a copy.
@Suite("Shared content index")
struct SharedContentIndexTests {
    static func block(_ byte: UInt8) -> [UInt8] { [UInt8](repeating: byte, count: 64) }

    @Test func eachMemberMatchesOnlyItsOwnEntriesAndEqualContentIsStoredOnce() throws {
        let shared = try SharedContentIndex(blockSize: 64, budgetBytes: 64 * 8)
        let a = try shared.join(blocks: 1 << 20)
        let b = try shared.join(blocks: 1 << 20)
        let x = Self.block(1)
        let at5 = BlockLocation(region: 0, block: 5)
        let at9 = BlockLocation(region: 0, block: 9)
        x.withUnsafeBytes { x in
            a.exclusively {
                a.beginEpoch(0)
                a.add(hash: 100, at: at5, bytes: x.baseAddress!, ordinal: 0)
                a.beginEpoch(1)
                #expect(a.match(hash: 100, bytes: x.baseAddress!) == .copy(at5))
            }
            b.exclusively {
                b.beginEpoch(7)
                // A holds the content; B's backup does not: no reference for B.
                #expect(b.match(hash: 100, bytes: x.baseAddress!) == .none)
                #expect(b.takePrevious(at: at5, hash: 100) == nil, "A's entry is not B's to retire")
                b.add(hash: 100, at: at9, bytes: x.baseAddress!, ordinal: 4)
                #expect(b.match(hash: 100, bytes: x.baseAddress!) == .copyEpoch(4), "B's own epoch")
                b.beginEpoch(8)
                #expect(b.match(hash: 100, bytes: x.baseAddress!) == .copy(at9))
            }
        }
        var statistics = shared.statistics
        #expect(statistics.entries == 2 && statistics.storedCopies == 1 && statistics.attachments == 1)
        #expect(statistics.bytesSavedBySharing == 64)
        // A's location changes: A's entry goes, the copy stays for B.
        let previous = a.exclusively { a.takePrevious(at: at5, hash: 100) }
        #expect(previous.map { $0.load(as: UInt8.self) } == 1)
        x.withUnsafeBytes { x in
            #expect(a.exclusively { a.match(hash: 100, bytes: x.baseAddress!) } == .none)
            #expect(b.exclusively { b.match(hash: 100, bytes: x.baseAddress!) } == .copy(at9))
        }
        statistics = shared.statistics
        #expect(statistics.entries == 1 && statistics.storedCopies == 1)
        // B's goes too: the copy is freed.
        _ = b.exclusively { b.takePrevious(at: at9, hash: 100) }
        statistics = shared.statistics
        #expect(statistics.entries == 0 && statistics.storedCopies == 0 && statistics.members == 2)
    }

    @Test func aCollidingKeyIsNeverSharedAcrossMembers() throws {
        // One bit of key: hashes 2 and 4 share key 0, so different contents share a key.
        let shared = try SharedContentIndex(blockSize: 64, budgetBytes: 64 * 8, keying: .lowBits(1))
        let a = try shared.join(blocks: 1 << 20)
        let b = try shared.join(blocks: 1 << 20)
        let x = Self.block(1)
        let y = Self.block(2)
        let at1 = BlockLocation(region: 0, block: 1)
        let at2 = BlockLocation(region: 0, block: 2)
        x.withUnsafeBytes { x in
            y.withUnsafeBytes { y in
                a.exclusively {
                    a.beginEpoch(0)
                    a.add(hash: 2, at: at1, bytes: x.baseAddress!, ordinal: 0)
                }
                b.exclusively {
                    b.beginEpoch(0)
                    // Same key, other bytes: B stores its own copy.
                    b.add(hash: 4, at: at2, bytes: y.baseAddress!, ordinal: 0)
                    b.beginEpoch(1)
                    #expect(b.match(hash: 4, bytes: y.baseAddress!) == .copy(at2))
                    #expect(b.match(hash: 2, bytes: x.baseAddress!) == .collision)
                }
                a.exclusively {
                    a.beginEpoch(1)
                    #expect(a.match(hash: 4, bytes: y.baseAddress!) == .collision)
                    #expect(a.match(hash: 2, bytes: x.baseAddress!) == .copy(at1))
                }
            }
        }
        let statistics = shared.statistics
        #expect(statistics.storedCopies == 2 && statistics.attachments == 0)
    }

    @Test func evictionDropsEveryMembersEntryForTheCopy() throws {
        let shared = try SharedContentIndex(blockSize: 64, budgetBytes: 64 * 4)
        let members = try (0..<3).map { _ in try shared.join(blocks: 1 << 20) }
        let blocks = (0..<8).map { Self.block(UInt8($0 + 1)) }
        // Every member adds the same four contents: four copies, twelve entries.
        for (m, member) in members.enumerated() {
            member.exclusively {
                member.beginEpoch(0)
                for i in 0..<4 {
                    blocks[i].withUnsafeBytes {
                        member.add(
                            hash: UInt64(i + 1) << 20, at: BlockLocation(region: m, block: i), bytes: $0.baseAddress!,
                            ordinal: i)
                    }
                }
            }
        }
        var statistics = shared.statistics
        #expect(statistics.storedCopies == 4 && statistics.entries == 12 && statistics.bytesSavedBySharing == 8 * 64)
        // Member 0 adds two new contents: the two oldest copies go, with all three members' entries.
        members[0].exclusively {
            members[0].beginEpoch(1)
            for i in 4..<6 {
                blocks[i].withUnsafeBytes {
                    members[0].add(
                        hash: UInt64(i + 1) << 20, at: BlockLocation(region: 0, block: i), bytes: $0.baseAddress!,
                        ordinal: i)
                }
            }
        }
        statistics = shared.statistics
        #expect(statistics.evictions == 2 && statistics.entriesEvicted == 6)
        #expect(statistics.storedCopies == 4 && statistics.entries == 8)
        for (m, member) in members.enumerated() {
            member.exclusively {
                member.beginEpoch(2)
                for i in 0..<4 {
                    let expected: ContentIndex.Match = i < 2 ? .none : .copy(BlockLocation(region: m, block: i))
                    blocks[i].withUnsafeBytes {
                        #expect(
                            member.match(hash: UInt64(i + 1) << 20, bytes: $0.baseAddress!) == expected,
                            "member \(m) block \(i)")
                    }
                }
            }
        }
    }

    @Test func aMembersTableIsSizedForTheFewerOfItsBlocksAndTheCopies() throws {
        let shared = try SharedContentIndex(blockSize: 64, budgetBytes: 64 * 1000)
        #expect(try shared.join(blocks: 100).metadataBytes == 256 * 32)
        #expect(try shared.join(blocks: 1 << 30).metadataBytes == 2048 * 32)
    }

    @Test func aFreedSlotIsReusedBeforeAnythingIsEvicted() throws {
        let shared = try SharedContentIndex(blockSize: 64, budgetBytes: 64 * 4)
        let a = try shared.join(blocks: 1 << 20)
        a.exclusively {
            a.beginEpoch(0)
            for i in 0..<4 {
                Self.block(UInt8(i + 1)).withUnsafeBytes {
                    a.add(
                        hash: UInt64(i + 1) << 20, at: BlockLocation(region: 0, block: i), bytes: $0.baseAddress!,
                        ordinal: i)
                }
            }
            a.beginEpoch(1)
            // Block 2 changes: its old content's copy is freed, and the new content takes that slot.
            let previous = a.takePrevious(at: BlockLocation(region: 0, block: 2), hash: 3 << 20)
            #expect(previous.map { $0.load(as: UInt8.self) } == 3)
            Self.block(9).withUnsafeBytes {
                a.add(hash: 9 << 20, at: BlockLocation(region: 0, block: 2), bytes: $0.baseAddress!, ordinal: 0)
            }
            a.beginEpoch(2)
            for i in [0, 1, 3] {
                Self.block(UInt8(i + 1)).withUnsafeBytes {
                    #expect(
                        a.match(hash: UInt64(i + 1) << 20, bytes: $0.baseAddress!)
                            == .copy(BlockLocation(region: 0, block: i)))
                }
            }
        }
        #expect(shared.statistics.evictions == 0 && shared.statistics.storedCopies == 4)
    }

    @Test func aLeavingMemberFreesTheCopiesOnlyItUsed() throws {
        let shared = try SharedContentIndex(blockSize: 64, budgetBytes: 64 * 16)
        var a: SharedContentIndex.Member? = try shared.join(blocks: 1 << 20)
        let b = try shared.join(blocks: 1 << 20)
        for (member, contents) in [(a!, 0..<6), (b, 3..<8)] {
            member.exclusively {
                member.beginEpoch(0)
                for i in contents {
                    Self.block(UInt8(i + 1)).withUnsafeBytes {
                        member.add(
                            hash: UInt64(i + 1) << 20, at: BlockLocation(region: 0, block: i), bytes: $0.baseAddress!,
                            ordinal: i)
                    }
                }
            }
        }
        #expect(shared.statistics.storedCopies == 8 && shared.statistics.entries == 11)
        a = nil
        let statistics = shared.statistics
        #expect(statistics.members == 1 && statistics.storedCopies == 5 && statistics.entries == 5)
        // The freed copies no longer attract additions: a new member stores its own.
        let c = try shared.join(blocks: 1 << 20)
        c.exclusively {
            c.beginEpoch(0)
            Self.block(1).withUnsafeBytes {
                c.add(hash: 1 << 20, at: BlockLocation(region: 0, block: 0), bytes: $0.baseAddress!, ordinal: 0)
            }
        }
        #expect(shared.statistics.attachments == 3 && shared.statistics.storedCopies == 6)
    }

    @Test func aRandomHistoryMatchesAModel() throws {
        // Three members, few keys (forced collisions), a small budget: after every operation each member's
        // matches agree with a model of what its backup holds, and no copy is counted twice.
        let shared = try SharedContentIndex(blockSize: 64, budgetBytes: 64 * 24, keying: .lowBits(5))
        let members = try (0..<3).map { _ in try shared.join(blocks: 1 << 20) }
        // Per member: location -> content byte its backup holds, and the index entries the model expects may exist.
        var held = Array(repeating: [Int: UInt8](), count: 3)
        var random = SeededRandom(seed: 5)
        for epoch in UInt64(0)..<200 {
            for (m, member) in members.enumerated() {
                member.exclusively {
                    member.beginEpoch(epoch)
                    // A capture holds each block once: distinct locations within an epoch.
                    let start = Int(random.next() % 40)
                    for ordinal in 0..<8 {
                        let location = (start + ordinal * 7) % 40
                        let content = UInt8(random.next() % 30 + 1)
                        let bytes = Self.block(content)
                        let hash = UInt64(content) &* 0x9E37_79B9_7F4A_7C15
                        let old = held[m][location] ?? 0
                        bytes.withUnsafeBytes { raw in
                            let match = member.match(hash: hash, bytes: raw.baseAddress!)
                            if case .copy(let source) = match {
                                // A reference must name this member's own location holding exactly this content.
                                #expect(
                                    held[m][source.block] == content, "member \(m) referenced \(source) for \(content)")
                            }
                            let previous = member.takePrevious(
                                at: BlockLocation(region: 0, block: location),
                                hash: UInt64(old) &* 0x9E37_79B9_7F4A_7C15)
                            if let previous {
                                #expect(
                                    previous.load(as: UInt8.self) == old, "a difference base must be the old content")
                            }
                            if match == .none {
                                member.add(
                                    hash: hash, at: BlockLocation(region: 0, block: location), bytes: raw.baseAddress!,
                                    ordinal: ordinal)
                            }
                        }
                        held[m][location] = content
                    }
                }
            }
            let statistics = shared.statistics
            #expect(statistics.storedCopies <= 24 && statistics.entries >= statistics.storedCopies)
        }
        #expect(shared.statistics.evictions > 0 && shared.statistics.attachments > 0)
    }
}
