import FGBI
import Foundation

/// Draws a ``TraceHeatmap`` as a self-contained SVG picture a browser shows as is: epochs left to right,
/// addresses top to bottom (offset 0 at the top), each cell coloured by the mean changed blocks per page of
/// its address bucket in that epoch, on a logarithmic viridis scale; cells with no change are light grey.
/// A title, axis labels with ticks and a colour legend frame the cells.
///
/// Every cell is one `<rect class="cell ...">`, so a picture of E epochs and R rows holds exactly E x R of
/// them (``cellCount``).
public struct HeatmapSVG: Sendable {
    /// The picture's size in pixels.
    public static let width = 1200
    public static let height = 800
    /// Distinct colours on the scale.
    public static let levels = 64

    /// The data.
    public var heatmap: TraceHeatmap
    /// The title line, and a second line under it.
    public var title: String
    public var subtitle: String

    public init(heatmap: TraceHeatmap, title: String, subtitle: String? = nil) {
        self.heatmap = heatmap
        self.title = title
        let rowBytes = heatmap.pagesPerRow * GuestMemory.pageSize
        self.subtitle =
            subtitle ?? "colour: changed \(heatmap.blockSize)-byte blocks per page, mean over each row of "
            + "\(heatmap.pagesPerRow) pages (\(Self.byteText(rowBytes))), log scale; grey: no change"
    }

    /// The number of cells drawn: epochs times rows.
    public var cellCount: Int { heatmap.epochs * heatmap.rows }

    // Layout: plot area inside the margins, legend to its right.
    private let left = 100.0, top = 70.0, right = 190.0, bottom = 70.0
    private var plotWidth: Double { Double(Self.width) - left - right }
    private var plotHeight: Double { Double(Self.height) - top - bottom }

    /// The SVG document.
    public func render() -> String {
        let scale = ColourScale(heatmap: heatmap)
        var svg = """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Self.width)" height="\(Self.height)" \
            viewBox="0 0 \(Self.width) \(Self.height)" font-family="sans-serif" font-size="13">

            """
        svg += "<style>\n.zero{fill:#e6e6e6}\n"
        for level in 0..<Self.levels {
            svg += ".c\(level){fill:\(Self.colour(Double(level) / Double(Self.levels - 1)))}\n"
        }
        svg += "</style>\n"
        svg += "<rect width=\"\(Self.width)\" height=\"\(Self.height)\" fill=\"#ffffff\"/>\n"
        svg += text(x: Double(Self.width) / 2, y: 28, title, anchor: "middle", size: 18, weight: "bold")
        svg += text(x: Double(Self.width) / 2, y: 50, subtitle, anchor: "middle", size: 13)
        svg += cells(scale)
        svg += axes()
        svg += legend(scale)
        svg += "</svg>\n"
        return svg
    }

    private func cells(_ scale: ColourScale) -> String {
        guard heatmap.epochs > 0 else {
            return text(
                x: left + plotWidth / 2, y: top + plotHeight / 2, "no epochs traced", anchor: "middle", size: 16)
        }
        let sx = plotWidth / Double(heatmap.epochs)
        let sy = plotHeight / Double(heatmap.rows)
        var out =
            """
            <g transform=\"translate(\(f(left)),\(f(top))) scale(\(f(sx, 6)),\(f(sy, 6)))\" \
            shape-rendering=\"crispEdges\">\n
            """
        out.reserveCapacity(cellCount * 52)
        for epoch in 0..<heatmap.epochs {
            for row in 0..<heatmap.rows {
                let level = scale.level(heatmap.mean(epoch: epoch, row: row))
                out +=
                    """
                    <rect class=\"cell \(level.map { "c\($0)" } ?? "zero")\" x=\"\(epoch)\" y=\"\(row)\" \
                    width=\"1\" height=\"1\"/>\n
                    """
            }
        }
        return out + "</g>\n"
    }

    private func axes() -> String {
        var out =
            """
            <rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotWidth))\" height=\"\(f(plotHeight))\" \
            fill=\"none\" stroke=\"#333\"/>\n
            """
        let bottomY = top + plotHeight
        // x: epochs, ticks at the centres of their columns
        if heatmap.epochs > 0 {
            let step = Self.niceStep(Double(heatmap.epochs), ticks: 10)
            var epoch = 1
            while epoch <= heatmap.epochs {
                let x = left + (Double(epoch) - 0.5) * plotWidth / Double(heatmap.epochs)
                out +=
                    """
                    <line x1=\"\(f(x))\" y1=\"\(f(bottomY))\" x2=\"\(f(x))\" y2=\"\(f(bottomY + 5))\" \
                    stroke=\"#333\"/>\n
                    """
                out += text(x: x, y: bottomY + 20, String(epoch), anchor: "middle")
                epoch = epoch == 1 && step > 1 ? Int(step) : epoch + Int(step)
            }
        }
        out += text(x: left + plotWidth / 2, y: bottomY + 45, "epoch", anchor: "middle", size: 14)
        // y: address offsets, 0 at the top; the rows cover rows x pagesPerRow pages
        let coveredBytes = Double(heatmap.rows * heatmap.pagesPerRow * GuestMemory.pageSize)
        let regionBytes = Double(heatmap.pageCount * GuestMemory.pageSize)
        let (unit, unitName) =
            regionBytes >= Double(1 << 30) * 4
            ? (Double(1 << 30), "GiB")
            : regionBytes >= Double(1 << 20) * 4 ? (Double(1 << 20), "MiB") : (1024.0, "KiB")
        let step = Self.niceStep(regionBytes / unit, ticks: 8)
        var value = 0.0
        while value <= regionBytes / unit + 1e-9 {
            let y = top + value * unit / coveredBytes * plotHeight
            out += "<line x1=\"\(f(left - 5))\" y1=\"\(f(y))\" x2=\"\(f(left))\" y2=\"\(f(y))\" stroke=\"#333\"/>\n"
            out += text(x: left - 8, y: y + 4, Self.number(value) + " " + unitName, anchor: "end")
            value += step
        }
        out +=
            "<text x=\"24\" y=\"\(f(top + plotHeight / 2))\" text-anchor=\"middle\" font-size=\"14\" "
            + "transform=\"rotate(-90 24 \(f(top + plotHeight / 2)))\">address (offset in the region)</text>\n"
        return out
    }

    private func legend(_ scale: ColourScale) -> String {
        let x = left + plotWidth + 40
        let barWidth = 22.0
        let barTop = top + 30
        let barHeight = plotHeight - 120
        var out = text(x: x - 10, y: top + 8, "changed blocks", anchor: "start", size: 13, weight: "bold")
        out += text(x: x - 10, y: top + 24, "per page (of \(heatmap.blocksPerPage))", anchor: "start", size: 12)
        guard let range = scale.range else {
            out += text(x: x - 10, y: barTop + 20, "no change in any epoch", anchor: "start", size: 12)
            return out + zeroSwatch(x: x, y: barTop + 40, barWidth: barWidth)
        }
        // the bar: highest value at the top
        let step = barHeight / Double(Self.levels)
        for level in 0..<Self.levels {
            let y = barTop + barHeight - Double(level + 1) * step
            out +=
                """
                <rect class=\"c\(level)\" x=\"\(f(x))\" y=\"\(f(y))\" width=\"\(f(barWidth))\" \
                height=\"\(f(step + 0.5))\"/>\n
                """
        }
        out +=
            """
            <rect x=\"\(f(x))\" y=\"\(f(barTop))\" width=\"\(f(barWidth))\" height=\"\(f(barHeight))\" \
            fill=\"none\" stroke=\"#333\"/>\n
            """
        for value in scale.tickValues() {
            let t = scale.position(value)
            let y = barTop + barHeight - t * barHeight
            out +=
                """
                <line x1=\"\(f(x + barWidth))\" y1=\"\(f(y))\" x2=\"\(f(x + barWidth + 5))\" y2=\"\(f(y))\" \
                stroke=\"#333\"/>\n
                """
            out += text(x: x + barWidth + 8, y: y + 4, Self.number(value), anchor: "start", size: 12)
        }
        out += text(
            x: x - 10, y: barTop + barHeight + 20,
            "min \(Self.number(range.lowerBound)), max \(Self.number(range.upperBound))",
            anchor: "start", size: 11)
        return out + zeroSwatch(x: x, y: barTop + barHeight + 36, barWidth: barWidth)
    }

    private func zeroSwatch(x: Double, y: Double, barWidth: Double) -> String {
        "<rect class=\"zero\" x=\"\(f(x))\" y=\"\(f(y))\" width=\"\(f(barWidth))\" height=\"14\" stroke=\"#333\"/>\n"
            + text(x: x + barWidth + 8, y: y + 12, "0 (no change)", anchor: "start", size: 12)
    }

    private func text(
        x: Double, y: Double, _ content: String, anchor: String, size: Int = 13, weight: String = "normal"
    ) -> String {
        """
        <text x=\"\(f(x))\" y=\"\(f(y))\" text-anchor=\"\(anchor)\" font-size=\"\(size)\" \
        font-weight=\"\(weight)\">\(Self.escape(content))</text>\n
        """
    }

    private func f(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }

    /// Escapes text for XML character data and attribute values.
    public static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default:
                // characters XML 1.0 does not allow are dropped
                if character.unicodeScalars.allSatisfy({ $0.value >= 0x20 || $0 == "\t" || $0 == "\n" }) {
                    out.append(character)
                }
            }
        }
        return out
    }

    /// A step of 1, 2 or 5 times a power of ten that cuts `span` into at most about `ticks` parts.
    static func niceStep(_ span: Double, ticks: Int) -> Double {
        guard span > 0 else { return 1 }
        let raw = span / Double(ticks)
        let power = pow(10, floor(log10(raw)))
        for multiple in [1.0, 2.0, 5.0, 10.0] where multiple * power >= raw { return max(multiple * power, 1) }
        return max(10 * power, 1)
    }

    static func number(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e9 { return String(Int(value)) }
        if abs(value) >= 10 { return String(format: "%.0f", value) }
        if abs(value) >= 1 { return String(format: "%.1f", value) }
        return String(format: "%.2g", value)
    }

    static func byteText(_ bytes: Int) -> String {
        bytes >= 1 << 20 && bytes % (1 << 20) == 0
            ? "\(bytes >> 20) MiB" : bytes >= 1024 && bytes % 1024 == 0 ? "\(bytes >> 10) KiB" : "\(bytes) bytes"
    }

    /// The viridis colour map at `t` in 0...1.
    static func colour(_ t: Double) -> String {
        let stops: [(Double, Double, Double)] = [
            (0x44, 0x01, 0x54), (0x48, 0x28, 0x78), (0x3E, 0x49, 0x89), (0x31, 0x68, 0x8E), (0x26, 0x82, 0x8E),
            (0x1F, 0x9E, 0x89), (0x35, 0xB7, 0x79), (0x6E, 0xCE, 0x58), (0xFD, 0xE7, 0x25),
        ]
        let position = min(max(t, 0), 1) * Double(stops.count - 1)
        let index = min(Int(position), stops.count - 2)
        let fraction = position - Double(index)
        let (a, b) = (stops[index], stops[index + 1])
        func channel(_ x: Double, _ y: Double) -> Int { Int((x + (y - x) * fraction).rounded()) }
        return String(format: "#%02x%02x%02x", channel(a.0, b.0), channel(a.1, b.1), channel(a.2, b.2))
    }
}

/// Maps cell values to colour levels on a logarithmic scale between the smallest and largest non-zero cell.
struct ColourScale {
    /// Smallest and largest non-zero cell value; nil when every cell is zero.
    let range: ClosedRange<Double>?

    init(heatmap: TraceHeatmap) {
        var low = Double.infinity
        var high = 0.0
        for epoch in 0..<heatmap.epochs {
            for row in 0..<heatmap.rows {
                let value = heatmap.mean(epoch: epoch, row: row)
                if value > 0 {
                    low = min(low, value)
                    high = max(high, value)
                }
            }
        }
        range = high > 0 ? low...high : nil
    }

    /// Where `value` sits on the scale, 0 to 1.
    func position(_ value: Double) -> Double {
        guard let range, range.upperBound > range.lowerBound else { return 1 }
        return min(max(log(value / range.lowerBound) / log(range.upperBound / range.lowerBound), 0), 1)
    }

    /// The colour level of `value`, nil for zero.
    func level(_ value: Double) -> Int? {
        guard value > 0 else { return nil }
        return Int((position(value) * Double(HeatmapSVG.levels - 1)).rounded())
    }

    /// Legend ticks: 1, 2 and 5 times powers of ten inside the range, plus its ends when few fall inside.
    func tickValues() -> [Double] {
        guard let range else { return [] }
        var values: [Double] = []
        var power = pow(10, floor(log10(range.lowerBound)))
        while power <= range.upperBound {
            for multiple in [1.0, 2.0, 5.0] where range.contains(multiple * power) { values.append(multiple * power) }
            power *= 10
        }
        if values.count > 8 { values = values.filter { abs(log10($0) - log10($0).rounded()) < 1e-9 } }
        if values.count < 2 { values = [range.lowerBound, range.upperBound] }
        return values
    }
}
