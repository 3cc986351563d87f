// The int8 scalar references against their real-valued meaning (each output within half an output step plus the
// multiplier's relative error of the exact real result), over random shapes with printed seeds.
import XCTest
import EarTagKernels

/// Random int8 helpers.
extension SeededRNG {
    /// `n` int8 values uniform in -128...127.
    mutating func int8s(_ n: Int) -> [Int8] { (0..<n).map { _ in Int8.random(in: -128...127, using: &self) } }
    /// `n` weights uniform in -127...127.
    mutating func weights(_ n: Int) -> [Int8] { (0..<n).map { _ in Int8.random(in: -127...127, using: &self) } }
}

final class Int8KernelTests: XCTestCase {
    /// A fresh seed.
    func seed() -> UInt64 { UInt64.random(in: 0...UInt64.max) }

    func testMultiplierDecompositionAndRounding() {
        for m in [1e-9, 3.3e-5, 0.0123, 0.25, 0.5, 0.7071, 0.999_999_999, 1.0, 3.5, 1000.0] {
            let q = S8Multiplier(m)
            XCTAssertEqual(q.real, m, accuracy: m * 1e-9, "\(m)")
            XCTAssertTrue(q.multiplier >= 1 << 30 || q.multiplier == 0, "\(m)")
        }
        XCTAssertEqual(S8Multiplier(0).multiplier, 0)
        // Round half up: 3 * 0.5 = 1.5 -> 2, -3 * 0.5 = -1.5 -> -1, 5 * 0.5 = 2.5 -> 3.
        let half = S8Multiplier(0.5)
        XCTAssertEqual(s8_scale(3, half), 2)
        XCTAssertEqual(s8_scale(-3, half), -1)
        XCTAssertEqual(s8_scale(5, half), 3)
        XCTAssertEqual(s8_scale(Int32.max, S8Multiplier(0.999_999)), Int32((Double(Int32.max) * 0.999_999).rounded()))
        XCTAssertEqual(s8_scale(Int32.min, S8Multiplier(0.25)), Int32.min / 4)
        XCTAssertEqual(s8_requantize(1000, S8Multiplier(1), zeroPoint: 3), 127)
        XCTAssertEqual(s8_requantize(-10, S8Multiplier(1), zeroPoint: 3, lo: 3), 3)
        var rng = SeededRNG(state: seed())
        let s = rng.state
        for _ in 0..<10000 {
            let acc = Int32.random(in: -(1 << 24)...(1 << 24), using: &rng)
            let m = Double.random(in: 1e-6...0.9, using: &rng)
            let exact = Double(acc) * S8Multiplier(m).real
            XCTAssertEqual(Double(s8_scale(acc, S8Multiplier(m))), (exact + 0.5).rounded(.down), "seed \(s)")
        }
    }

    func testConv1x1MeansItsRealValue() {
        var rng = SeededRNG(state: seed())
        let s = rng.state
        for _ in 0..<30 {
            let pixels = Int.random(in: 1...9, using: &rng), cin = Int.random(in: 1...70, using: &rng)
            let cout = Int.random(in: 1...40, using: &rng)
            let x = rng.int8s(pixels * cin), w = rng.weights(cout * cin)
            let zin = Int32.random(in: -128...127, using: &rng), zout = Int32.random(in: -128...127, using: &rng)
            let sin = 0.02, sout = Double.random(in: 0.5...4, using: &rng)
            let sw = (0..<cout).map { _ in Double.random(in: 1e-4...1e-3, using: &rng) }
            let realBias = (0..<cout).map { _ in Double.random(in: -2...2, using: &rng) }
            var bias = [Int32](repeating: 0, count: cout)
            for c in 0..<cout {
                var sum: Int32 = 0
                for i in 0..<cin { sum += Int32(w[c * cin + i]) }
                bias[c] = Int32((realBias[c] / (sin * sw[c])).rounded()) - zin * sum
            }
            let rq = S8Requant(multipliers: sw.map { S8Multiplier(sin * $0 / sout) }, zeroPoint: zout, lo: -128, hi: 127)
            var out = [Int8](repeating: 0, count: pixels * cout)
            x.withUnsafeBufferPointer { xi in w.withUnsafeBufferPointer { wi in bias.withUnsafeBufferPointer { bi in
                out.withUnsafeMutableBufferPointer {
                    s8_conv1x1_reference(input: xi, pixels: pixels, cin: cin, weights: wi, bias: bi, cout: cout,
                                         requant: rq, output: $0)
                } } } }
            for p in 0..<pixels {
                for c in 0..<cout {
                    var real = realBias[c]
                    for i in 0..<cin { real += sin * Double(Int32(x[p * cin + i]) - zin) * sw[c] * Double(w[c * cin + i]) }
                    let expected = min(max(real / sout + Double(zout), -128), 127)
                    XCTAssertEqual(Double(out[p * cout + c]), expected, accuracy: 0.51 + 1e-6 * abs(real / sout),
                                   "seed \(s) pixel \(p) channel \(c)")
                }
            }
        }
    }

    func testDepthwiseAndStemHonourZeroPointAtBorders() {
        var rng = SeededRNG(state: seed())
        let s = rng.state
        for k in [3, 5] {
            for stride in [1, 2] {
                let h = Int.random(in: 1...7, using: &rng), w = Int.random(in: 1...7, using: &rng)
                let c = Int.random(in: 1...20, using: &rng)
                let x = rng.int8s(h * w * c), wt = rng.weights(k * k * c)
                let zin = Int32.random(in: -128...127, using: &rng)
                let bias = (0..<c).map { _ in Int32.random(in: -5000...5000, using: &rng) }
                let rq = S8Requant(multipliers: (0..<c).map { _ in S8Multiplier(Double.random(in: 1e-3...1e-2, using: &rng)) },
                                   zeroPoint: 0, lo: -128, hi: 127)
                let ho = f32_conv_out_size(h, kernel: k, stride: stride, dilation: 1)
                let wo = f32_conv_out_size(w, kernel: k, stride: stride, dilation: 1)
                var out = [Int8](repeating: 0, count: ho * wo * c)
                x.withUnsafeBufferPointer { xi in wt.withUnsafeBufferPointer { wi in bias.withUnsafeBufferPointer { bi in
                    out.withUnsafeMutableBufferPointer {
                        s8_dwconv_reference(input: xi, height: h, width: w, channels: c, inputZeroPoint: zin, weights: wi,
                                            bias: bi, kernel: k, stride: stride, dilation: 1, requant: rq, output: $0,
                                            rows: 0..<ho)
                    } } } }
                // Same map zero-padded by hand with the zero point: every tap then exists.
                let pad = (k - 1) / 2, hp = h + 2 * pad, wp = w + 2 * pad
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        for ch in 0..<c {
                            var acc = bias[ch]
                            for ky in 0..<k {
                                for kx in 0..<k {
                                    let iy = oy * stride + ky, ix = ox * stride + kx
                                    let inside = iy >= pad && iy < hp - pad && ix >= pad && ix < wp - pad
                                    let v = inside ? Int32(x[((iy - pad) * w + ix - pad) * c + ch]) : zin
                                    acc += (v - zin) * Int32(wt[(ky * k + kx) * c + ch])
                                }
                            }
                            XCTAssertEqual(out[(oy * wo + ox) * c + ch], s8_requantize(acc, rq.multipliers[ch], zeroPoint: 0),
                                           "seed \(s) k\(k) s\(stride)")
                        }
                    }
                }
            }
        }
    }

    func testAddGatePoolAndLut() {
        var rng = SeededRNG(state: seed())
        let s = rng.state
        let n = 200
        let a = rng.int8s(n), b = rng.int8s(n)
        let p = S8AddParams(scaleA: 0.03, zeroPointA: -5, scaleB: 0.05, zeroPointB: 17, scaleOut: 0.07, zeroPointOut: 3)
        var out = [Int8](repeating: 0, count: n)
        a.withUnsafeBufferPointer { ai in b.withUnsafeBufferPointer { bi in out.withUnsafeMutableBufferPointer {
            s8_add_reference(a: ai, b: bi, count: n, params: p, output: $0) } } }
        for i in 0..<n {
            let real = 0.03 * Double(Int32(a[i]) + 5) + 0.05 * Double(Int32(b[i]) - 17)
            XCTAssertEqual(Double(out[i]), min(max(real / 0.07 + 3, -128), 127), accuracy: 0.501, "seed \(s) add \(i)")
        }
        // Gate: 1 keeps values, 0 sends them to the zero point, 0.5 halves the distance (rounded half up).
        var map: [Int8] = [-128, -7, 0, 9, 127, 127]
        let gate: [Int32] = [32768, 0, 16384, 16384, 16384, 32768]
        map.withUnsafeMutableBufferPointer { m in gate.withUnsafeBufferPointer { g in
            s8_gate_q15_reference(map: m, pixels: 1, channels: 6, zeroPoint: -8, gate: g) } }
        XCTAssertEqual(map, [-128, -8, -4, 1, 60, 127])
        // Global average pool of a constant map returns the constant (same scales and zero points).
        let c = 5, px = 13
        let x = [Int8](repeating: 42, count: c * px)
        var pooled = [Int8](repeating: 0, count: c), sums = [Int32](repeating: 0, count: c)
        x.withUnsafeBufferPointer { xi in sums.withUnsafeMutableBufferPointer { si in pooled.withUnsafeMutableBufferPointer {
            s8_global_average_pool_reference(input: xi, pixels: px, channels: c, inputZeroPoint: -3,
                                             multiplier: S8Multiplier(1 / Double(px)), outputZeroPoint: -3, sums: si, output: $0)
        } } }
        XCTAssertEqual(pooled, [Int8](repeating: 42, count: c))
        // Identity table is the identity; hardswish table hits 0 at the zero point.
        let identity = s8_make_lut(inputScale: 0.1, inputZeroPoint: 4, outputScale: 0.1, outputZeroPoint: 4) { $0 }
        XCTAssertEqual(identity, (0..<256).map { Int8($0 - 128) })
        var d: [Int8] = [-128, 0, 127]
        identity.withUnsafeBufferPointer { t in d.withUnsafeMutableBufferPointer { s8_lut_reference(data: $0, count: 3, table: t) } }
        XCTAssertEqual(d, [-128, 0, 127])
    }
}

/// Vectorized int8 kernels held bit-exact to their references.
final class Int8VectorKernelTests: XCTestCase {
    func testConv1x1Simd16x2BitExact() {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRNG(state: seed)
        for cin in [1, 3, 8, 15, 16, 17, 40] {
            for cout in [1, 7, 15, 16, 17, 33, 48] {
                let pixels = Int.random(in: 1...11, using: &rng)
                let x = rng.int8s(pixels * cin), w = rng.weights(cin * cout)
                let bias = (0..<cout).map { _ in Int32.random(in: -(1 << 20)...(1 << 20), using: &rng) }
                let zp = Int32.random(in: -128...127, using: &rng)
                let rq = S8Requant(multipliers: (0..<cout).map { _ in S8Multiplier(Double.random(in: 1e-5...1e-2, using: &rng)) },
                                   zeroPoint: zp, lo: Bool.random(using: &rng) ? zp : -128, hi: 127)
                var packed = [Int16](repeating: 0, count: s8_packed_conv1x1_16_count(cin: cin, cout: cout))
                var ref = [Int8](repeating: 0, count: pixels * cout), vec = [Int8](repeating: 1, count: pixels * cout)
                x.withUnsafeBufferPointer { xi in w.withUnsafeBufferPointer { wi in bias.withUnsafeBufferPointer { bi in
                    packed.withUnsafeMutableBufferPointer { s8_pack_conv1x1_16(weights: wi, cin: cin, cout: cout, packed: $0) }
                    ref.withUnsafeMutableBufferPointer {
                        s8_conv1x1_reference(input: xi, pixels: pixels, cin: cin, weights: wi, bias: bi, cout: cout,
                                             requant: rq, output: $0)
                    }
                    packed.withUnsafeBufferPointer { pk in vec.withUnsafeMutableBufferPointer {
                        s8_conv1x1_simd16x2(input: xi, pixels: pixels, cin: cin, packed: pk, bias: bi, cout: cout,
                                            requant: rq, output: $0)
                    } }
                } } }
                XCTAssertEqual(ref, vec, "seed \(seed) cin \(cin) cout \(cout) pixels \(pixels)")
            }
        }
    }

    func testDepthwiseSimd16BitExact() {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRNG(state: seed)
        for c in [1, 5, 15, 16, 17, 33] {
            for (k, st, d) in [(3, 1, 1), (3, 2, 1), (5, 1, 1), (5, 2, 1), (3, 1, 2), (5, 1, 2)] {
                let h = Int.random(in: 1...9, using: &rng), w = Int.random(in: 1...9, using: &rng)
                let x = rng.int8s(h * w * c), wt = rng.weights(k * k * c)
                let zp = Int32.random(in: -128...127, using: &rng), zo = Int32.random(in: -128...127, using: &rng)
                let bias = (0..<c).map { _ in Int32.random(in: -(1 << 20)...(1 << 20), using: &rng) }
                let rq = S8Requant(multipliers: (0..<c).map { _ in S8Multiplier(Double.random(in: 1e-5...1e-2, using: &rng)) },
                                   zeroPoint: zo, lo: Bool.random(using: &rng) ? zo : -128, hi: 127)
                let ho = f32_conv_out_size(h, kernel: k, stride: st, dilation: d)
                let wo = f32_conv_out_size(w, kernel: k, stride: st, dilation: d)
                let pitch = s8_dw_pitch(c)
                var packed = [Int16](repeating: 0, count: k * k * pitch), centered = [Int16](repeating: 7, count: h * w * pitch)
                var ref = [Int8](repeating: 0, count: ho * wo * c), vec = [Int8](repeating: 1, count: ho * wo * c)
                x.withUnsafeBufferPointer { xi in wt.withUnsafeBufferPointer { wi in bias.withUnsafeBufferPointer { bi in
                    packed.withUnsafeMutableBufferPointer { s8_pack_dwconv(weights: wi, channels: c, kernel: k, packed: $0) }
                    centered.withUnsafeMutableBufferPointer {
                        s8_center_int16(input: xi, pixels: h * w, channels: c, zeroPoint: zp, centered: $0)
                    }
                    ref.withUnsafeMutableBufferPointer {
                        s8_dwconv_reference(input: xi, height: h, width: w, channels: c, inputZeroPoint: zp, weights: wi,
                                            bias: bi, kernel: k, stride: st, dilation: d, requant: rq, output: $0, rows: 0..<ho)
                    }
                    packed.withUnsafeBufferPointer { pk in centered.withUnsafeBufferPointer { ce in vec.withUnsafeMutableBufferPointer {
                        s8_dwconv_simd16(centered: ce, height: h, width: w, channels: c, packed: pk, bias: bi, kernel: k,
                                         stride: st, dilation: d, requant: rq, output: $0, rows: 0..<ho)
                    } } }
                } } }
                XCTAssertEqual(ref, vec, "seed \(seed) c\(c) k\(k) s\(st) d\(d) \(h)x\(w)")
            }
        }
    }
}
