import FGBI

/// One guest of a primary that replicates several: `name=NAME,backup=HOST:PORT[,region-mib=N][,key-file=PATH]`
/// (`fgbi primary --guest`). The name is an identifier safe in paths and keys (`[A-Za-z0-9_-]{1,64}`).
public struct GuestSpecification: Sendable, Equatable {
    /// Names longer than this are refused.
    public static let maximumNameLength = 64

    public var name: String
    public var backup: Endpoint
    /// The guest's region size; nil takes the command's.
    public var regionMiB: Int?
    /// The guest's pre-shared key file; nil takes the command's (or none).
    public var keyFile: String?

    public init(name: String, backup: Endpoint, regionMiB: Int? = nil, keyFile: String? = nil) {
        self.name = name
        self.backup = backup
        self.regionMiB = regionMiB
        self.keyFile = keyFile
    }

    /// Whether `name` is 1 to 64 characters from A-Z, a-z, 0-9, `_` and `-`.
    public static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        return (1...maximumNameLength).contains(bytes.count)
            && bytes.allSatisfy { byte in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                    || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_")
                    || byte == UInt8(ascii: "-")
            }
    }

    /// Parses `name=NAME,backup=HOST:PORT[,region-mib=N][,key-file=PATH]` (in any order, each key once).
    ///
    /// - Throws: ``FGBIError/invalidArgument(_:)`` naming what is wrong.
    public static func parse(_ text: String) throws(FGBIError) -> GuestSpecification {
        var fields: [String: String] = [:]
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let equals = item.firstIndex(of: "="), equals != item.startIndex else {
                throw .invalidArgument("'\(item)' in guest '\(text)' is not KEY=VALUE")
            }
            let key = String(item[..<equals])
            let value = String(item[item.index(after: equals)...])
            guard ["name", "backup", "region-mib", "key-file"].contains(key) else {
                throw .invalidArgument(
                    "unknown key '\(key)' in guest '\(text)'; use name, backup, region-mib, key-file")
            }
            guard fields[key] == nil else { throw .invalidArgument("'\(key)' given twice in guest '\(text)'") }
            guard !value.isEmpty else { throw .invalidArgument("'\(key)' is empty in guest '\(text)'") }
            fields[key] = value
        }
        guard let name = fields["name"] else { throw .invalidArgument("guest '\(text)' has no name=") }
        guard isValidName(name) else {
            throw .invalidArgument(
                "guest name '\(name)' must be 1 to \(maximumNameLength) characters from A-Z, a-z, 0-9, '_' and '-'")
        }
        guard let backupText = fields["backup"] else {
            throw .invalidArgument("guest '\(name)' has no backup=HOST:PORT")
        }
        let backup: Endpoint
        do { backup = try Endpoint(parsing: backupText) } catch { throw .invalidArgument("guest '\(name)': \(error)") }
        var regionMiB: Int?
        if let text = fields["region-mib"] {
            guard let value = Int(text), (1...(1 << 20)).contains(value) else {
                throw .invalidArgument("guest '\(name)': region-mib must be between 1 and 1048576, not '\(text)'")
            }
            regionMiB = value
        }
        return GuestSpecification(name: name, backup: backup, regionMiB: regionMiB, keyFile: fields["key-file"])
    }

    /// Parses every guest and checks that names and backups are distinct.
    ///
    /// - Throws: ``FGBIError/invalidArgument(_:)`` for a bad guest, a name given twice or a backup shared.
    public static func parseAll(_ texts: [String]) throws(FGBIError) -> [GuestSpecification] {
        var guests: [GuestSpecification] = []
        for text in texts {
            let guest = try parse(text)
            if guests.contains(where: { $0.name == guest.name }) {
                throw .invalidArgument("guest name '\(guest.name)' is given twice")
            }
            if let other = guests.first(where: {
                $0.backup.description.lowercased() == guest.backup.description.lowercased()
            }) {
                throw .invalidArgument(
                    """
                    guests '\(other.name)' and '\(guest.name)' name the same backup \(guest.backup): each guest \
                    needs its own
                    """
                )
            }
            guests.append(guest)
        }
        return guests
    }
}
