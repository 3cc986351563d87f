// The int8 engine's squeeze-excitation multipliers: the 8-lane path equals the scalar loops bit for bit (same float
// operations per output, in the same order), over random weights and channel counts around the 8-lane width.
import XCTest
import EarTagTestSupport
@testable import EarTagEngine

/// `Int8Engine.seMultipliers` with `vector: true` against `vector: false`.
final class Int8SqueezeExciteTests: XCTestCase {
    /// Hidden values and gate multipliers are bitwise equal on both paths (seeds printed).
    func testVectorMultipliersEqualScalarOnes() {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRNG(state: seed)
        var positiveHidden = 0
        for e in [1, 7, 8, 9, 24, 48, 72, 100, 384] {
            for sq in [1, 2, 7, 8, 12, 17, 24, 96] {
                /// `n` floats uniform in -r...r.
                func floats(_ n: Int, _ r: Float) -> [Float] { (0..<n).map { _ in Float.random(in: -r...r, using: &rng) } }
                let pooled = floats(e, 4), fc1T = floats(e * sq, 0.5), b1 = floats(sq, 0.5)
                let fc2T = floats(sq * e, 0.5), b2 = floats(e, 0.5), factor = Float.random(in: 0.5...2, using: &rng)
                var hidden = [[Float]](repeating: [Float](repeating: .nan, count: sq), count: 2)
                var gate = [[Float]](repeating: [Float](repeating: .nan, count: e), count: 2)
                for (i, vector) in [false, true].enumerated() {
                    hidden[i].withUnsafeMutableBufferPointer { h in
                        gate[i].withUnsafeMutableBufferPointer { g in
                            Int8Engine.seMultipliers(pooled: pooled, channels: e, squeeze: sq, fc1T: fc1T, b1: b1,
                                                     fc2T: fc2T, b2: b2, factor: factor, vector: vector,
                                                     hidden: h.baseAddress!, gate: g.baseAddress!)
                        }
                    }
                }
                let tag = "seed \(seed) e \(e) squeeze \(sq)"
                XCTAssertEqual(hidden[0].map(\.bitPattern), hidden[1].map(\.bitPattern), "hidden: " + tag)
                XCTAssertEqual(gate[0].map(\.bitPattern), gate[1].map(\.bitPattern), "gate: " + tag)
                XCTAssertFalse(gate[1].contains { $0.isNaN }, tag)
                positiveHidden += hidden[1].filter { $0 > 0 }.count
            }
        }
        // The second layer sees non-zero inputs (ReLU does not zero every hidden value).
        XCTAssertGreaterThan(positiveHidden, 500, "seed \(seed)")
    }
}
