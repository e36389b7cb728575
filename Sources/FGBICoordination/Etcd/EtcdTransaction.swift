/// An etcd transaction: if every comparison holds, the `success` operations run, otherwise the `failure`
/// ones, atomically at one revision. The usual use is "create the key unless it exists, else tell me who
/// holds it":
///
///     let claim = EtcdTransaction(
///         compare: [.absent("/fgbi/leader")],
///         success: [.put(key: "/fgbi/leader", value: Array("node-a".utf8), lease: lease.id)],
///         failure: [.range(key: "/fgbi/leader")])
///     let result = try client.transaction(claim)
///     if !result.succeeded { print("held by", result.keyValues.first?.string ?? "?") }
public struct EtcdTransaction: Sendable, Equatable {
    public var compare: [EtcdCompare]
    public var success: [EtcdOperation]
    public var failure: [EtcdOperation]

    public init(compare: [EtcdCompare], success: [EtcdOperation], failure: [EtcdOperation] = []) {
        self.compare = compare
        self.success = success
        self.failure = failure
    }
}

/// One condition of a transaction: a key's revision, version or value compared with a given one. A key that
/// does not exist has create and mod revision 0, version 0 and no value (a value comparison on it fails).
public struct EtcdCompare: Sendable, Equatable {
    /// What of the key is compared, and with what.
    public enum Target: Sendable, Equatable {
        /// The revision that created the key (0: the key does not exist).
        case createRevision(Int64)
        /// The revision of the key's last write.
        case modRevision(Int64)
        /// The number of writes since the key was created.
        case version(Int64)
        /// The key's value.
        case value([UInt8])
        /// The lease the key is attached to (0: none).
        case lease(Int64)
    }

    /// How the key's side relates to the given one.
    public enum Result: String, Sendable, Equatable {
        case equal = "EQUAL"
        case greater = "GREATER"
        case less = "LESS"
        case notEqual = "NOT_EQUAL"
    }

    public var key: String
    public var target: Target
    public var result: Result

    /// Compares `key`'s `target` with the target's value: the key's side comes first, so
    /// `EtcdCompare(key: k, .modRevision(7), .less)` holds when k was last written before revision 7.
    public init(key: String, _ target: Target, _ result: Result = .equal) {
        self.key = key
        self.target = target
        self.result = result
    }

    /// Holds when `key` does not exist (its create revision is 0).
    public static func absent(_ key: String) -> EtcdCompare {
        EtcdCompare(key: key, .createRevision(0), .equal)
    }
}

/// One operation of a transaction.
public enum EtcdOperation: Sendable, Equatable {
    /// Writes `value` at `key`, attached to `lease` unless it is 0.
    case put(key: String, value: [UInt8], lease: Int64 = 0)
    /// Reads `key`; its key-value (if any) comes back in the result.
    case range(key: String)
    /// Deletes `key`.
    case delete(key: String)
}

/// What a transaction did: which branch ran, at which revision, and what each of its operations returned.
public struct EtcdTransactionResult: Sendable, Equatable {
    /// One operation's response, in the order of the branch that ran.
    public enum Response: Sendable, Equatable {
        case put
        /// The key-values a range operation read (empty when the key does not exist).
        case range([EtcdKeyValue])
        /// How many keys a delete operation removed.
        case delete(deleted: Int64)
    }

    /// Whether every comparison held, so the `success` operations ran (else the `failure` ones did).
    public var succeeded: Bool
    /// The cluster revision after the transaction (the revision of its writes, if it wrote).
    public var revision: Int64
    public var responses: [Response]

    public init(succeeded: Bool, revision: Int64, responses: [Response]) {
        self.succeeded = succeeded
        self.revision = revision
        self.responses = responses
    }

    /// The key-values every range operation read, in order.
    public var keyValues: [EtcdKeyValue] {
        responses.flatMap { response -> [EtcdKeyValue] in
            if case .range(let keyValues) = response { return keyValues }
            return []
        }
    }
}
