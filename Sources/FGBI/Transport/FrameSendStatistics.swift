import Synchronization

/// What a connection's frame sends did since it opened: frames per send path and the io_uring work behind
/// them. A snapshot; read it from any thread with `FrameConnection.sendStatistics`.
package struct FrameSendStatistics: Sendable, Equatable {
    /// Frames written with sendmsg(2) (``FrameSendPath/socket``).
    public var socketFrames = 0
    /// Frames written with io_uring IORING_OP_SENDMSG.
    public var uringFrames = 0
    /// Frames written with io_uring IORING_OP_SENDMSG_ZC.
    public var zeroCopyFrames = 0
    /// io_uring submissions: one per frame, plus one for every resumed short send.
    public var uringSubmissions = 0
    /// Times the kernel took only part of what was offered and the rest was offered again (any path).
    public var shortSends = 0
    /// Zero-copy notifications received (one per zero-copy submission the kernel accepted).
    public var zeroCopyNotifications = 0
    /// Of those, the ones that said the kernel copied the data after all (loopback, veth, ...); 0 when the
    /// kernel cannot report it (before Linux 6.2).
    public var copiedNotifications = 0

    /// Frames written on any path.
    public var frames: Int { socketFrames + uringFrames + zeroCopyFrames }

    /// All counts zero.
    public init() {}
}

/// The live counters behind ``FrameSendStatistics``: the writer adds under the connection's send lock,
/// statistics readers take snapshots from any thread without waiting for a send in progress.
package final class FrameSendCounters: Sendable {
    let socketFrames = Atomic<Int>(0)
    let uringFrames = Atomic<Int>(0)
    let zeroCopyFrames = Atomic<Int>(0)
    let uringSubmissions = Atomic<Int>(0)
    let shortSends = Atomic<Int>(0)
    let zeroCopyNotifications = Atomic<Int>(0)
    let copiedNotifications = Atomic<Int>(0)

    package init() {}

    /// Adds one to `counter`.
    static func increment(_ counter: borrowing Atomic<Int>) {
        counter.wrappingAdd(1, ordering: .relaxed)
    }

    /// The counts now (each exact; together not one atomic instant).
    func snapshot() -> FrameSendStatistics {
        var statistics = FrameSendStatistics()
        statistics.socketFrames = socketFrames.load(ordering: .relaxed)
        statistics.uringFrames = uringFrames.load(ordering: .relaxed)
        statistics.zeroCopyFrames = zeroCopyFrames.load(ordering: .relaxed)
        statistics.uringSubmissions = uringSubmissions.load(ordering: .relaxed)
        statistics.shortSends = shortSends.load(ordering: .relaxed)
        statistics.zeroCopyNotifications = zeroCopyNotifications.load(ordering: .relaxed)
        statistics.copiedNotifications = copiedNotifications.load(ordering: .relaxed)
        return statistics
    }
}
