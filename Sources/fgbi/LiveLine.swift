import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A progress display on standard output: one line rewritten in place on a terminal, or a plain line every
/// `plainEvery` updates when standard output is a file or a pipe (logs stay readable).
struct LiveLine {
    let isTerminal = isatty(STDOUT_FILENO) == 1
    let plainEvery: Int
    private var updates = 0
    private var shown = false

    init(plainEvery: Int = 4) { self.plainEvery = plainEvery }

    mutating func update(_ text: String) {
        updates += 1
        if isTerminal {
            FileHandle.standardOutput.write(Data("\r\u{1B}[2K\(text)".utf8))
            shown = true
        } else if updates % plainEvery == 0 {
            print(text)
            fflush(nil)
        }
    }

    /// Ends the line in place, so what follows starts on a fresh line.
    mutating func finish() {
        if isTerminal && shown { FileHandle.standardOutput.write(Data("\n".utf8)) }
        shown = false
    }
}
