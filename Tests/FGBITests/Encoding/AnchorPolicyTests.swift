import Testing

@testable import FGBI

/// The choice between looking up every block and anchors only, from what the anchors find.
@Suite("Anchor policy")
struct AnchorPolicyTests {
    /// One epoch of `blocks` consecutive blocks, every eighth an anchor; `copied(i)` says how block i was
    /// found: `nil` not a copy, `true` through the table, `false` continuing a run.
    private static func epoch(_ policy: inout AnchorPolicy, blocks: Int, copied: (Int) -> Bool?) {
        for block in 0..<blocks {
            let found = copied(block)
            policy.count(
                location: UInt64(block), anchor: block % 8 == 0, fromTable: found == true, continuesRun: found == false)
        }
        policy.endEpoch()
    }

    @Test func copiedRunsTurnAnchorsOnOnceAndIsolatedCopiesTurnThemOff() {
        var policy = AnchorPolicy()
        #expect(!policy.anchorsOnly, "an encoder starts looking up every block")
        // Whole copied pages: each anchor found in the table starts a run the next blocks continue.
        Self.epoch(&policy, blocks: 8192) { block in block % 8 == 0 ? true : false }
        #expect(policy.anchorsOnly)
        // Fresh content: nothing found anywhere; still anchors only.
        Self.epoch(&policy, blocks: 8192) { _ in nil }
        #expect(policy.anchorsOnly)
        // Isolated copies (one block in 64 equal to content elsewhere, no run): every block again.
        Self.epoch(&policy, blocks: 8192) { block in block % 64 == 0 ? true : nil }
        #expect(!policy.anchorsOnly)
        // A few isolated copies, between the two thresholds (one anchor in 128: about 0.68% of the blocks):
        // the choice stays, either way.
        Self.epoch(&policy, blocks: 8192) { block in block % 1024 == 0 ? true : nil }
        #expect(!policy.anchorsOnly)
        Self.epoch(&policy, blocks: 8192) { block in block % 8 == 0 ? true : false }
        #expect(policy.anchorsOnly)
        Self.epoch(&policy, blocks: 8192) { block in block % 1024 == 0 ? true : nil }
        #expect(policy.anchorsOnly)
    }

    @Test func tooFewAnchorsDecideNothing() {
        var policy = AnchorPolicy()
        Self.epoch(&policy, blocks: 8 * (AnchorPolicy.minimumAnchors - 1)) { _ in nil }
        #expect(!policy.anchorsOnly)
        Self.epoch(&policy, blocks: 8 * AnchorPolicy.minimumAnchors) { _ in nil }
        #expect(policy.anchorsOnly)
    }

    /// An anchor found in the table whose next block does not continue the run (a different distance, or
    /// not found) is an isolated copy; so is one that ends the epoch.
    @Test func aRunMustContinueAtTheNextBlock() {
        var policy = AnchorPolicy()
        Self.epoch(&policy, blocks: 8192) { block in block % 8 == 0 ? true : false }
        #expect(policy.anchorsOnly)
        // Every anchor found in the table, the block after it not a copy, the one after that "continuing"
        // (not at the next location): isolated.
        Self.epoch(&policy, blocks: 8192) { block in block % 8 == 0 ? true : block % 8 == 2 ? false : nil }
        #expect(!policy.anchorsOnly)
    }
}
