/// Why coordination through etcd refused or failed (failures to reach etcd are ``EtcdError``s).
public enum CoordinationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A cluster, guest or node name that cannot go into a key.
    case invalidName(String, String)
    /// Another node holds primaryship of the guest.
    case primaryHeld(guest: String, by: PrimaryRecord, secondsLeft: Int?)
    /// A key holds something this build cannot read.
    case malformedRecord(String, String)
    /// Acquiring kept losing races with other nodes.
    case contended(guest: String, attempts: Int)
    /// The guest's term is at the largest value a term can hold: no newer one can be granted.
    case termExhausted(String)

    public var description: String {
        switch self {
        case .invalidName(let what, let name):
            return "invalid \(what) name '\(name)': use 1-64 characters of A-Z, a-z, 0-9, '_' and '-'"
        case .primaryHeld(let guest, let record, let secondsLeft):
            let left = secondsLeft.map { ", its lease has \($0) s left" } ?? ""
            return "guest \(guest) already has a primary: node \(record.node), term \(record.term)\(left); "
                + "stop it, or wait for its lease to expire (--acquire-wait-s)"
        case .malformedRecord(let key, let value):
            return
                """
                etcd key \(key) holds '\(value)', which is not an FGBI record: another program uses this prefix \
                (--cluster)
                """
        case .termExhausted(let key):
            return "etcd key \(key) holds the largest possible term: no primary can be granted a newer one; "
                + "someone wrote it by hand or hostile: delete the guest's keys once no node serves it"
        case .contended(let guest, let attempts):
            return "guest \(guest): lost \(attempts) races for primaryship in a row to other nodes"
        }
    }
}
