import ArgumentParser
import FGBI
import Foundation

/// `--config FILE` (or `FGBI_CONFIG=FILE`): options from a JSON file, one object per subcommand, keyed by the
/// subcommand's name ("primary", "backup", "demo", "bench sync", ...) and holding long option names without
/// the dashes:
///
///     {"primary": {"backup": "10.0.0.2:7070", "region-mib": 1024, "key-file": "/etc/fgbi/key", "encrypt": true},
///      "backup":  {"listen": "0.0.0.0:7070", "region-mib": 1024, "state-dir": "/var/lib/fgbi"}}
///
/// Strings and numbers become `--name=value`, `true` becomes `--name` (false: nothing), arrays become a
/// comma-separated value. The file's options go right after the subcommand's name, so anything on the
/// command line wins (the last occurrence of an option counts).
enum ConfigFile {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// One option's value in the file.
    enum Value: Decodable {
        case flag(Bool)
        case text(String)
        case list([String])

        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let flag = try? container.decode(Bool.self) {
                self = .flag(flag)
            } else if let integer = try? container.decode(Int.self) {
                self = .text(String(integer))
            } else if let number = try? container.decode(Double.self) {
                self = .text(String(number))
            } else if let text = try? container.decode(String.self) {
                self = .text(text)
            } else if let items = try? container.decode([Value].self) {
                self = .list(
                    try items.map {
                        guard case .text(let text) = $0 else {
                            throw DecodingError.dataCorruptedError(
                                in: container, debugDescription: "lists hold strings or numbers")
                        }
                        return text
                    })
            } else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "a value must be a string, number, boolean or list")
            }
        }
    }

    /// The arguments with the file's options spliced in, and `--config` removed.
    static func expand(_ arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> [String]
    {
        var arguments = arguments
        var path = environment["FGBI_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        if let index = arguments.firstIndex(where: { $0 == "--config" || $0.hasPrefix("--config=") }) {
            if arguments[index] == "--config" {
                guard index + 1 < arguments.count else { throw Failure(description: "--config needs a file name") }
                path = arguments[index + 1]
                arguments.removeSubrange(index...(index + 1))
            } else {
                path = String(arguments[index].dropFirst("--config=".count))
                arguments.remove(at: index)
            }
        }
        guard let path else { return arguments }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw Failure(description: "config file \(path): cannot read it (\(error.localizedDescription))")
        }
        do {
            // A config file can name the command run on failover: it must be as private as a key.
            try PrivateFile.check(path: path, what: "config file")
        } catch {
            throw Failure(description: "\(error)")
        }
        let root: [String: [String: Value]]
        do {
            root = try JSONDecoder().decode([String: [String: Value]].self, from: data)
        } catch {
            throw Failure(
                description: "config file \(path): expected {\"subcommand\": {\"option\": value, ...}, ...}: \(error)")
        }
        let command = arguments.prefix { !$0.hasPrefix("-") }
        guard !command.isEmpty, let options = root[command.joined(separator: " ")] ?? root[command.last!] else {
            return arguments
        }
        var inserted: [String] = []
        for key in options.keys.sorted() {
            let name = "--" + key
            switch options[key]! {
            // --name=value, so a value that starts with "-" is not taken for an option.
            case .flag(let on): if on { inserted.append(name) }
            case .text(let text): inserted.append("\(name)=\(text)")
            case .list(let items): inserted.append("\(name)=\(items.joined(separator: ","))")
            }
        }
        arguments.insert(contentsOf: inserted, at: command.count)
        return arguments
    }
}
