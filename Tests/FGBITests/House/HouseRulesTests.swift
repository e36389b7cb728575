import Foundation
import Testing

/// The rules that keep the library readable for an embedder (Docs/ARCHITECTURE.md, "The package"), checked on
/// the sources themselves: a curated public surface, no lab code in the library, and files and functions of a
/// size a reader takes in.
@Suite("House rules")
struct HouseRulesTests {
    /// The package's root, found from this file's path.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// Every Swift file under `folder` (relative to the root), with its text.
    static func swiftFiles(under folder: String) throws -> [(path: String, text: String)] {
        let base = root.appendingPathComponent(folder)
        guard let walker = FileManager.default.enumerator(at: base, includingPropertiesForKeys: nil) else { return [] }
        var files: [(String, String)] = []
        for case let url as URL in walker where url.pathExtension == "swift" {
            let relative = String(url.path.dropFirst(root.path.count + 1))
            files.append((relative, try String(contentsOf: url, encoding: .utf8)))
        }
        return files.sorted { $0.0 < $1.0 }
    }

    /// The names of the library's public top-level types.
    static func publicTypes() throws -> [String] {
        let declaration = /^public (?:final )?(?:class|struct|enum|protocol|actor|typealias) ([A-Za-z_][A-Za-z0-9_]*)/
        return try swiftFiles(under: "Sources/FGBI").flatMap { file in
            file.text.split(separator: "\n").compactMap { line in
                (try? declaration.prefixMatch(in: line)).flatMap { $0.map { String($0.1) } }
            }
        }.sorted()
    }

    @Test func theLibraryExportsAtMost45TypesEachCuratedInTheCatalogue() throws {
        let types = try Self.publicTypes()
        let catalogue = try String(
            contentsOf: Self.root.appendingPathComponent("Sources/FGBI/FGBI.docc/FGBI.md"),
            encoding: .utf8)
        #expect(types.count >= 20, "the scan found the library's types: \(types)")
        #expect(types.count <= 45, "\(types.count) public top-level types: \(types)")
        for name in types {
            #expect(catalogue.contains("``\(name)``"), "\(name) is public but not curated in FGBI.md's topics")
        }
    }

    @Test func theLibraryHoldsNoLabCode() throws {
        let lab = ["fuzz", "netns", "network namespace", "svg", "send benchmark"]
        for file in try Self.swiftFiles(under: "Sources/FGBI") {
            let text = file.text.lowercased()
            for word in lab where text.contains(word) {
                Issue.record(
                    "\(file.path) mentions \"\(word)\": lab code belongs in FGBILab, FGBIBench or FGBIDiagnostics")
            }
        }
    }

    @Test func noSourceFileIsOver400LinesAndNoFunctionOver80() throws {
        let files = try Self.swiftFiles(under: "Sources")
        #expect(files.count > 100, "the scan found the sources")
        for file in files {
            let lines = file.text.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.count <= 401, "\(file.path): \(lines.count) lines")
            for function in Self.functionLengths(lines) where function.lines > 80 {
                Issue.record("\(file.path):\(function.line): a function of \(function.lines) lines")
            }
        }
    }

    @Test func theFunctionMeasureCountsFromDeclarationToClosingBrace() {
        let source = """
            struct S {
                /// { not counted }
                func f(_ a: Int,
                       b: String = "}") -> Int {
                    let s = "{"
                    return a // }
                }
                var x: Int { 1 }
            }
            """
        let lengths = Self.functionLengths(source.split(separator: "\n", omittingEmptySubsequences: false))
        #expect(lengths.map(\.lines) == [5])
        #expect(lengths.map(\.line) == [3])
    }

    /// Each function's (or initialiser's) first line (1-based) and length in lines, from its declaration to
    /// its closing brace; braces in string literals and comments are not counted.
    static func functionLengths(_ lines: [Substring]) -> [(line: Int, lines: Int)] {
        let modifiers = [
            "public", "package", "internal", "private", "fileprivate", "static", "class", "final", "override",
            "mutating", "nonisolated", "convenience", "required", "@inline\\(__always\\)", "@discardableResult",
        ].joined(separator: "|")
        let attributes = "(?:@[A-Za-z_]+(?:\\([^)]*\\))?\\s+)*"
        let declaration = try! Regex("^\\s*\(attributes)(?:(?:\(modifiers))\\s+)*(?:func\\s|init[?!]?[(<]|deinit\\b)")
        var found: [(line: Int, lines: Int)] = []
        for start in lines.indices where (try? declaration.prefixMatch(in: lines[start])) != nil {
            var depth = 0
            var opened = false
            var line = start
            scan: while line < lines.count {
                for character in Self.code(of: lines[line]) {
                    if character == "{" {
                        depth += 1
                        opened = true
                    }
                    if character == "}" { depth -= 1 }
                    if opened && depth == 0 { break scan }
                }
                // A declaration without a body (a protocol requirement) ends before any brace.
                if !opened && line > start + 8 { break }
                line += 1
            }
            if opened && line < lines.count { found.append((start + 1, line - start + 1)) }
        }
        return found
    }

    /// `line` without its string literals and its end-of-line comment.
    static func code(of line: Substring) -> String {
        var result = ""
        var inString = false
        var previous: Character = " "
        for character in line {
            if !inString && previous == "/" && character == "/" {
                result.removeLast()
                break
            }
            if character == "\"" && previous != "\\" {
                inString.toggle()
            } else if !inString {
                result.append(character)
            }
            previous = character
        }
        return result
    }
}
