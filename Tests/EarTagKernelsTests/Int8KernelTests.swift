// The int8 kernels: scalar references against their real-valued meaning (each output within half an output step,
// plus float rounding, of the exact real result), and every vectorized kernel held bit-exact to its reference over
// random edge shapes (channels below, at and above the 16-lane width, pixel tails, stride 2, odd sizes). Seeds are
// printed in every failure message.
import XCTest
import EarTagKernels
import EarTagTestSupport

/// Random int8 helpers.
extension SeededRNG {
    /// `n` int8 values uniform in -128...127.
    mutating func int8s(_ n: Int) -> [Int8] { (0..<n).map { _ in Int8.random(in: -128...127, using: &self) } }
    /// `n` weights uniform in -limit...limit (127 for 8-bit layers, 2047 for 12-bit ones).
    mutating func weights(_ n: Int, limit: Int16 = 127) -> [Int16] {
        (0..<n).map { _ in Int16.random(in: -limit...limit, using: &self) }
    }
    /// A random epilogue for `c` channels: biases up to `biasRange`, scales giving outputs around the int8 range.
    mutating func epilogue(_ c: Int, biasRange: Int32 = 1 << 20, residual: Bool = false,
                           unit: ClosedRange<Float> = 1e-5...1e-3) -> S8Epilogue {
        let acts: [S8Activation] = [.none, .relu, .hardswish]
        return S8Epilogue(bias: (0..<c).map { _ in Int32.random(in: -biasRange...biasRange, using: &self) },
                          scale: (0..<c).map { _ in Float.random(in: unit, using: &self) },
                          activation: acts[Int.random(in: 0...2, using: &self)],
                          outputScale: Float.random(in: 0.005...0.05, using: &self),
                          outputZeroPoint: Int32.random(in: -128...127, using: &self),
                          residualScale: residual ? Float.random(in: 0.01...0.1, using: &self) : 0,
                          residualZeroPoint: Int32.random(in: -128...127, using: &self))
    }
}

/// Runs `body` with buffer pointers of three arrays (input-like, weight-like, output).
func withBuffers<A, B, C>(_ a: [A], _ b: [B], _ c: inout [C],
                          _ body: (UnsafeBufferPointer<A>, UnsafeBufferPointer<B>, UnsafeMutableBufferPointer<C>) -> Void) {
    a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { body(pa, pb, $0) } } }
}

final class Int8KernelTests: XCTestCase {
    /// A fresh seed.
    func seed() -> UInt64 { UInt64.random(in: 0...UInt64.max) }

    func testRoundingIsToNearestEvenAndClamps() {
        XCTAssertEqual(s8_round(0.5, zeroPoint: 0), 0)
        XCTAssertEqual(s8_round(1.5, zeroPoint: 0), 2)
        XCTAssertEqual(s8_round(2.5, zeroPoint: 0), 2)
        XCTAssertEqual(s8_round(-0.5, zeroPoint: 0), 0)
        XCTAssertEqual(s8_round(-1.5, zeroPoint: 0), -2)
        XCTAssertEqual(s8_round(2.4999, zeroPoint: 3), 5)
        XCTAssertEqual(s8_round(1e9, zeroPoint: -5), 127)
        XCTAssertEqual(s8_round(-1e9, zeroPoint: 100), -128)
        XCTAssertEqual(s8_round(-300, zeroPoint: 127), -128)
        var rng = SeededRNG(state: seed())
        let s = rng.state
        for _ in 0..<10000 {
            let y = Float.random(in: -400...400, using: &rng), zp = Int32.random(in: -128...127, using: &rng)
            let expected = min(max(y.rounded(.toNearestOrEven) + Float(zp), -128), 127)
            XCTAssertEqual(Float(s8_round(y, zeroPoint: zp)), expected, "seed \(s) y \(y) zp \(zp)")
        }
    }

    func testEpilogueMeansItsRealValue() {
        var rng = SeededRNG(state: seed())
        let s = rng.state
        for _ in 0..<3000 {
            var e = rng.epilogue(1, residual: true)
            e.activation = [.none, .relu, .hardswish][Int.random(in: 0...2, using: &rng)]
            let acc = Int32.random(in: -(1 << 22)...(1 << 22), using: &rng), r = Int8.random(in: -128...127, using: &rng)
            let hasResidual = Bool.random(using: &rng)
            var y = (Double(acc) + Double(e.bias[0])) * Double(e.scale[0])
            switch e.activation {
            case .none: break
            case .relu: y = max(y, 0)
            case .hardswish: y = y * min(max(y + 3, 0), 6) / 6
            }
            if hasResidual { y += Double(e.residualScale) * Double(Int32(r) - e.residualZeroPoint) }
            let q = y * Double(e.inverseOutputScale) + Double(e.zeroPoint)
            let got = Double(e.apply(acc, channel: 0, residual: r, hasResidual: hasResidual))
            XCTAssertEqual(got, min(max(q, -128), 127), accuracy: 0.5 + 1e-5 * abs(q) + 1e-4, "seed \(s)")
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
            let e = S8Epilogue(bias: bias, scale: sw.map { Float(sin * $0) }, activation: .none, outputScale: Float(sout),
                               outputZeroPoint: zout)
            var out = [Int8](repeating: 0, count: pixels * cout)
            withBuffers(x, w, &out) { xi, wi, o in
                s8_conv1x1_reference(input: xi, pixels: pixels, cin: cin, weights: wi, cout: cout, epilogue: e, output: o)
            }
            for p in 0..<pixels {
                for c in 0..<cout {
                    var real = realBias[c]
                    for i in 0..<cin { real += sin * Double(Int32(x[p * cin + i]) - zin) * sw[c] * Double(w[c * cin + i]) }
                    let expected = min(max(real / sout + Double(zout), -128), 127)
                    XCTAssertEqual(Double(out[p * cout + c]), expected, accuracy: 0.51 + 1e-5 * abs(real / sout),
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
                let e = rng.epilogue(c, biasRange: 5000)
                let ho = f32_conv_out_size(h, kernel: k, stride: stride, dilation: 1)
                let wo = f32_conv_out_size(w, kernel: k, stride: stride, dilation: 1)
                var out = [Int8](repeating: 0, count: ho * wo * c)
                withBuffers(x, wt, &out) { xi, wi, o in
                    s8_dwconv_reference(input: xi, height: h, width: w, channels: c, inputZeroPoint: zin, weights: wi,
                                        kernel: k, stride: stride, dilation: 1, epilogue: e, output: o, rows: 0..<ho)
                }
                // Same map zero-padded by hand with the zero point: every tap then exists.
                let pad = (k - 1) / 2, hp = h + 2 * pad, wp = w + 2 * pad
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        for ch in 0..<c {
                            var acc: Int32 = 0
                            for ky in 0..<k {
                                for kx in 0..<k {
                                    let iy = oy * stride + ky, ix = ox * stride + kx
                                    let inside = iy >= pad && iy < hp - pad && ix >= pad && ix < wp - pad
                                    let v = inside ? Int32(x[((iy - pad) * w + ix - pad) * c + ch]) : zin
                                    acc += (v - zin) * Int32(wt[(ky * k + kx) * c + ch])
                                }
                            }
                            XCTAssertEqual(out[(oy * wo + ox) * c + ch], e.apply(acc, channel: ch), "seed \(s) k\(k) s\(stride)")
                        }
                    }
                }
            }
        }
    }

    func testGateAndPool() {
        // Gate: 1 keeps values, 0 sends them to the zero point, 0.5 halves the distance (ties to even); a new output
        // zero point shifts the result; results clamp to int8.
        var map: [Int8] = [-128, -7, 0, 9, 127, 127]
        let gate: [Float] = [1, 0, 0.5, 0.5, 0.5, 1]
        map.withUnsafeMutableBufferPointer { m in gate.withUnsafeBufferPointer { g in
            s8_gate_reference(map: m, pixels: 1, channels: 6, inputZeroPoint: -8, multiplier: g, outputZeroPoint: -8) } }
        XCTAssertEqual(map, [-128, -8, -4, 0, 60, 127])
        var map2: [Int8] = [10, 10]
        let twice: [Float] = [2, 20]
        map2.withUnsafeMutableBufferPointer { m in twice.withUnsafeBufferPointer { g in
            s8_gate_reference(map: m, pixels: 1, channels: 2, inputZeroPoint: 0, multiplier: g, outputZeroPoint: 3) } }
        XCTAssertEqual(map2, [23, 127])
        // Global average pool of a constant map returns the constant (same scales and zero points).
        let c = 5, px = 13
        let x = [Int8](repeating: 42, count: c * px)
        var pooled = [Int8](repeating: 0, count: c), sums = [Int32](repeating: 0, count: c)
        x.withUnsafeBufferPointer { xi in sums.withUnsafeMutableBufferPointer { s8_channel_sums_reference(input: xi, pixels: px, channels: c, sums: $0) } }
        XCTAssertEqual(sums, [Int32](repeating: 42 * 13, count: c))
        sums.withUnsafeBufferPointer { si in pooled.withUnsafeMutableBufferPointer {
            s8_pool_requantize(sums: si, pixels: px, channels: c, inputZeroPoint: -3, multiplier: 1 / Float(px),
                               outputZeroPoint: -3, output: $0)
        } }
        XCTAssertEqual(pooled, [Int8](repeating: 42, count: c))
    }
}

/// Vectorized int8 kernels held bit-exact to their references.
final class Int8VectorKernelTests: XCTestCase {
    func testConv1x1_8x16BitExact() {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRNG(state: seed)
        for cin in [1, 3, 8, 15, 16, 17, 40, 97] {
            for cout in [1, 7, 8, 15, 16, 17, 24, 33, 48] {
                let pixels = Int.random(in: 1...19, using: &rng), residual = Bool.random(using: &rng)
                // 12-bit weights where the float sums stay exact (cin <= 64), else 8-bit.
                let limit: Int16 = cin <= 64 && Bool.random(using: &rng) ? 2047 : 127
                let x = rng.int8s(pixels * cin), w = rng.weights(cin * cout, limit: limit), r = rng.int8s(pixels * cout)
                let e = rng.epilogue(cout, biasRange: 1 << 30, residual: residual)
                var packed = [Float](repeating: 0, count: s8_packed_conv1x1_16_count(cin: cin, cout: cout))
                var scratch = [Float](repeating: 0, count: s8_conv1x1_scratch_count(cin: cin))
                var ref = [Int8](repeating: 0, count: pixels * cout), vec = [Int8](repeating: 1, count: pixels * cout)
                r.withUnsafeBufferPointer { ri in
                    withBuffers(x, w, &ref) { xi, wi, o in
                        packed.withUnsafeMutableBufferPointer { s8_pack_conv1x1_16(weights: wi, cin: cin, cout: cout, packed: $0) }
                        s8_conv1x1_reference(input: xi, pixels: pixels, cin: cin, weights: wi, cout: cout, epilogue: e,
                                             residual: residual ? ri : nil, output: o)
                    }
                    withBuffers(x, packed, &vec) { xi, pk, o in
                        scratch.withUnsafeMutableBufferPointer {
                            s8_conv1x1_8x16_simd(input: xi, pixels: pixels, cin: cin, packed: pk, cout: cout, epilogue: e,
                                                 residual: residual ? ri : nil, scratch: $0, output: o)
                        }
                    }
                }
                XCTAssertEqual(ref, vec, "seed \(seed) cin \(cin) cout \(cout) pixels \(pixels) residual \(residual) |w| <= \(limit)")
            }
        }
    }

    func testConv1x1AtTheExactFloatLimit() {
        // cin = 1032 with every product at its extreme: the float sums stay exact (|sum| < 2^24).
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRNG(state: seed)
        let cin = s8FloatExactMaxK, cout = 17, pixels = 9
        let x = (0..<(pixels * cin)).map { _ in Bool.random(using: &rng) ? Int8(-128) : Int8(127) }
        let w = (0..<(cout * cin)).map { _ in Bool.random(using: &rng) ? Int16(-127) : Int16(127) }
        let e = rng.epilogue(cout, biasRange: 1 << 30, unit: 1e-7...1e-5)
        var packed = [Float](repeating: 0, count: s8_packed_conv1x1_16_count(cin: cin, cout: cout))
        var scratch = [Float](repeating: 0, count: s8_conv1x1_scratch_count(cin: cin))
        var ref = [Int8](repeating: 0, count: pixels * cout), vec = ref
        withBuffers(x, w, &ref) { xi, wi, o in
            packed.withUnsafeMutableBufferPointer { s8_pack_conv1x1_16(weights: wi, cin: cin, cout: cout, packed: $0) }
            s8_conv1x1_reference(input: xi, pixels: pixels, cin: cin, weights: wi, cout: cout, epilogue: e, output: o)
        }
        withBuffers(x, packed, &vec) { xi, pk, o in
            scratch.withUnsafeMutableBufferPointer {
                s8_conv1x1_8x16_simd(input: xi, pixels: pixels, cin: cin, packed: pk, cout: cout, epilogue: e, scratch: $0, output: o)
            }
        }
        XCTAssertEqual(ref, vec, "seed \(seed)")
    }

    func testDepthwise4x16BitExact() {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRNG(state: seed)
        for c in [1, 5, 8, 15, 16, 17, 33] {
            for (k, st, d) in [(3, 1, 1), (3, 2, 1), (5, 1, 1), (5, 2, 1), (3, 1, 2), (5, 1, 2)] {
                let h = Int.random(in: 1...9, using: &rng), w = Int.random(in: 1...23, using: &rng)
                let x = rng.int8s(h * w * c), wt = rng.weights(k * k * c, limit: 2047)
                let zp = Int32.random(in: -128...127, using: &rng)
                let e = rng.epilogue(c, biasRange: 1 << 30, unit: 1e-6...1e-4)
                let ho = f32_conv_out_size(h, kernel: k, stride: st, dilation: d)
                let wo = f32_conv_out_size(w, kernel: k, stride: st, dilation: d)
                let pitch = s8_dw_pitch(c)
                var packed = [Float](repeating: 0, count: k * k * pitch), centered = [Float](repeating: 7, count: h * w * pitch)
                var ref = [Int8](repeating: 0, count: ho * wo * c), vec = [Int8](repeating: 1, count: ho * wo * c)
                withBuffers(x, wt, &ref) { xi, wi, o in
                    packed.withUnsafeMutableBufferPointer { s8_pack_dwconv(weights: wi, channels: c, kernel: k, packed: $0) }
                    centered.withUnsafeMutableBufferPointer {
                        s8_center_f32(input: xi, pixels: h * w, channels: c, zeroPoint: zp, centered: $0)
                    }
                    s8_dwconv_reference(input: xi, height: h, width: w, channels: c, inputZeroPoint: zp, weights: wi,
                                        kernel: k, stride: st, dilation: d, epilogue: e, output: o, rows: 0..<ho)
                }
                withBuffers(centered, packed, &vec) { ce, pk, o in
                    s8_dwconv_4x16_simd(centered: ce, height: h, width: w, channels: c, packed: pk, kernel: k, stride: st,
                                      dilation: d, epilogue: e, output: o, rows: 0..<ho)
                }
                XCTAssertEqual(ref, vec, "seed \(seed) c\(c) k\(k) s\(st) d\(d) \(h)x\(w)")
                // Band by band, each band's input rows centered alone at the start of the buffer (as Int8Engine runs it).
                var banded = [Int8](repeating: 1, count: ho * wo * c), band = [Float](repeating: 7, count: h * w * pitch)
                var r0 = 0
                while r0 < ho {
                    let rows = r0..<min(ho, r0 + Int.random(in: 1...3, using: &rng))
                    let inRows = s8_dw_input_rows(rows, height: h, kernel: k, stride: st, dilation: d)
                    x.withUnsafeBufferPointer { xi in
                        band.withUnsafeMutableBufferPointer {
                            s8_center_f32(input: UnsafeBufferPointer(rebasing: xi[(inRows.lowerBound * w * c)...]),
                                          pixels: inRows.count * w, channels: c, zeroPoint: zp,
                                          centered: UnsafeMutableBufferPointer(rebasing: $0[0..<(inRows.count * w * pitch)]))
                        }
                    }
                    band.withUnsafeBufferPointer { ce in
                        withBuffers([Float](ce[0..<(inRows.count * w * pitch)]), packed, &banded) { ce, pk, o in
                            s8_dwconv_4x16_simd(centered: ce, height: h, width: w, channels: c, packed: pk, kernel: k,
                                                stride: st, dilation: d, epilogue: e, output: o, rows: rows,
                                                centeredFirstRow: inRows.lowerBound)
                        }
                    }
                    r0 = rows.upperBound
                }
                XCTAssertEqual(ref, banded, "bands: seed \(seed) c\(c) k\(k) s\(st) d\(d) \(h)x\(w)")
            }
        }
    }

    func testStem16BitExact() {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRNG(state: seed)
        for cout in [1, 8, 15, 16, 17, 24] {
            for (h, w) in [(1, 1), (2, 3), (7, 9), (8, 8), (13, 11)] {
                let x = rng.int8s(h * w), wt = rng.weights(9 * cout, limit: 2047), zp = Int32.random(in: -128...127, using: &rng)
                let e = rng.epilogue(cout, biasRange: 1 << 30)
                let ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1
                var packed = [Float](repeating: 0, count: 9 * s8_dw_pitch(cout)), centered = [Float](repeating: 0, count: h * w)
                var ref = [Int8](repeating: 0, count: ho * wo * cout), vec = [Int8](repeating: 1, count: ho * wo * cout)
                withBuffers(x, wt, &ref) { xi, wi, o in
                    packed.withUnsafeMutableBufferPointer { s8_pack_dwconv(weights: wi, channels: cout, kernel: 3, packed: $0) }
                    centered.withUnsafeMutableBufferPointer { s8_center_plane_f32(input: xi, count: h * w, zeroPoint: zp, centered: $0) }
                    s8_stem3x3s2_reference(input: xi, height: h, width: w, inputZeroPoint: zp, weights: wi, cout: cout,
                                           epilogue: e, output: o)
                }
                withBuffers(centered, packed, &vec) { ce, pk, o in
                    s8_stem3x3s2_16_simd(centered: ce, height: h, width: w, packed: pk, cout: cout, epilogue: e, output: o)
                }
                XCTAssertEqual(ref, vec, "seed \(seed) cout \(cout) \(h)x\(w)")
            }
        }
    }

    func testQuantizeSumsGateAndLinearBitExact() {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRNG(state: seed)
        for n in [1, 15, 16, 17, 100] {
            // Values on exact ties and far outside the range included.
            let scale: Float = 0.0625, zp = Int32.random(in: -128...127, using: &rng)
            let x = (0..<n).map { i in i % 3 == 0 ? (Float(Int.random(in: -300...300, using: &rng)) + 0.5) * scale
                                                  : Float.random(in: -20...20, using: &rng) }
            var a = [Int8](repeating: 0, count: n), b = [Int8](repeating: 1, count: n)
            x.withUnsafeBufferPointer { xi in
                a.withUnsafeMutableBufferPointer { s8_quantize_reference(input: xi, count: n, scale: scale, zeroPoint: zp, output: $0) }
                b.withUnsafeMutableBufferPointer { s8_quantize_16_simd(input: xi, count: n, scale: scale, zeroPoint: zp, output: $0) }
            }
            XCTAssertEqual(a, b, "seed \(seed) quantize n \(n)")
        }
        for c in [1, 8, 15, 16, 17, 40] {
            let pixels = Int.random(in: 1...20, using: &rng), x = rng.int8s(pixels * c)
            var s1 = [Int32](repeating: 0, count: c), s2 = [Int32](repeating: 5, count: c)
            x.withUnsafeBufferPointer { xi in
                s1.withUnsafeMutableBufferPointer { s8_channel_sums_reference(input: xi, pixels: pixels, channels: c, sums: $0) }
                s2.withUnsafeMutableBufferPointer { s8_channel_sums_16_simd(input: xi, pixels: pixels, channels: c, sums: $0) }
            }
            XCTAssertEqual(s1, s2, "seed \(seed) sums c \(c)")
            let gate = (0..<c).map { _ in Float.random(in: 0...3, using: &rng) }
            let zp = Int32.random(in: -128...127, using: &rng), zo = Int32.random(in: -128...127, using: &rng)
            var m1 = x, m2 = x
            gate.withUnsafeBufferPointer { g in
                m1.withUnsafeMutableBufferPointer {
                    s8_gate_reference(map: $0, pixels: pixels, channels: c, inputZeroPoint: zp, multiplier: g, outputZeroPoint: zo)
                }
                m2.withUnsafeMutableBufferPointer {
                    s8_gate_16_simd(map: $0, pixels: pixels, channels: c, inputZeroPoint: zp, multiplier: g, outputZeroPoint: zo)
                }
            }
            XCTAssertEqual(m1, m2, "seed \(seed) gate c \(c)")
        }
        for (nin, nout) in [(1, 1), (16, 7), (17, 33), (512, 527)] {
            let x = rng.int8s(nin), w = rng.weights(nin * nout)
            let bias = (0..<nout).map { _ in Int32.random(in: -(1 << 30)...(1 << 30), using: &rng) }
            let scales = (0..<nout).map { _ in Float.random(in: 1e-5...1e-3, using: &rng) }
            let biasF = bias.map { Float($0) }
            var packed = [Float](repeating: 0, count: s8_packed_conv1x1_16_count(cin: nin, cout: nout))
            var scratch = [Float](repeating: 0, count: nin)
            var ref = [Float](repeating: 0, count: nout), vec = [Float](repeating: 1, count: nout)
            withBuffers(x, w, &ref) { xi, wi, o in
                packed.withUnsafeMutableBufferPointer { s8_pack_conv1x1_16(weights: wi, cin: nin, cout: nout, packed: $0) }
                biasF.withUnsafeBufferPointer { bi in scales.withUnsafeBufferPointer { si in
                    s8_linear_dequantize_reference(input: xi, nin: nin, weights: wi, biasF: bi, nout: nout, scales: si, output: o)
                } }
            }
            withBuffers(x, packed, &vec) { xi, pk, o in
                biasF.withUnsafeBufferPointer { bi in scales.withUnsafeBufferPointer { si in scratch.withUnsafeMutableBufferPointer {
                    s8_linear_dequantize_16_simd(input: xi, nin: nin, packed: pk, biasF: bi, nout: nout, scales: si,
                                                 scratch: $0, output: o)
                } } }
            }
            XCTAssertEqual(ref, vec, "seed \(seed) linear \(nin)x\(nout)")
        }
    }
}
