import FGBI
import FGBIDiagnostics
import Foundation
import Testing

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// The heatmap buckets pages into rows and the SVG is well-formed XML with one cell per epoch and row.
@Suite("Trace heatmap")
struct HeatmapSVGTests {
    /// Counts elements and collects text while parsing.
    final class Census: NSObject, XMLParserDelegate {
        var cells = 0
        var rects = 0
        var texts: [String] = []
        var root: String?
        private var current = ""

        func parser(
            _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String] = [:]
        ) {
            if root == nil { root = name }
            if name == "rect" {
                rects += 1
                if attributes["class"]?.split(separator: " ").contains("cell") == true { cells += 1 }
            }
            current = ""
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) { current += string }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "text" { texts.append(current) }
        }
    }

    private func parse(_ svg: String) throws -> Census {
        let parser = XMLParser(data: Data(svg.utf8))
        let census = Census()
        parser.delegate = census
        #expect(parser.parse(), "SVG is not well-formed: \(String(describing: parser.parserError))")
        return census
    }

    private func heatmap(pages: Int, epochs: Int, rows: Int = TraceHeatmap.maximumRows) -> TraceHeatmap {
        var map = TraceHeatmap(pageCount: pages, blockSize: 64, blocksPerPage: 64, rows: rows)
        var random = SeededRandom(seed: 9)
        for _ in 0..<epochs {
            map.beginEpoch()
            for _ in 0..<pages / 3 {
                map.add(page: Int(random.next() % UInt64(pages)), blocks: 1 + Int(random.next() % 64))
            }
        }
        return map
    }

    @Test func bucketsPagesIntoAtMostTheRowsAsked() {
        let map = TraceHeatmap(pageCount: 1000, blockSize: 64, blocksPerPage: 64)
        #expect(map.pagesPerRow == 4 && map.rows == 250)
        #expect(map.pages(ofRow: 249) == 996..<1000)
        let small = TraceHeatmap(pageCount: 10, blockSize: 64, blocksPerPage: 64)
        #expect(small.rows == 10 && small.pagesPerRow == 1)
        let uneven = TraceHeatmap(pageCount: 65_537, blockSize: 64, blocksPerPage: 64)
        #expect(uneven.rows <= 256 && uneven.rows * uneven.pagesPerRow >= 65_537)
        #expect(uneven.pages(ofRow: uneven.rows - 1).upperBound == 65_537)
    }

    @Test(arguments: [(pages: 1024, epochs: 12), (pages: 100, epochs: 1), (pages: 5000, epochs: 40)])
    func svgIsWellFormedWithOneCellPerEpochAndRow(pages: Int, epochs: Int) throws {
        let map = heatmap(pages: pages, epochs: epochs)
        let svg = HeatmapSVG(heatmap: map, title: "test <&> \"trace\"")
        let census = try parse(svg.render())
        #expect(census.root == "svg")
        #expect(census.cells == epochs * map.rows)
        #expect(census.cells == svg.cellCount)
        #expect(census.texts.contains("test <&> \"trace\""))
        #expect(census.texts.contains("epoch"))
        #expect(census.texts.contains("address (offset in the region)"))
        #expect(census.texts.contains("changed blocks"))
        #expect(census.texts.contains("0 (no change)"))
    }

    @Test func anEmptyHeatmapStillRenders() throws {
        let census = try parse(
            HeatmapSVG(heatmap: TraceHeatmap(pageCount: 8, blockSize: 64, blocksPerPage: 64), title: "empty").render())
        #expect(census.cells == 0)
        #expect(census.texts.contains("no epochs traced"))
        var quiet = TraceHeatmap(pageCount: 8, blockSize: 64, blocksPerPage: 64)
        quiet.beginEpoch()
        let still = try parse(HeatmapSVG(heatmap: quiet, title: "quiet").render())
        #expect(still.cells == 8)
        #expect(still.texts.contains("no change in any epoch"))
    }
}
