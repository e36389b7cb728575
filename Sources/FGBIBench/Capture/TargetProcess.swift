import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// Another process, seen through signals and /proc: what a capture stops, waits for and resumes.
public struct TargetProcess: Sendable, Hashable {
    public let pid: Int32

    public init(pid: Int32) {
        self.pid = pid
    }

    /// Throws ``CaptureError/noSuchProcess(_:)`` when no process has this id (or it is a zombie), and
    /// ``CaptureError/notPermitted(pid:_:)`` when it exists but this process may not signal it.
    public func checkExists() throws(CaptureError) {
        if kill(pid, 0) != 0 {
            let code = errno
            if code == ESRCH { throw .noSuchProcess(pid) }
            throw .notPermitted(
                pid: pid, SystemError(operation: "kill(\(pid), 0)", errno: code, hint: CaptureError.permissionHint))
        }
        if state() == "Z" { throw .noSuchProcess(pid) }
    }

    /// Sends `signal`; ESRCH becomes ``CaptureError/noSuchProcess(_:)``.
    public func send(_ signal: Int32, name: String) throws(CaptureError) {
        guard kill(pid, signal) != 0 else { return }
        let code = errno
        if code == ESRCH { throw .noSuchProcess(pid) }
        let error = SystemError(
            operation: "kill(\(pid), \(name))", errno: code, hint: code == EPERM ? CaptureError.permissionHint : "")
        throw code == EPERM ? .notPermitted(pid: pid, error) : .system(pid: pid, error)
    }

    /// The main thread's state letter from /proc/PID/stat (`R`, `S`, `D`, `T` stopped, `t` traced, `Z`), or
    /// nil when the process is gone.
    public func state() -> Character? {
        Self.state(ofStat: "/proc/\(pid)/stat")
    }

    /// Waits until every thread of the process is stopped (`T` or `t` in /proc/PID/task/TID/stat), polling
    /// for at most `timeoutNanoseconds`. Returns false on timeout (a thread in uninterruptible sleep stops
    /// only when it leaves it); throws ``CaptureError/noSuchProcess(_:)`` when the process is gone.
    public func waitUntilStopped(timeoutNanoseconds: UInt64) throws(CaptureError) -> Bool {
        let deadline = MonotonicClock.nanoseconds() + timeoutNanoseconds
        var pause: UInt64 = 20_000
        while true {
            let threads = self.threads()
            if threads.isEmpty { throw .noSuchProcess(pid) }
            var allStopped = true
            for thread in threads {
                let state = Self.state(ofStat: "/proc/\(pid)/task/\(thread)/stat")
                if state == "Z" && thread == pid { throw .noSuchProcess(pid) }
                if state != "T" && state != "t" && state != nil && state != "Z" {
                    allStopped = false
                    break
                }
            }
            if allStopped { return true }
            if MonotonicClock.nanoseconds() >= deadline { return false }
            MonotonicClock.sleep(nanoseconds: pause)
            pause = min(pause * 2, 1_000_000)
        }
    }

    /// The thread ids in /proc/PID/task (empty when the process is gone).
    public func threads() -> [Int32] {
        guard let directory = opendir("/proc/\(pid)/task") else { return [] }
        defer { closedir(directory) }
        var result: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if let tid = Int32(name) { result.append(tid) }
        }
        return result
    }

    /// The command line (arguments joined by spaces), or the short name from /proc/PID/comm when the
    /// command line is empty (a kernel thread) or unreadable.
    public func commandLine() -> String {
        if let bytes = try? KernelFile.read("/proc/\(pid)/cmdline"), !bytes.isEmpty {
            let words = bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return words.joined(separator: " ")
        }
        return commandName()
    }

    /// The short command name from /proc/PID/comm (`redis-server`), or an empty string.
    public func commandName() -> String {
        guard let bytes = try? KernelFile.read("/proc/\(pid)/comm") else { return "" }
        return String(decoding: bytes, as: UTF8.self).trimmingNewlines()
    }

    /// The state letter of one /proc stat file: the first field after the command name, which is in
    /// parentheses and may itself hold spaces and parentheses.
    static func state(ofStat path: String) -> Character? {
        guard let bytes = try? KernelFile.read(path), let close = bytes.lastIndex(of: UInt8(ascii: ")")),
            close + 2 < bytes.count
        else { return nil }
        return Character(UnicodeScalar(bytes[close + 2]))
    }

}

extension String {
    fileprivate func trimmingNewlines() -> String {
        var result = self
        while result.last == "\n" { result.removeLast() }
        return result
    }
}
