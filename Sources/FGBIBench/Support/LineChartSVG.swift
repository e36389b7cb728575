import Foundation

/// A small line chart as a standalone SVG: one line per series over a shared x axis (epochs), with a
/// logarithmic y axis when the values span more than two decades, so a mode sending 100x less than another
/// still shows its shape. For the benchmark plots in Docs/BENCHMARKS.md.
public struct LineChartSVG {
    public struct Series {
        public var name: String
        public var values: [Double]
        public init(name: String, values: [Double]) {
            self.name = name
            self.values = values
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    public var width = 760.0
    public var height = 380.0

    public init(title: String, xLabel: String, yLabel: String, series: [Series]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
    }

    private static let colours = [
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
    ]

    /// The SVG document.
    public var rendered: String {
        let left = 80.0
        let right = 150.0
        let top = 40.0
        let bottom = 50.0
        let plotWidth = width - left - right
        let plotHeight = height - top - bottom
        let positive = series.flatMap(\.values).filter { $0 > 0 && $0.isFinite }
        let low = positive.min() ?? 1
        let high = max(positive.max() ?? 1, low * 1.0001)
        let logarithmic = high / low > 100
        let yMin = logarithmic ? pow(10, floor(log10(low))) : 0
        let yMax = logarithmic ? pow(10, ceil(log10(high))) : high * 1.1
        let points = max(series.map(\.values.count).max() ?? 1, 2)
        func x(_ index: Int) -> Double { left + plotWidth * Double(index) / Double(points - 1) }
        func y(_ value: Double) -> Double {
            let fraction =
                logarithmic ? (log10(max(value, yMin)) - log10(yMin)) / (log10(yMax) - log10(yMin)) : value / yMax
            return top + plotHeight * (1 - fraction)
        }
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
            font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="22" font-size="14" font-weight="bold">\(escape(title))</text>
            <line x1="\(left)" y1="\(top + plotHeight)" x2="\(left + plotWidth)" y2="\(top + plotHeight)" \
            stroke="black"/>
            <line x1="\(left)" y1="\(top)" x2="\(left)" y2="\(top + plotHeight)" stroke="black"/>
            <text x="\(left + plotWidth / 2)" y="\(height - 12)" text-anchor="middle">\(escape(xLabel))</text>
            <text x="16" y="\(top + plotHeight / 2)" text-anchor="middle" transform="rotate(-90 16 \
            \(top + plotHeight / 2))">\(escape(yLabel))</text>

            """
        var ticks: [Double] = []
        if logarithmic {
            var tick = yMin
            while tick <= yMax * 1.0001 {
                ticks.append(tick)
                tick *= 10
            }
        } else {
            ticks = (0...4).map { yMax * Double($0) / 4 }
        }
        for tick in ticks {
            let position = y(tick)
            svg +=
                """
                <line x1=\"\(left - 4)\" y1=\"\(position)\" x2=\"\(left + plotWidth)\" y2=\"\(position)\" \
                stroke=\"#ddd\"/>
                """
            svg += "<text x=\"\(left - 6)\" y=\"\(position + 4)\" text-anchor=\"end\">\(Self.label(tick))</text>\n"
        }
        for index in stride(from: 0, to: points, by: max(points / 10, 1)) {
            svg += "<text x=\"\(x(index))\" y=\"\(top + plotHeight + 16)\" text-anchor=\"middle\">\(index + 1)</text>\n"
        }
        for (number, line) in series.enumerated() {
            let colour = Self.colours[number % Self.colours.count]
            let path = line.values.enumerated().map { "\(x($0.offset)),\(y($0.element))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.8\" points=\"\(path)\"/>\n"
            let legendY = top + 16 * Double(number)
            svg +=
                """
                <line x1=\"\(left + plotWidth + 12)\" y1=\"\(legendY)\" x2=\"\(left + plotWidth + 32)\" \
                y2=\"\(legendY)\" stroke=\"\(colour)\" stroke-width=\"3\"/>
                """
            svg += "<text x=\"\(left + plotWidth + 38)\" y=\"\(legendY + 4)\">\(escape(line.name))</text>\n"
        }
        return svg + "</svg>\n"
    }

    /// 1200 -> "1.2k", 3.5e6 -> "3.5M".
    static func label(_ value: Double) -> String {
        let units: [(Double, String)] = [(1e9, "G"), (1e6, "M"), (1e3, "k")]
        for (scale, suffix) in units where value >= scale {
            return String(format: "%g", (value / scale * 10).rounded() / 10) + suffix
        }
        return String(format: "%g", (value * 100).rounded() / 100)
    }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}
