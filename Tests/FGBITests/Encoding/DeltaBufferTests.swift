import Testing

@testable import FGBI

/// The delta buffers' room made at set-up (``ByteWriter/reserve(faultedIn:)``,
/// ``EngineConfiguration/deltaBufferPages``): appends up to it never move the buffer (no copy into a larger one
/// in an encode), and a primary sizes it for its pre-copy step.
@Suite("Delta buffers")
struct DeltaBufferTests {
    @Test func reservedRoomKeepsTheBytesAndTheBufferInPlace() {
        var writer = ByteWriter(reservingCapacity: 64)
        writer.raw([1, 2, 3])
        writer.reserve(faultedIn: 1 << 20)
        #expect(Array(writer.bytes) == [1, 2, 3], "the bytes written before the reservation stay")
        let start = writer.bytes.baseAddress
        let block = [UInt8](repeating: 7, count: 4096)
        while writer.count + block.count <= 1 << 20 { writer.raw(block) }
        #expect(writer.bytes.baseAddress == start, "appends within the room never move the buffer")
        #expect(writer.bytes[3] == 7 && writer.bytes[writer.count - 1] == 7)
        // Past the room, the buffer grows as before.
        writer.raw(block)
        writer.raw(block)
        #expect(writer.count == 3 + 257 * 4096)
    }

    @Test func aPrimarySizesTheEngineBuffersForItsPrecopyStep() {
        var configuration = PrimaryConfiguration(backup: Endpoint(host: "127.0.0.1", port: 1))
        #expect(configuration.engineForSession.deltaBufferPages == 1024)
        configuration.precopy.chunkPages = 4096
        #expect(configuration.engineForSession.deltaBufferPages == 4096, "raised to the pre-copy step")
        configuration.engine.deltaBufferPages = 8192
        #expect(configuration.engineForSession.deltaBufferPages == 8192, "never lowered")
    }
}
