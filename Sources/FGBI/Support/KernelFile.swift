#if canImport(Glibc)
    import Glibc
#endif

/// Whole-file reads of the kernel's generated files (`/proc`, `/sys`), which report a size of 0 and hand
/// out their text one page per `read`: a reader must go on until `read` returns 0. Foundation's
/// `String(contentsOfFile:)` stops at the first short read on such files, so a long table such as
/// `/proc/net/tcp` comes back cut after its first page.
package enum KernelFile {
    /// Every byte of `path`, read until end of file.
    public static func read(_ path: String) throws(SystemError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError(operation: "open(\(path))", errno: errno) }
        defer { close(fd) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let got = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if got < 0 {
                if errno == EINTR { continue }
                throw SystemError(operation: "read(\(path))", errno: errno)
            }
            if got == 0 { return result }
            result.append(contentsOf: chunk[0..<got])
        }
    }

    /// The text of `path`, read until end of file (invalid UTF-8 replaced).
    public static func text(_ path: String) throws(SystemError) -> String {
        String(decoding: try read(path), as: UTF8.self)
    }
}
