/// Errors FGBI raises for reasons other than a failing system call (those are ``SystemError``).
public enum FGBIError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A caller passed a value FGBI cannot use; the message names the value and the rule it broke.
    case invalidArgument(String)
    /// The kernel lacks a feature the requested component needs.
    case unsupported(feature: String, neededBy: String, hint: String)
    /// A component was used in the wrong state (for example collecting from a stopped tracker).
    case invalidState(String)

    public var description: String {
        switch self {
        case .invalidArgument(let message):
            return "invalid argument: \(message)"
        case .unsupported(let feature, let neededBy, let hint):
            return "\(neededBy) needs \(feature), which this kernel does not offer: \(hint)"
        case .invalidState(let message):
            return "invalid state: \(message)"
        }
    }
}
