// The kernels around a 16-bit stem output (the last section of EarTagKernelsNarrow/Int8Narrow.swift) held bit-exact
// to their scalar references over random and edge shapes (widths and heights 1, 2, 3, odd, 8-pixel tile tails;
// stride 1 and 2; dilation 2; bands of rows; cin 1-64; pixel tails) and extreme values (inputs, residuals and zero
// points at the ends of their ranges, weights +-2047, output scales that make the clamps bite), every activation; and
// `s16_round` against a plain Double formula. Seeds are printed.
import XCTest
import EarTagKernels
import EarTagKernelsNarrow
import EarTagTestSupport

/// Bit-exactness of `s16_stem3x3s2_c8_simd`, `s16_dwconv_c8n_8x8_i32`, `s8_conv1x1_c8n_8x8_res16_simd`, and
/// `s16_round`'s rounding and clamping.
final class Int16StemKernelTests: XCTestCase {
    /// The three activations, each tested on every shape.
    let activations: [S8Activation] = [.none, .relu, .hardswish]

    /// An epilogue for `c` channels with activation `act`: biases up to `biasRange`, accumulator units in `unit`,
    /// the given output scale and zero point, residual quantization `residual` (scale, zero point) when given.
    func epilogue(_ rng: inout SeededRNG, _ c: Int, _ act: S8Activation, biasRange: Int32, unit: ClosedRange<Float>,
                  outputScale: Float, outputZeroPoint: Int32, residual: (Float, Int32) = (0, 0)) -> S8Epilogue {
        S8Epilogue(bias: (0..<c).map { _ in Int32.random(in: -biasRange...biasRange, using: &rng) },
                   scale: (0..<c).map { _ in Float.random(in: unit, using: &rng) }, activation: act,
                   outputScale: outputScale, outputZeroPoint: outputZeroPoint,
                   residualScale: residual.0, residualZeroPoint: residual.1)
    }

    /// `n` int16 values, uniform or (when `extreme`) at the two ends of the range.
    func int16s(_ rng: inout SeededRNG, _ n: Int, extreme: Bool) -> [Int16] {
        (0..<n).map { _ in extreme ? (Bool.random(using: &rng) ? Int16.min : Int16.max) : Int16.random(in: .min ... .max, using: &rng) }
    }

    /// `s16_round` equals clamp(roundToNearestEven(y), -32768 - zp, 32767 - zp) + zp computed in Double, at the
    /// bounds, on halves (ties to even) and on random values, for zero points at the ends and in between.
    func testRoundMatchesDoubleFormula() {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRNG(state: seed)
        var zps: [Int32] = [-32768, -32767, -1, 0, 1, 127, 32766, 32767]
        zps += (0..<8).map { _ in Int32.random(in: -32768...32767, using: &rng) }
        for zp in zps {
            let lo = Double(-32768 - zp), hi = Double(32767 - zp)
            var ys: [Float] = [0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 1e9, -1e9, .infinity, -.infinity]
            for b in [lo, hi] { for d in [-1.5, -1, -0.5, -0.25, 0, 0.25, 0.5, 1, 1.5, 1000] { ys.append(Float(b + d)) } }
            ys += (0..<2000).map { _ in Float.random(in: -70_000...70_000, using: &rng) }
            ys += (0..<2000).map { _ in Float(Int.random(in: -70_000...70_000, using: &rng)) + 0.5 }
            for y in ys {
                let expected = Int(min(max(Double(y).rounded(.toNearestOrEven), lo), hi)) + Int(zp)
                XCTAssertEqual(Int(s16_round(y, zeroPoint: zp)), expected, "seed \(seed) y \(y) zp \(zp)")
            }
        }
        XCTAssertEqual(s16_round(2.5, zeroPoint: 0), 2)
        XCTAssertEqual(s16_round(-3.5, zeroPoint: 0), -4)
        XCTAssertEqual(s16_round(40_000, zeroPoint: -32768), 7232)
        XCTAssertEqual(s16_round(70_000, zeroPoint: -32768), Int16.max)
        XCTAssertEqual(s16_round(-70_000, zeroPoint: 32767), Int16.min)
    }

    /// The int16-output stem equals `s16_stem3x3s2_reference` on 1x1 to 64x40 planes, random and extreme values,
    /// every activation; the extreme cases saturate at both int16 ends.
    func testStemC8To16BitExact() {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRNG(state: seed)
        let sizes = [(1, 1), (1, 2), (2, 1), (2, 3), (3, 3), (3, 2), (7, 9), (8, 8), (13, 11), (5, 17), (3, 35), (64, 40)]
        var seen = Set<Int16>(), ends = Set<Int16>()
        for act in activations {
            for (h, w) in sizes {
                for extreme in [false, true] {
                    let x = extreme ? (0..<(h * w)).map { _ in Bool.random(using: &rng) ? Int8.min : Int8.max } : rng.int8s(h * w)
                    let wt = extreme ? (0..<72).map { _ in Bool.random(using: &rng) ? Int16(-2047) : 2047 } : rng.weights(72, limit: 2047)
                    let zp: Int32 = extreme ? (Bool.random(using: &rng) ? 127 : -128) : Int32.random(in: -128...127, using: &rng)
                    // |sum| <= 9 * 255 * 2047 = 4.7e6; units 1e-6...1e-5 give |y| up to ~47. Random: output steps of
                    // 1e-3 reach tens of thousands (the clamp bites on the largest); extreme: steps of 1e-5 and the
                    // output zero point at an end saturate both int16 ends.
                    let ozp: Int32 = extreme ? (Bool.random(using: &rng) ? 32767 : -32768) : Int32.random(in: -32768...32767, using: &rng)
                    let e = epilogue(&rng, 8, act, biasRange: extreme ? 1 << 30 : 1 << 20, unit: 1e-6...1e-5,
                                     outputScale: extreme ? 1e-5 : Float.random(in: 2e-4...2e-3, using: &rng), outputZeroPoint: ozp)
                    let ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1
                    var packed = [Float](repeating: 0, count: 9 * 16), centered = [Float](repeating: 0, count: h * w)
                    var ref = [Int16](repeating: 0, count: ho * wo * 8), vec = [Int16](repeating: 1, count: ho * wo * 8)
                    withBuffers(x, wt, &ref) { xi, wi, o in
                        packed.withUnsafeMutableBufferPointer { s8_pack_dwconv(weights: wi, channels: 8, kernel: 3, packed: $0) }
                        centered.withUnsafeMutableBufferPointer { s8_center_plane_f32(input: xi, count: h * w, zeroPoint: zp, centered: $0) }
                        s16_stem3x3s2_reference(input: xi, height: h, width: w, inputZeroPoint: zp, weights: wi, cout: 8,
                                                epilogue: e, output: o)
                    }
                    withBuffers(centered, packed, &vec) { ce, pk, o in
                        s16_stem3x3s2_c8_simd(centered: ce, height: h, width: w, packed: pk, epilogue: e, output: o)
                    }
                    XCTAssertEqual(ref, vec, "seed \(seed) \(h)x\(w) extreme \(extreme) act \(act)")
                    if extreme { ends.formUnion(vec.filter { $0 == .min || $0 == .max }) } else { seen.formUnion(vec) }
                }
            }
        }
        // The comparisons mean something only if the outputs are spread and the clamps were reached.
        XCTAssertGreaterThan(seen.count, 1000, "seed \(seed): too few distinct outputs")
        XCTAssertEqual(ends, [Int16.min, Int16.max], "seed \(seed): the extreme cases did not reach both int16 ends")
    }

    /// The int32-lane depthwise on an int16 map equals `s16_dwconv_reference` for 8-40 channels, 3x3 stride 1 and 2,
    /// dilation 2 (and 5x5 with weights inside the exact-sum bound), whole maps and bands of rows, every activation.
    func testDepthwiseI32BitExact() {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRNG(state: seed)
        // (kernel, stride, dilation, weight limit): 3x3 with 12-bit weights; 5x5 needs 25 * 65535 * |w| < 2^31.
        let shapes: [(Int, Int, Int, Int16)] = [(3, 1, 1, 2047), (3, 2, 1, 2047), (3, 1, 2, 2047), (5, 1, 1, 1300)]
        var seen = Set<Int8>()
        for (ci, c) in [8, 16, 24, 40].enumerated() {
            for (si, (k, st, d, limit)) in shapes.enumerated() {
                var sizes = [(1, 1), (1, 2), (2, 3), (3, 3), (3, 1), (4, 5), (6, 7), (5, 8), (9, 13), (2, 21)]
                sizes += (0..<3).map { _ in (Int.random(in: 1...9, using: &rng), Int.random(in: 1...31, using: &rng)) }
                for (zi, (h, w)) in sizes.enumerated() {
                    let act = activations[(ci + si + zi) % 3]
                    for extreme in [false, true] {
                        XCTAssertTrue(s16_dw_sums_exact(kernel: k, maxWeight: Int(limit)))
                        let x = int16s(&rng, h * w * c, extreme: extreme)
                        let wt = extreme ? (0..<(k * k * c)).map { _ in Bool.random(using: &rng) ? -limit : limit }
                                         : rng.weights(k * k * c, limit: limit)
                        let zp: Int32 = extreme ? (Bool.random(using: &rng) ? 32767 : -32768) : Int32.random(in: -32768...32767, using: &rng)
                        // Random sums ~ 3 * 3e4 * 1e3 = 1e8 (extreme up to 1.2e9): units 1e-9...1e-8 give |y| ~ 1
                        // (hardswish's bend), output steps 0.005...0.05 tens to hundreds of int8 steps.
                        let e = epilogue(&rng, c, act, biasRange: 1 << 30, unit: 1e-9...1e-8,
                                         outputScale: Float.random(in: 0.005...0.05, using: &rng),
                                         outputZeroPoint: Int32.random(in: -128...127, using: &rng))
                        let ho = f32_conv_out_size(h, kernel: k, stride: st, dilation: d)
                        let wo = f32_conv_out_size(w, kernel: k, stride: st, dilation: d)
                        var packed = [Int32](repeating: 0, count: s16_pack_dwconv_i32_count(channels: c, kernel: k))
                        var centered = [Int32](repeating: 7, count: h * w * c)
                        var ref = [Int8](repeating: 0, count: ho * wo * c), vec = [Int8](repeating: 1, count: ho * wo * c)
                        withBuffers(x, wt, &ref) { xi, wi, o in
                            packed.withUnsafeMutableBufferPointer { s16_pack_dwconv_i32(weights: wi, channels: c, kernel: k, packed: $0) }
                            centered.withUnsafeMutableBufferPointer { s16_center_i32(input: xi, count: h * w * c, zeroPoint: zp, centered: $0) }
                            s16_dwconv_reference(input: xi, height: h, width: w, channels: c, inputZeroPoint: zp, weights: wi,
                                                 kernel: k, stride: st, dilation: d, epilogue: e, output: o, rows: 0..<ho)
                        }
                        withBuffers(centered, packed, &vec) { ce, pk, o in
                            s16_dwconv_c8n_8x8_i32(centered: ce, height: h, width: w, channels: c, packed: pk, kernel: k,
                                                   stride: st, dilation: d, epilogue: e, output: o, rows: 0..<ho)
                        }
                        let tag = "seed \(seed) c\(c) k\(k) s\(st) d\(d) \(h)x\(w) extreme \(extreme) act \(act)"
                        XCTAssertEqual(ref, vec, tag)
                        if !extreme { seen.formUnion(vec) }
                        // Band by band, each band's input rows centered alone at the start of a buffer.
                        var banded = [Int8](repeating: 1, count: ho * wo * c)
                        var r0 = 0
                        while r0 < ho {
                            let rows = r0..<min(ho, r0 + Int.random(in: 1...3, using: &rng))
                            let inRows = s8_dw_input_rows(rows, height: h, kernel: k, stride: st, dilation: d)
                            var band = [Int32](repeating: 7, count: inRows.count * w * c)
                            x.withUnsafeBufferPointer { xi in
                                band.withUnsafeMutableBufferPointer {
                                    s16_center_i32(input: UnsafeBufferPointer(rebasing: xi[(inRows.lowerBound * w * c)...]),
                                                   count: inRows.count * w * c, zeroPoint: zp, centered: $0)
                                }
                            }
                            withBuffers(band, packed, &banded) { ce, pk, o in
                                s16_dwconv_c8n_8x8_i32(centered: ce, height: h, width: w, channels: c, packed: pk, kernel: k,
                                                       stride: st, dilation: d, epilogue: e, output: o, rows: rows,
                                                       centeredFirstRow: inRows.lowerBound)
                            }
                            r0 = rows.upperBound
                        }
                        XCTAssertEqual(ref, banded, "bands: " + tag)
                    }
                }
            }
        }
        XCTAssertGreaterThan(seen.count, 64, "seed \(seed): too few distinct outputs")
    }

    /// The 8-lane 1x1 conv with an int16 residual equals `s8_conv1x1_res16_reference`: cin 1-64, cout 8/16/24, pixel
    /// tails, residuals and residual zero points at the int16 ends, every activation.
    func testConv1x1Res16BitExact() {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRNG(state: seed)
        var seen = Set<Int8>()
        for cin in [1, 3, 8, 17, 64] {
            for cout in [8, 16, 24] {
                for pixels in [1, 2, 7, 8, 9, 23] {
                    for act in activations {
                        let extreme = pixels == 9 || (pixels == 23 && act == .relu)
                        let x = extreme ? (0..<(pixels * cin)).map { _ in Bool.random(using: &rng) ? Int8.min : Int8.max }
                                        : rng.int8s(pixels * cin)
                        let wt = extreme ? (0..<(cout * cin)).map { _ in Bool.random(using: &rng) ? Int16(-2047) : 2047 }
                                         : rng.weights(cout * cin, limit: 2047)
                        let r = int16s(&rng, pixels * cout, extreme: extreme)
                        let rzp: Int32 = extreme ? (Bool.random(using: &rng) ? 32767 : -32768) : Int32.random(in: -32768...32767, using: &rng)
                        // The residual term is 1e-4...4e-3 output steps per residual step: up to ~250 steps for
                        // |r - zp_r| near 65535 (the int8 clamp bites), a few steps for small differences.
                        let os = Float.random(in: 0.005...0.05, using: &rng)
                        let e = epilogue(&rng, cout, act, biasRange: 1 << 20, unit: 1e-6...1e-5, outputScale: os,
                                         outputZeroPoint: Int32.random(in: -128...127, using: &rng),
                                         residual: (os * Float.random(in: 1e-4...4e-3, using: &rng), rzp))
                        var packed = [Float](repeating: 0, count: s8_packed_conv1x1_16_count(cin: cin, cout: cout))
                        var scratch = [Float](repeating: 9, count: s8_conv1x1_scratch_count(cin: cin))
                        var ref = [Int8](repeating: 0, count: pixels * cout), vec = [Int8](repeating: 1, count: pixels * cout)
                        withBuffers(x, wt, &ref) { xi, wi, o in
                            packed.withUnsafeMutableBufferPointer { s8_pack_conv1x1_16(weights: wi, cin: cin, cout: cout, packed: $0) }
                            r.withUnsafeBufferPointer { rp in
                                s8_conv1x1_res16_reference(input: xi, pixels: pixels, cin: cin, weights: wi, cout: cout,
                                                           epilogue: e, residual: rp, output: o)
                            }
                        }
                        withBuffers(x, packed, &vec) { xi, pk, o in
                            r.withUnsafeBufferPointer { rp in
                                scratch.withUnsafeMutableBufferPointer {
                                    s8_conv1x1_c8n_8x8_res16_simd(input: xi, pixels: pixels, cin: cin, packed: pk, cout: cout,
                                                                  epilogue: e, residual: rp, scratch: $0, output: o)
                                }
                            }
                        }
                        XCTAssertEqual(ref, vec, "seed \(seed) cin \(cin) cout \(cout) pixels \(pixels) extreme \(extreme) \(act)")
                        if !extreme { seen.formUnion(vec) }
                    }
                }
            }
        }
        XCTAssertGreaterThan(seen.count, 64, "seed \(seed): too few distinct outputs")
    }

    /// The residual really enters the result: with weights and biases zero, the output is s8_round(residualScale *
    /// (r - zp_r) / outputScale, zp), checked against a Double formula on residuals at the int16 ends.
    func testConv1x1Res16ResidualOnly() {
        let r: [Int16] = [.min, .max, 0, -1, 1, 12_345, -23_456, 100]
        let cout = 8, pixels = 1, cin = 1
        let e = S8Epilogue(bias: [Int32](repeating: 0, count: cout), scale: [Float](repeating: 1e-5, count: cout),
                           activation: .none, outputScale: 0.5, outputZeroPoint: 3, residualScale: 1.0 / 512, residualZeroPoint: -32768)
        let x: [Int8] = [77], wt = [Int16](repeating: 0, count: cout)
        var packed = [Float](repeating: 0, count: s8_packed_conv1x1_16_count(cin: cin, cout: cout))
        var scratch = [Float](repeating: 0, count: s8_conv1x1_scratch_count(cin: cin))
        var ref = [Int8](repeating: 0, count: cout), vec = [Int8](repeating: 1, count: cout)
        withBuffers(x, wt, &ref) { xi, wi, o in
            packed.withUnsafeMutableBufferPointer { s8_pack_conv1x1_16(weights: wi, cin: cin, cout: cout, packed: $0) }
            r.withUnsafeBufferPointer { s8_conv1x1_res16_reference(input: xi, pixels: pixels, cin: cin, weights: wi, cout: cout,
                                                                   epilogue: e, residual: $0, output: o) }
        }
        withBuffers(x, packed, &vec) { xi, pk, o in
            r.withUnsafeBufferPointer { rp in
                scratch.withUnsafeMutableBufferPointer {
                    s8_conv1x1_c8n_8x8_res16_simd(input: xi, pixels: pixels, cin: cin, packed: pk, cout: cout, epilogue: e,
                                                  residual: rp, scratch: $0, output: o)
                }
            }
        }
        // (r + 32768) / 512 / 0.5 output steps: 0 ... 256 - 1/256, clamped to 124, plus zp 3.
        let expected = r.map { Int8(min(max((Double(Int($0) + 32768) / 256).rounded(.toNearestOrEven), -131), 124) + 3) }
        XCTAssertEqual(ref, expected)
        XCTAssertEqual(vec, expected)
    }
}
