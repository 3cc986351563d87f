// Shared helpers of the event tests: a small label set, a window driver and a seeded RNG.
import Foundation
import XCTest
import EarTagModel
@testable import EarTagEvents

/// Samples per second used by every test.
let rate: Int64 = 32_000

/// Seconds to samples.
func sec(_ s: Double) -> Int64 { Int64((s * Double(rate)).rounded()) }

/// A few real AudioSet labels (indices renumbered 0...).
let testLabels: [Label] = [
    Label(index: 0, mid: "/m/09x0r", displayName: "Speech"),
    Label(index: 1, mid: "/m/04rlf", displayName: "Music"),
    Label(index: 2, mid: "/m/01g50p", displayName: "Railroad car, train wagon"),
    Label(index: 3, mid: "/m/0bt9lr", displayName: "Dog"),
    Label(index: 4, mid: "/m/01yrx", displayName: "Cat"),
]

/// An event together with the index of the window (or -1 for finish) that emitted it.
struct Emitted: Equatable {
    var window: Int
    var event: Event
}

/// Feeds `scores[window][class]` through `detector`: window i ends at `length + i * hop`; optionally finishes.
func drive(_ detector: EventDetector, _ scores: [[Float]], hop: Int64, length: Int64 = sec(10),
           finishAt: Int64? = nil) -> [Emitted] {
    var out: [Emitted] = []
    for (i, row) in scores.enumerated() {
        let end = length + Int64(i) * hop
        row.withUnsafeBufferPointer { buf in
            detector.process(scores: buf, windowStart: end - length, windowEnd: end, hop: hop) {
                out.append(Emitted(window: i, event: $0))
            }
        }
    }
    if let at = finishAt { detector.finish(at: at) { out.append(Emitted(window: -1, event: $0)) } }
    return out
}

/// windowEnd of window i for the driver's layout.
func windowEnd(_ i: Int, hop: Int64, length: Int64 = sec(10)) -> Int64 { length + Int64(i) * hop }

/// Score rows for one class watched among `classes` (the others stay 0).
func rows(_ series: [Float], classes: Int = 1, at c: Int = 0) -> [[Float]] {
    series.map { s in var r = [Float](repeating: 0, count: classes); r[c] = s; return r }
}

/// A detector over `classes` classes with the given config arguments.
func detector(classes: Int = 1, on: Float = 0.3, off: Float? = nil, k: Int = 2, n: Int = 3, hold: Double = 2,
              cooldown: Double = 0, watched: Set<Int>? = nil) throws -> EventDetector {
    let config = try EventConfig(numClasses: classes, sampleRate: Int(rate), on: on, off: off, watched: watched,
                                 confirmHits: k, confirmWindows: n, hold: hold, cooldown: cooldown)
    return try EventDetector(config: config, numClasses: classes)
}

/// Asserts that `body` throws exactly `expected`.
func assertThrows<T>(_ expected: EventError, _ body: @autoclosure () throws -> T,
                     file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try body(), file: file, line: line) { error in
        XCTAssertEqual(error as? EventError, expected, file: file, line: line)
        XCTAssertFalse("\(error)".contains("\n"), "error message spans lines", file: file, line: line)
    }
}
