/// Says which pages of a tracked region the guest has written since the tracker's last collection.
///
/// A page that no collection reported since the backup last received it holds, in the backup, what it held at
/// that collection. If it is still unwritten after the primary has read it, the primary read exactly what the
/// backup holds: the ground on which the encoder may send a page as a copy of another page, compared bitwise
/// with that page's live bytes (the `fgbi` encoder's page copies). A witness answers only while no later collection has
/// re-armed what it would have to look at.
package protocol WrittenPageWitness: AnyObject, Sendable {
    /// Collections made so far: a capture taken right after a collection records it.
    var collectionCount: Int { get }

    /// Calls `body` with every run (first page, page count) of pages in `pages` (page indices of the region)
    /// written since collection number `collection`, or that the witness cannot vouch for (pages it does not
    /// protect). Returns false, reporting nothing, when a later collection has been made: nothing can be
    /// vouched for then.
    ///
    /// - Throws: ``SystemError`` when the kernel refuses to say.
    func writtenRuns(in pages: Range<Int>, sinceCollection collection: Int, _ body: (Int, Int) -> Void) throws
        -> Bool
}
