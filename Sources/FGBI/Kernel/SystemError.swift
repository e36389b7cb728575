import CSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A failed system call: the operation, the errno it returned, and what the operator can do about it.
///
/// Every failing syscall in FGBI surfaces as one of these, for example
/// `userfaultfd: EPERM (Operation not permitted): run as root or set vm.unprivileged_userfaultfd=1`.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The call or step that failed, as a user would search for it ("userfaultfd", "UFFDIO_REGISTER").
    public let operation: String
    /// The errno value.
    public let errno: Int32
    /// What to do about it, or an empty string when there is nothing better than the errno's text.
    public let hint: String

    public init(operation: String, errno: Int32, hint: String = "") {
        self.operation = operation
        self.errno = errno
        self.hint = hint
    }

    /// The errno's symbolic name, such as "EPERM".
    public var errnoName: String {
        if let name = CSupport_errno_name(errno) { return String(cString: name) }
        return "errno \(errno)"
    }

    /// The errno's name and text, such as "EPERM (Operation not permitted)".
    package var errnoText: String { "\(errnoName) (\(String(cString: strerror(errno))))" }

    public var description: String {
        hint.isEmpty ? "\(operation): \(errnoText)" : "\(operation): \(errnoText): \(hint)"
    }
}

/// The one place FGBI turns system-call results into errors.
///
/// Two conventions exist: libc calls return -1 and set `errno`; the C shim (like liburing) returns `-errno`.
/// Both retry on EINTR. `hint` maps an errno to advice for the operator.
package enum Syscall {
    /// Runs a libc call that returns -1 and sets errno on failure, retrying EINTR.
    @discardableResult
    package static func libc<T: BinaryInteger>(
        _ operation: @autoclosure () -> String,
        hint: (Int32) -> String = { _ in "" },
        _ body: () -> T
    ) throws(SystemError) -> T {
        try retrying(operation, hint: hint, body) { $0 == -1 ? Glibc.errno : nil }
    }

    /// Runs a shim call that returns a non-negative value or -errno, retrying EINTR.
    @discardableResult
    package static func shim<T: SignedInteger>(
        _ operation: @autoclosure () -> String,
        hint: (Int32) -> String = { _ in "" },
        _ body: () -> T
    ) throws(SystemError) -> T {
        try retrying(operation, hint: hint, body) { $0 >= 0 ? nil : Int32(truncatingIfNeeded: 0 - $0) }
    }

    /// Runs `body` until it succeeds or fails with another errno than EINTR: `failure` reads the errno of a
    /// failed result (nil: it succeeded), right after the call.
    private static func retrying<T>(
        _ operation: () -> String, hint: (Int32) -> String, _ body: () -> T, failure: (T) -> Int32?
    ) throws(SystemError) -> T {
        while true {
            let result = body()
            guard let code = failure(result) else { return result }
            if code == EINTR { continue }
            throw SystemError(operation: operation(), errno: code, hint: hint(code))
        }
    }
}
