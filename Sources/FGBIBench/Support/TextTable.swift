/// A plain-text table with right-aligned numeric columns, as benchmarks print them.
public struct TextTable {
    public var headers: [String]
    public var rows: [[String]] = []

    public init(_ headers: [String]) {
        self.headers = headers
    }

    public mutating func add(_ row: [String]) {
        rows.append(row)
    }

    public var rendered: String {
        let widths = headers.indices.map { column in
            ([headers[column]] + rows.map { column < $0.count ? $0[column] : "" }).map(\.count).max() ?? 0
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: max(widths[column] - cell.count, 0))
                return column == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        let rule = widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
        return ([line(headers), rule] + rows.map(line)).joined(separator: "\n")
    }
}

/// Formats a number with `digits` decimals, or "-" for nil or NaN.
public func formatted(_ value: Double?, _ digits: Int = 2) -> String {
    guard let value, !value.isNaN else { return "-" }
    var text = String(Int((abs(value) * pow10(digits)).rounded()))
    while text.count <= digits { text = "0" + text }
    let integer = text.dropLast(digits)
    let fraction = text.suffix(digits)
    return (value < 0 ? "-" : "") + integer + (digits > 0 ? "." + fraction : "")
}

private func pow10(_ digits: Int) -> Double {
    (0..<digits).reduce(1.0) { value, _ in value * 10 }
}
