// Randomized, seeded checks of EventDetector: invariants plus agreement with a naive index-based model.
import XCTest
@testable import EarTagEvents
import EarTagTestSupport

final class PropertyTests: XCTestCase {
    /// One random scenario's settings.
    struct Scenario {
        var classes: Int, k: Int, n: Int, hold: Double, cooldown: Double, hop: Int64, on: [Float], off: [Float]
        var scores: [[Float]]
    }

    /// Builds a random scenario: bursty per-class scores, some NaN, random thresholds and timing.
    func makeScenario(_ rng: inout SeededRNG) -> Scenario {
        let classes = Int.random(in: 1...24, using: &rng)
        let n = Int.random(in: 1...8, using: &rng)
        let k = Int.random(in: 1...n, using: &rng)
        let hold = Double(Int.random(in: 0...8, using: &rng)) * 0.5
        let cooldown = Double(Int.random(in: 0...10, using: &rng)) * 0.5
        let hop = sec([0.5, 1, 2, 0.25][Int.random(in: 0...3, using: &rng)])
        let on = (0..<classes).map { _ in Float.random(in: 0.1...0.9, using: &rng) }
        let off = on.map { $0 * Float.random(in: 0...1, using: &rng) }
        let windows = Int.random(in: 1...300, using: &rng)
        var loud = [Bool](repeating: false, count: classes)
        var scores: [[Float]] = []
        for _ in 0..<windows {
            var row = [Float](repeating: 0, count: classes)
            for c in 0..<classes {
                if Double.random(in: 0..<1, using: &rng) < 0.15 { loud[c].toggle() }
                row[c] = loud[c] ? Float.random(in: 0.2...1, using: &rng) : Float.random(in: 0...0.4, using: &rng)
                if Int.random(in: 0..<200, using: &rng) == 0 { row[c] = .nan }
            }
            scores.append(row)
        }
        return Scenario(classes: classes, k: k, n: n, hold: hold, cooldown: cooldown, hop: hop, on: on, off: off,
                        scores: scores)
    }

    /// A straightforward model of the documented semantics, working on whole arrays by window index.
    func reference(_ s: Scenario, finishAt: Int64) -> [[Emitted]] {
        let length = sec(10)
        let hold = sec(s.hold), cooldown = sec(s.cooldown)
        func end(_ w: Int) -> Int64 { length + Int64(w) * s.hop }
        func newStart(_ w: Int) -> Int64 { max(end(w) - length, end(w) - s.hop) }
        var result = [[Emitted]](repeating: [], count: s.classes)
        for c in 0..<s.classes {
            var active = false
            var hits: [Int] = []
            var firstHit = 0, lastHeard = 0
            var startTime: Int64 = 0
            var cooldownUntil = Int64.min
            func stats(_ range: ClosedRange<Int>) -> (Float, Float, Int) {
                let v = range.map { s.scores[$0][c].isNaN ? 0 : s.scores[$0][c] }
                return (v.max()!, Float(v.reduce(0.0) { $0 + Double($1) } / Double(v.count)), v.count)
            }
            for w in s.scores.indices {
                let x = s.scores[w][c]
                if !active {
                    guard !x.isNaN, x >= s.on[c], newStart(w) >= cooldownUntil else { continue }
                    hits.append(w)
                    let recent = hits.filter { $0 > w - s.n }
                    if recent.count >= s.k {
                        active = true
                        firstHit = recent.min()!
                        lastHeard = w
                        startTime = newStart(firstHit)
                        let (p, m, cnt) = stats(firstHit...w)
                        result[c].append(Emitted(window: w, event: Event(kind: .start, classIndex: c,
                                                                          sample: startTime, peak: p, mean: m,
                                                                          windows: cnt)))
                    }
                } else if !x.isNaN && x >= s.off[c] {
                    lastHeard = w
                } else if end(w) - end(lastHeard) >= hold {
                    active = false
                    hits = []
                    cooldownUntil = end(lastHeard) + cooldown
                    let (p, m, cnt) = stats(firstHit...lastHeard)
                    result[c].append(Emitted(window: w, event: Event(kind: .end, classIndex: c, sample: end(lastHeard),
                                                                      peak: p, mean: m, windows: cnt)))
                }
            }
            if active {
                let (p, m, cnt) = stats(firstHit...lastHeard)
                let t = max(startTime, min(end(lastHeard), finishAt))
                result[c].append(Emitted(window: -1, event: Event(kind: .end, classIndex: c, sample: t, peak: p,
                                                                   mean: m, windows: cnt)))
            }
        }
        return result
    }

    /// Invariants hold and events match the reference model, over many seeded random scenarios.
    func testRandomScenarios() throws {
        let base = UInt64(ProcessInfo.processInfo.environment["EARTAG_EVENTS_SEED"] ?? "") ?? 0x5EED_2026
        var starts = 0, finished = 0
        for trial in 0..<300 {
            let seed = base &+ UInt64(trial)
            var rng = SeededRNG(seed: seed)
            let s = makeScenario(&rng)
            let why = "seed \(seed) (replay: EARTAG_EVENTS_SEED=\(seed)), k \(s.k) n \(s.n) hold \(s.hold) "
                + "cooldown \(s.cooldown) hop \(s.hop)"
            let config = try EventConfig(numClasses: s.classes, sampleRate: Int(rate),
                                         classThresholds: Dictionary(uniqueKeysWithValues: (0..<s.classes).map {
                                             ($0, ClassThresholds(on: s.on[$0], off: s.off[$0])) }),
                                         confirmHits: s.k, confirmWindows: s.n, hold: s.hold, cooldown: s.cooldown)
            let d = try EventDetector(config: config, numClasses: s.classes)
            let finishAt = windowEnd(s.scores.count - 1, hop: s.hop) - Int64.random(in: 0...sec(3), using: &rng)
            let out = drive(d, s.scores, hop: s.hop, finishAt: finishAt)
            XCTAssertEqual(d.activeCount, 0, why)
            starts += out.filter { $0.event.kind == .start }.count
            finished += out.filter { $0.window < 0 }.count
            let expected = reference(s, finishAt: finishAt)
            let cooldown = sec(s.cooldown)
            for c in 0..<s.classes {
                let mine = out.filter { $0.event.classIndex == c }
                var last: Event? = nil
                for e in mine {
                    let ev = e.event
                    if let l = last {
                        XCTAssertNotEqual(l.kind, ev.kind, "class \(c): kinds must alternate; \(why)")
                        XCTAssertGreaterThanOrEqual(ev.sample, l.sample, "class \(c): time went back; \(why)")
                        if l.kind == .end {
                            XCTAssertGreaterThanOrEqual(ev.sample - l.sample, cooldown, "class \(c): cooldown; \(why)")
                        }
                    } else {
                        XCTAssertEqual(ev.kind, .start, "class \(c): first event must be a start; \(why)")
                    }
                    if e.window >= 0 {
                        XCTAssertLessThanOrEqual(ev.sample, windowEnd(e.window, hop: s.hop), "class \(c): future; \(why)")
                    }
                    XCTAssertGreaterThanOrEqual(ev.windows, 1, why)
                    XCTAssertGreaterThanOrEqual(ev.peak + 1e-6, ev.mean, why)
                    last = ev
                }
                XCTAssertNotEqual(last?.kind, .start, "class \(c): left active after finish; \(why)")
                XCTAssertEqual(mine.count, expected[c].count, "class \(c): event count; \(why)")
                for (a, b) in zip(mine, expected[c]) {
                    XCTAssertEqual(a.window, b.window, "class \(c): emitting window; \(why)")
                    XCTAssertEqual(a.event.kind, b.event.kind, why)
                    XCTAssertEqual(a.event.sample, b.event.sample, "class \(c) \(a.event.kind); \(why)")
                    XCTAssertEqual(a.event.windows, b.event.windows, "class \(c) \(a.event.kind); \(why)")
                    XCTAssertEqual(a.event.peak, b.event.peak, "class \(c); \(why)")
                    XCTAssertEqual(a.event.mean, b.event.mean, accuracy: 1e-5, "class \(c); \(why)")
                }
                if mine.count != expected[c].count { return }
            }
        }
        // The scenarios must actually exercise the detector, including finish().
        XCTAssertGreaterThan(starts, 1000)
        XCTAssertGreaterThan(finished, 50)
    }
}
