import ArgumentParser
import Foundation

/// Comma-separated option values (`--modes fgbi,page`), each parsed by `parse`; any failure becomes a
/// validation error naming the option, so the CLI prints it with usage and exits non-zero.
enum CommaList {
    static func parse<T>(_ text: String, option: String, _ parse: (String) throws -> T) throws -> [T] {
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        guard !items.isEmpty, !items.contains(where: \.isEmpty) else {
            throw ValidationError("\(option): expected a comma-separated list, got '\(text)'")
        }
        do {
            return try items.map(parse)
        } catch let error as ValidationError {
            throw error
        } catch {
            throw ValidationError("\(option): \(error)")
        }
    }
}
