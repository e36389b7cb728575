import Foundation

/// Progress lines for long work, on standard error so they never mix with a table or JSON on standard output.
enum Progress {
    static func note(_ line: String) {
        FileHandle.standardError.write(Data("fgbi: \(line)\n".utf8))
    }
}
