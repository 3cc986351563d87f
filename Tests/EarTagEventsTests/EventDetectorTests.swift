// Deterministic scenarios for EventDetector with hand-made score sequences.
import XCTest
@testable import EarTagEvents

final class EventDetectorTests: XCTestCase {
    let h = sec(1)

    /// A sustained sound gives one start and one end with the documented times, peak and mean.
    func testSustainedSoundGivesOneStartAndOneEnd() throws {
        let d = try detector(classes: 3)
        let series: [Float] = [0.1, 0.1, 0.5, 0.6, 0.8, 0.7, 0.5, 0.1, 0.1, 0.1, 0.1]
        let out = drive(d, rows(series, classes: 3, at: 1), hop: h)
        XCTAssertEqual(out.count, 2)
        // Hits in windows 2 and 3; window 2's new audio starts at 10 s + 1 s.
        XCTAssertEqual(out[0].window, 3)
        XCTAssertEqual(out[0].event.kind, .start)
        XCTAssertEqual(out[0].event.classIndex, 1)
        XCTAssertEqual(out[0].event.sample, sec(11))
        XCTAssertEqual(out[0].event.peak, 0.6)
        XCTAssertEqual(out[0].event.mean, 0.55, accuracy: 1e-6)
        XCTAssertEqual(out[0].event.windows, 2)
        // Last heard in window 6 (ends at 16 s); the hold of 2 s has passed at window 8 (ends at 18 s).
        XCTAssertEqual(out[1].window, 8)
        XCTAssertEqual(out[1].event.kind, .end)
        XCTAssertEqual(out[1].event.classIndex, 1)
        XCTAssertEqual(out[1].event.sample, sec(16))
        XCTAssertEqual(out[1].event.peak, 0.8)
        XCTAssertEqual(out[1].event.mean, 0.62, accuracy: 1e-6)
        XCTAssertEqual(out[1].event.windows, 5)
        XCTAssertFalse(d.isActive(1))
        XCTAssertEqual(d.activeCount, 0)
    }

    /// A single high window does not confirm with k = 2 but starts (and ends) with k = 1.
    func testBlipNeedsKHits() throws {
        let series: [Float] = [0, 0, 0.9, 0, 0, 0, 0]
        XCTAssertEqual(drive(try detector(k: 2, n: 3), rows(series), hop: h), [])
        let out = drive(try detector(k: 1, n: 3), rows(series), hop: h)
        XCTAssertEqual(out.map(\.event.kind), [.start, .end])
        XCTAssertEqual(out[0].event.sample, sec(11))
        XCTAssertEqual(out[0].window, 2)
        XCTAssertEqual(out[1].event.sample, sec(12))
        XCTAssertEqual(out[1].window, 4)
        XCTAssertEqual(out[1].event.windows, 1)
        XCTAssertEqual(out[1].event.peak, 0.9)
        XCTAssertEqual(out[1].event.mean, 0.9)
    }

    /// Hits further apart than n windows never confirm.
    func testSparseHitsDoNotConfirm() throws {
        let series: [Float] = [0.9, 0, 0, 0.9, 0, 0, 0.9, 0, 0, 0.9]
        XCTAssertEqual(drive(try detector(k: 2, n: 3), rows(series), hop: h), [])
        // With n = 4 the second hit is within reach of the first: start at window 0's new audio (9 s).
        let out = drive(try detector(k: 2, n: 4, hold: 0), rows(series), hop: h)
        XCTAssertEqual(out.first?.event, Event(kind: .start, classIndex: 0, sample: sec(9), peak: 0.9, mean: 0.45,
                                               windows: 4))
    }

    /// Scores oscillating between off and on keep the label active without re-triggering.
    func testHysteresisKeepsLabelActive() throws {
        let d = try detector(on: 0.5, off: 0.2, hold: 0)
        let series: [Float] = [0.6, 0.6, 0.3, 0.55, 0.25, 0.45, 0.21, 0.6, 0.3, 0.2]
        let out = drive(d, rows(series), hop: h)
        XCTAssertEqual(out.map(\.event.kind), [.start])
        XCTAssertTrue(d.isActive(0))
        XCTAssertEqual(d.activeClasses, [0])
        // Dropping below off (hold 0) ends it at once, at the end of the last heard window.
        let tail = drive(d, rows([0.19]), hop: h, length: sec(10) + Int64(series.count) * h)
        XCTAssertEqual(tail.map(\.event.kind), [.end])
        XCTAssertEqual(tail[0].event.sample, windowEnd(series.count - 1, hop: h))
        XCTAssertEqual(tail[0].event.windows, series.count)
    }

    /// Dips shorter than the hold do not end a label; the dip windows count in its mean.
    func testHoldBridgesShortDips() throws {
        let d = try detector(on: 0.3, off: 0.2, hold: 2)
        let series: [Float] = [0.5, 0.5, 0.1, 0.5, 0.1, 0.5, 0.5, 0, 0, 0, 0]
        let out = drive(d, rows(series), hop: h)
        XCTAssertEqual(out.map(\.event.kind), [.start, .end])
        XCTAssertEqual(out[0].event.sample, sec(9))
        XCTAssertEqual(out[1].event.sample, windowEnd(6, hop: h))
        XCTAssertEqual(out[1].window, 8)
        XCTAssertEqual(out[1].event.windows, 7)
        XCTAssertEqual(out[1].event.mean, (0.5 * 5 + 0.2) / 7, accuracy: 1e-6)

        // A two-window dip with hold 2 s ends it at the second dip window.
        let d2 = try detector(on: 0.3, off: 0.2, hold: 2)
        let out2 = drive(d2, rows([0.5, 0.5, 0.1, 0.1, 0.5, 0.5]), hop: h)
        XCTAssertEqual(out2.map(\.event.kind), [.start, .end, .start])   // two fresh hits restart it
        XCTAssertEqual(out2[1].window, 3)
        XCTAssertEqual(out2[1].event.sample, windowEnd(1, hop: h))
        // The same dip with hold 3 s is bridged.
        let d3 = try detector(on: 0.3, off: 0.2, hold: 3)
        XCTAssertEqual(drive(d3, rows([0.5, 0.5, 0.1, 0.1, 0.5, 0.5]), hop: h).map(\.event.kind), [.start])
        // Hold 0 ends at the first window below off.
        let d0 = try detector(on: 0.3, off: 0.2, hold: 0)
        let out0 = drive(d0, rows([0.5, 0.5, 0.1, 0.5]), hop: h)
        XCTAssertEqual(out0.map(\.event.kind), [.start, .end])
        XCTAssertEqual(out0[1].window, 2)
        XCTAssertEqual(out0[1].event.sample, windowEnd(1, hop: h))
    }

    /// A cooldown ignores hits until it has passed; without it the label restarts at once.
    func testCooldownSuppressesImmediateRestart() throws {
        let series: [Float] = [0.5, 0, 0.5, 0.5, 0.5, 0.5, 0.5, 0]
        let free = drive(try detector(k: 1, n: 1, hold: 0, cooldown: 0), rows(series), hop: h)
        XCTAssertEqual(free.map(\.event.kind), [.start, .end, .start, .end])
        XCTAssertEqual(free.map(\.event.sample), [sec(9), sec(10), sec(11), sec(16)])

        let cooled = drive(try detector(k: 1, n: 1, hold: 0, cooldown: 5), rows(series), hop: h)
        XCTAssertEqual(cooled.map(\.event.kind), [.start, .end, .start, .end])
        // End at 10 s + 5 s cooldown: the first hit that counts is window 6, whose new audio starts at 15 s.
        XCTAssertEqual(cooled.map(\.event.sample), [sec(9), sec(10), sec(15), sec(16)])
        XCTAssertEqual(cooled[2].window, 6)

        // With k = 2, hits inside the cooldown do not help: two hits after it are needed.
        let k2 = drive(try detector(k: 2, n: 3, hold: 0, cooldown: 4), rows([0.5, 0.5, 0, 0.5, 0.5, 0.5, 0.5, 0.5]),
                       hop: h)
        XCTAssertEqual(k2.map(\.event.kind), [.start, .end, .start])
        XCTAssertEqual(k2[1].event.sample, sec(11))
        XCTAssertEqual(k2[2].event.sample, sec(15))
        XCTAssertEqual(k2[2].window, 7)
    }

    /// finish(at:) ends active labels at min(last heard, at), never before their start.
    func testFinishFlushesActiveLabels() throws {
        let d = try detector(classes: 2, hold: 5)
        let series: [[Float]] = [[0.5, 0], [0.5, 0.5], [0.5, 0.5], [0.5, 0]]
        var out = drive(d, series, hop: h)
        XCTAssertEqual(out.map(\.event.kind), [.start, .start])
        XCTAssertEqual(d.activeCount, 2)
        out = []
        d.finish(at: sec(12.5)) { out.append(Emitted(window: -1, event: $0)) }
        // Class 0 was last heard at 13 s, so it ends at 12.5 s; class 1 was last heard at 12 s.
        XCTAssertEqual(out.map(\.event), [
            Event(kind: .end, classIndex: 0, sample: sec(12.5), peak: 0.5, mean: 0.5, windows: 4),
            Event(kind: .end, classIndex: 1, sample: sec(12), peak: 0.5, mean: 0.5, windows: 2),
        ])
        XCTAssertEqual(d.activeCount, 0)
        XCTAssertEqual(d.activeClasses, [])
        var none: [Event] = []
        d.finish(at: sec(20)) { none.append($0) }
        XCTAssertEqual(none, [])

        // A finish time before the start clamps to the start.
        let e = try detector()
        _ = drive(e, rows([0.5, 0.5]), hop: h)
        var early: [Event] = []
        e.finish(at: 0) { early.append($0) }
        XCTAssertEqual(early.map(\.sample), [sec(9)])
    }

    /// reset() forgets activity and histories, so a half-confirmed label needs k fresh hits.
    func testResetForgetsEverything() throws {
        let d = try detector()
        _ = drive(d, rows([0.5, 0.5]), hop: h)
        XCTAssertTrue(d.isActive(0))
        d.reset()
        XCTAssertFalse(d.isActive(0))
        XCTAssertEqual(d.activeCount, 0)
        XCTAssertEqual(drive(d, rows([0.5]), hop: h), [])
        d.reset()
        XCTAssertEqual(drive(d, rows([0.5, 0.5]), hop: h).count, 1)
    }

    /// The same 10 s sound gives the same event times whatever the hop.
    func testHopSizes() throws {
        for hopSeconds in [0.5, 1.0, 2.0] {
            let hop = sec(hopSeconds)
            let d = try detector(k: 2, n: 3, hold: 2)
            var series: [Float] = []
            var i = 0
            while windowEnd(i, hop: hop) <= sec(40) {
                let end = windowEnd(i, hop: hop)
                let heard = end - hop < sec(30) && end > sec(20)
                series.append(heard ? 0.8 : 0.05)
                i += 1
            }
            let out = drive(d, rows(series), hop: hop)
            XCTAssertEqual(out.map(\.event.kind), [.start, .end], "hop \(hopSeconds)")
            guard out.count == 2 else { continue }
            XCTAssertEqual(out[0].event.sample, sec(20), "hop \(hopSeconds)")
            XCTAssertEqual(windowEnd(out[0].window, hop: hop), sec(20) + 2 * hop, "hop \(hopSeconds)")
            XCTAssertEqual(out[1].event.sample, sec(30), "hop \(hopSeconds)")
            XCTAssertEqual(windowEnd(out[1].window, hop: hop), sec(32), "hop \(hopSeconds)")
            XCTAssertEqual(out[1].event.windows, Int(10 / hopSeconds), "hop \(hopSeconds)")
            XCTAssertEqual(out[1].event.mean, 0.8, accuracy: 1e-6)
        }
    }

    /// The first window's new audio is clamped to the window start when the hop exceeds the window.
    func testNewAudioClampedToWindowStart() throws {
        let d = try detector(k: 1, n: 1)
        var out: [Event] = []
        [Float(0.9)].withUnsafeBufferPointer { buf in
            d.process(scores: buf, windowStart: sec(3), windowEnd: sec(4), hop: sec(2)) { out.append($0) }
        }
        XCTAssertEqual(out.map(\.sample), [sec(3)])
    }

    /// Hundreds of classes, each with its own sound, each give exactly their own start and end.
    func testManyClassesAtOnce() throws {
        let classes = 527
        let d = try detector(classes: classes, k: 2, n: 3, hold: 1)
        let windows = 80
        var series = [[Float]](repeating: [Float](repeating: 0.01, count: classes), count: windows)
        func span(_ c: Int) -> (first: Int, count: Int) { (c % 50, c % 7 + 3) }
        for c in 0..<classes {
            let (a, l) = span(c)
            for w in a..<(a + l) { series[w][c] = 0.5 + Float(w - a) * 0.05 }
        }
        let out = drive(d, series, hop: h)
        XCTAssertEqual(out.count, 2 * classes)
        for c in 0..<classes {
            let (a, l) = span(c)
            let mine = out.filter { $0.event.classIndex == c }
            XCTAssertEqual(mine.map(\.event.kind), [.start, .end], "class \(c)")
            guard mine.count == 2 else { continue }
            XCTAssertEqual(mine[0].event.sample, windowEnd(a, hop: h) - h, "class \(c)")
            XCTAssertEqual(mine[0].window, a + 1, "class \(c)")
            XCTAssertEqual(mine[1].event.sample, windowEnd(a + l - 1, hop: h), "class \(c)")
            XCTAssertEqual(mine[1].window, a + l, "class \(c)")
            XCTAssertEqual(mine[1].event.windows, l, "class \(c)")
            XCTAssertEqual(mine[1].event.peak, 0.5 + Float(l - 1) * 0.05, accuracy: 1e-6, "class \(c)")
        }
        XCTAssertEqual(d.activeCount, 0)
    }

    /// Unwatched classes never produce events; NaN scores are neither hits nor heard.
    func testUnwatchedAndNaN() throws {
        let d = try detector(classes: 3, k: 1, n: 1, hold: 0, watched: [1, 2])
        let out = drive(d, [[0.9, 0.9, .nan], [0.9, .nan, 0.9], [0.9, 0.9, 0.9]], hop: h)
        XCTAssertEqual(out.map { "\($0.event.kind) \($0.event.classIndex) \($0.window)" },
                       ["start 1 0", "end 1 1", "start 2 1", "start 1 2"])
        XCTAssertFalse(d.isActive(0))
        XCTAssertFalse(d.isActive(-1))
        XCTAssertFalse(d.isActive(99))
    }
}
