// The live view's frames: the best labels in order with bars, numbers formatted, events listed, terminal restored.
import XCTest
import EarTagModel
@testable import EarTagPipeline

final class LiveViewTests: XCTestCase {
    /// Everything the view wrote to a pipe during `body`.
    func captured(_ body: (LiveView) -> Void, labels: [Label], rows: Int) throws -> String {
        var fds: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&fds), 0)
        let view = LiveView(labels: labels, rows: rows, title: "stdin, model test", fd: fds[1])
        body(view)
        close(fds[1])
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fds[0], &chunk, chunk.count)
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        close(fds[0])
        return String(decoding: out, as: UTF8.self)
    }

    /// One window: the top rows in descending order (ties by index), bars proportional, level and factor shown,
    /// the active label marked ON, the recent events listed; finish leaves the alternate screen.
    func testFrameShowsTopLabelsLevelAndEvents() throws {
        let labels = (0..<8).map { Label(index: $0, mid: "/m/\($0)", displayName: "Label \($0)") }
        let scores: [Float] = [0.1, 0.8, 0.05, 0.5, 0.5, 0.0, 0.25, 0.9]
        let text = try captured({ view in
            view.hop(HopStats(samplesConsumed: 320000, busySeconds: 0.05, ringFill: 0, ringCapacity: 0,
                              droppedSamples: 0, xruns: 0, reconnects: 0, deaf: false))
            view.record(.start(label: 7, timeSeconds: 9, wallTime: Date(), score: 0.9))
            scores.withUnsafeBufferPointer {
                view.window(WindowStats(startSample: 32000, endSample: 352000, levelDBFS: -22.46, skipped: false,
                                        inferenceSeconds: 0.0123, analysisSeconds: 0.02, hopSeconds: 1), scores: $0)
            }
            view.finish()
        }, labels: labels, rows: 4)
        XCTAssertTrue(text.hasPrefix("\u{1B}[?1049h\u{1B}[?25l"), "enters the alternate screen, hides the cursor")
        XCTAssertTrue(text.hasSuffix("\u{1B}[?25h\u{1B}[?1049l"), "restores the terminal")
        let lines = text.components(separatedBy: "\r\n").map { $0.replacingOccurrences(of: "\u{1B}[K", with: "") }
        let rows = lines.filter { $0.hasPrefix("Label ") }
        XCTAssertEqual(rows.map { String($0.prefix(7)) }, ["Label 7", "Label 1", "Label 3", "Label 4"])
        XCTAssertTrue(rows[0].contains(" 0.900 [" + String(repeating: "#", count: 45) + String(repeating: ".", count: 5) + "]  ON"),
                      rows[0])
        XCTAssertTrue(rows[2].contains(" 0.500 [" + String(repeating: "#", count: 25)), rows[2])
        XCTAssertFalse(rows[1].hasSuffix("ON"))
        XCTAssertTrue(text.contains("window      1.0 -    11.0 s   real-time factor  0.0050   inference   12.3 ms"), text)
        XCTAssertTrue(text.contains("level   -22.5 dBFS ["), text)
        XCTAssertTrue(text.contains("[    9.000 s] start Label 7 (0.900)"), text)
        XCTAssertTrue(text.contains("EarTag live view: stdin, model test"))
    }

    /// Long and multi-byte names are cut to the column without splitting a character.
    func testLongNamesAreCutCleanly() throws {
        let name = String(repeating: "é", count: 40)
        let labels = [Label(index: 0, mid: "/m/0", displayName: name)]
        let text = try captured({ view in
            [Float(0.5)].withUnsafeBufferPointer {
                view.window(WindowStats(startSample: 0, endSample: 32000, levelDBFS: -200, skipped: true,
                                        inferenceSeconds: 0, analysisSeconds: 0, hopSeconds: 1), scores: $0)
            }
        }, labels: labels, rows: 3)
        XCTAssertTrue(text.contains(String(repeating: "é", count: 32) + " 0.500"), text)
        XCTAssertTrue(text.contains("level   -99.9 dBFS"), text)
        XCTAssertTrue(text.contains("inference skipped"))
        XCTAssertFalse(text.contains("\u{FFFD}"))
    }
}
