/// The gRPC status codes etcd's gateway reports in an error's `code` field.
public enum GRPCStatus {
    public static let cancelled = 1
    public static let unknown = 2
    public static let invalidArgument = 3
    public static let deadlineExceeded = 4
    public static let notFound = 5
    public static let alreadyExists = 6
    public static let permissionDenied = 7
    public static let resourceExhausted = 8
    public static let failedPrecondition = 9
    public static let aborted = 10
    public static let outOfRange = 11
    public static let unimplemented = 12
    public static let `internal` = 13
    public static let unavailable = 14
    public static let dataLoss = 15
    public static let unauthenticated = 16

    /// The code's name as gRPC spells it ("NotFound"), or "code N" for one it does not define.
    public static func name(_ code: Int) -> String {
        let names = [
            "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
            "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
            "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
        ]
        return names.indices.contains(code) ? names[code] : "code \(code)"
    }
}
