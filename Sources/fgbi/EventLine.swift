import FGBI
import Foundation

/// Machine-readable event lines for drills (`--print-events`): one unbuffered write each, stamped with the
/// monotonic clock (shared by every process of the machine), so a harness can order events across processes.
enum EventLine {
    static func print(_ text: String) {
        let line = "event \(text) at \(MonotonicClock.nanoseconds())\n"
        line.utf8CString.withUnsafeBufferPointer { buffer in
            _ = write(STDOUT_FILENO, buffer.baseAddress, buffer.count - 1)
        }
    }
}
