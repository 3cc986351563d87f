// Randomized tests holding every vectorized float kernel to its scalar reference over edge shapes.
import XCTest
import EarTagKernels
import EarTagTestSupport

/// Random float helpers.
extension SeededRNG {
    /// `n` floats uniform in -1...1.
    mutating func floats(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -1...1, using: &self) } }
}

/// Asserts |a - b| <= tol * max(1, max|b|) element-wise, naming the case and seed on failure.
func assertClose(_ a: [Float], _ b: [Float], tol: Float = 1e-5, _ what: @autoclosure () -> String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, what(), file: file, line: line)
    let scale = max(1, b.map(abs).max() ?? 0)
    var worst: Float = 0, at = -1
    for i in 0..<min(a.count, b.count) {
        let d = abs(a[i] - b[i])
        if !(d <= worst) { worst = d; at = i }
    }
    XCTAssert(worst <= tol * scale, "\(what()): max diff \(worst) at \(at) (scale \(scale))", file: file, line: line)
}

/// Every vectorized kernel against its scalar reference, with fresh seeds printed in failure messages.
final class KernelTests: XCTestCase {
    /// Channel counts below, at and above the vector width, with tails.
    let channelCounts = [1, 3, 7, 8, 9, 15, 16, 17, 33]
    /// Activations cycled through the cases.
    let activations: [KernelActivation] = [.none, .relu, .hardswish]

    /// A fresh seed, printed with each failure message by the callers.
    func seed() -> UInt64 { UInt64.random(in: 0...UInt64.max) }

    func testHardswishInplace() {
        let s = seed()
        var rng = SeededRNG(state: s)
        for n in [0, 1, 7, 8, 9, 31] {
            var x = rng.floats(n).map { $0 * 8 }
            var y = x
            x.withUnsafeMutableBufferPointer { f32_hardswish_inplace_reference($0) }
            y.withUnsafeMutableBufferPointer { f32_hardswish_inplace_simd8($0) }
            assertClose(y, x, "hardswish n=\(n) seed=\(s)")
        }
    }

    func testConv1x1() {
        let s = seed()
        var rng = SeededRNG(state: s)
        for pixels in [1, 2, 3, 4, 5, 13] {
            for cin in channelCounts {
                for cout in channelCounts {
                    let act = activations[(pixels + cin + cout) % 3]
                    let useResidual = (cin + cout) % 2 == 0
                    let input = rng.floats(pixels * cin), weights = rng.floats(cin * cout), bias = rng.floats(cout)
                    let residual = rng.floats(pixels * cout)
                    var ref = [Float](repeating: 0, count: pixels * cout), fast = ref
                    var packed = [Float](repeating: .nan, count: f32_packed_conv1x1_count(cin: cin, cout: cout))
                    weights.withUnsafeBufferPointer { w in
                        packed.withUnsafeMutableBufferPointer { f32_pack_conv1x1(weights: w, cin: cin, cout: cout, packed: $0) }
                    }
                    input.withUnsafeBufferPointer { i in
                        bias.withUnsafeBufferPointer { b in
                            residual.withUnsafeBufferPointer { r in
                                weights.withUnsafeBufferPointer { w in
                                    ref.withUnsafeMutableBufferPointer {
                                        f32_conv1x1_reference(input: i, pixels: pixels, cin: cin, weights: w, bias: b,
                                                              cout: cout, activation: act,
                                                              residual: useResidual ? r : nil, output: $0)
                                    }
                                }
                                packed.withUnsafeBufferPointer { w in
                                    fast.withUnsafeMutableBufferPointer {
                                        f32_conv1x1_simd8x4(input: i, pixels: pixels, cin: cin, packed: w, bias: b,
                                                            cout: cout, activation: act,
                                                            residual: useResidual ? r : nil, output: $0)
                                    }
                                }
                            }
                        }
                    }
                    assertClose(fast, ref, "conv1x1 p=\(pixels) cin=\(cin) cout=\(cout) \(act) res=\(useResidual) seed=\(s)")
                    var packed16 = [Float](repeating: .nan, count: f32_packed_conv1x1_16_count(cin: cin, cout: cout))
                    var wide = [Float](repeating: .nan, count: pixels * cout)
                    weights.withUnsafeBufferPointer { w in
                        packed16.withUnsafeMutableBufferPointer { f32_pack_conv1x1_16(weights: w, cin: cin, cout: cout, packed: $0) }
                    }
                    input.withUnsafeBufferPointer { i in
                        bias.withUnsafeBufferPointer { b in
                            residual.withUnsafeBufferPointer { r in
                                packed16.withUnsafeBufferPointer { w in
                                    wide.withUnsafeMutableBufferPointer {
                                        f32_conv1x1_simd16x2(input: i, pixels: pixels, cin: cin, packed: w, bias: b,
                                                             cout: cout, activation: act,
                                                             residual: useResidual ? r : nil, output: $0)
                                    }
                                }
                            }
                        }
                    }
                    assertClose(wide, ref, "conv1x1 16x2 p=\(pixels) cin=\(cin) cout=\(cout) \(act) res=\(useResidual) seed=\(s)")
                }
            }
        }
    }

    func testScalePackedConv1x1MatchesScaledInput() {
        let s = seed()
        var rng = SeededRNG(state: s)
        for (cin, cout) in [(1, 1), (7, 9), (16, 17), (33, 8)] {
            let pixels = 5
            let input = rng.floats(pixels * cin), weights = rng.floats(cin * cout), bias = rng.floats(cout)
            let scale = rng.floats(cin)
            var scaledInput = input
            for p in 0..<pixels { for c in 0..<cin { scaledInput[p * cin + c] *= scale[c] } }
            let n = f32_packed_conv1x1_count(cin: cin, cout: cout)
            var packed = [Float](repeating: 0, count: n), scaled = packed
            var ref = [Float](repeating: 0, count: pixels * cout), fast = ref
            weights.withUnsafeBufferPointer { w in
                packed.withUnsafeMutableBufferPointer { f32_pack_conv1x1(weights: w, cin: cin, cout: cout, packed: $0) }
                scaledInput.withUnsafeBufferPointer { i in
                    bias.withUnsafeBufferPointer { b in
                        ref.withUnsafeMutableBufferPointer {
                            f32_conv1x1_reference(input: i, pixels: pixels, cin: cin, weights: w, bias: b, cout: cout,
                                                  activation: .none, residual: nil, output: $0)
                        }
                    }
                }
            }
            packed.withUnsafeBufferPointer { p in
                scale.withUnsafeBufferPointer { sc in
                    scaled.withUnsafeMutableBufferPointer {
                        f32_scale_packed_conv1x1_simd8(packed: p, cin: cin, cout: cout, scale: sc, scaled: $0)
                    }
                }
            }
            input.withUnsafeBufferPointer { i in
                bias.withUnsafeBufferPointer { b in
                    scaled.withUnsafeBufferPointer { w in
                        fast.withUnsafeMutableBufferPointer {
                            f32_conv1x1_simd8x4(input: i, pixels: pixels, cin: cin, packed: w, bias: b, cout: cout,
                                                activation: .none, residual: nil, output: $0)
                        }
                    }
                }
            }
            assertClose(fast, ref, "scaled conv1x1 cin=\(cin) cout=\(cout) seed=\(s)")
            let n16 = f32_packed_conv1x1_16_count(cin: cin, cout: cout)
            var packed16 = [Float](repeating: 0, count: n16), scaled16 = packed16
            var wide = [Float](repeating: 0, count: pixels * cout)
            weights.withUnsafeBufferPointer { w in
                packed16.withUnsafeMutableBufferPointer { f32_pack_conv1x1_16(weights: w, cin: cin, cout: cout, packed: $0) }
            }
            packed16.withUnsafeBufferPointer { p in
                scale.withUnsafeBufferPointer { sc in
                    scaled16.withUnsafeMutableBufferPointer {
                        f32_scale_packed_conv1x1_simd8(packed: p, cin: cin, cout: cout, scale: sc, scaled: $0,
                                                       blockWidth: 16)
                    }
                }
            }
            input.withUnsafeBufferPointer { i in
                bias.withUnsafeBufferPointer { b in
                    scaled16.withUnsafeBufferPointer { w in
                        wide.withUnsafeMutableBufferPointer {
                            f32_conv1x1_simd16x2(input: i, pixels: pixels, cin: cin, packed: w, bias: b, cout: cout,
                                                 activation: .none, residual: nil, output: $0)
                        }
                    }
                }
            }
            assertClose(wide, ref, "scaled conv1x1 16x2 cin=\(cin) cout=\(cout) seed=\(s)")
        }
    }

    /// Runs one depthwise case through the reference and every vectorized variant.
    func checkDepthwise(h: Int, w: Int, c: Int, k: Int, stride: Int, dilation: Int, act: KernelActivation,
                        rng: inout SeededRNG, seed: UInt64) {
        let ho = f32_conv_out_size(h, kernel: k, stride: stride, dilation: dilation)
        let wo = f32_conv_out_size(w, kernel: k, stride: stride, dilation: dilation)
        let input = rng.floats(h * w * c), weights = rng.floats(c * k * k), bias = rng.floats(c)
        var packed = [Float](repeating: 0, count: c * k * k)
        var ref = [Float](repeating: 0, count: ho * wo * c)
        weights.withUnsafeBufferPointer { wt in
            packed.withUnsafeMutableBufferPointer { f32_pack_dwconv(weights: wt, channels: c, kernel: k, packed: $0) }
        }
        input.withUnsafeBufferPointer { i in
            bias.withUnsafeBufferPointer { b in
                weights.withUnsafeBufferPointer { wt in
                    ref.withUnsafeMutableBufferPointer {
                        f32_dwconv_reference(input: i, height: h, width: w, channels: c, weights: wt, bias: b,
                                             kernel: k, stride: stride, dilation: dilation, activation: act,
                                             output: $0)
                    }
                }
            }
        }
        let name = "dw h=\(h) w=\(w) c=\(c) k=\(k) s=\(stride) d=\(dilation) \(act) seed=\(seed)"
        for variant in f32_dwconv_variants {
            guard variant.supports(k, stride, dilation) else { continue }
            var fast = [Float](repeating: .nan, count: ho * wo * c)
            input.withUnsafeBufferPointer { i in
                bias.withUnsafeBufferPointer { b in
                    packed.withUnsafeBufferPointer { wt in
                        fast.withUnsafeMutableBufferPointer { o in
                            // Two row bands, to exercise the row restriction used for threading.
                            let split = ho / 2
                            variant.run(i, h, w, c, wt, b, k, stride, dilation, act, o, 0..<split)
                            variant.run(i, h, w, c, wt, b, k, stride, dilation, act, o, split..<ho)
                        }
                    }
                }
            }
            assertClose(fast, ref, "\(variant.name) \(name)")
        }
    }

    func testDepthwise() {
        let s = seed()
        var rng = SeededRNG(state: s)
        let sizes = [(1, 1), (1, 5), (2, 3), (5, 7), (8, 9), (9, 4), (3, 21), (1, 40), (6, 37)]
        for (h, w) in sizes {
            for c in channelCounts {
                for k in [3, 5] {
                    for (stride, dilation) in [(1, 1), (2, 1), (1, 2)] {
                        let act = activations[(h + w + c + k) % 3]
                        checkDepthwise(h: h, w: w, c: c, k: k, stride: stride, dilation: dilation, act: act,
                                       rng: &rng, seed: s)
                    }
                }
            }
        }
    }

    func testStem() {
        let s = seed()
        var rng = SeededRNG(state: s)
        for (h, w) in [(1, 1), (2, 2), (3, 5), (8, 9), (13, 7)] {
            for cout in [1, 7, 8, 9, 16, 17] {
                let ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1
                let input = rng.floats(h * w), weights = rng.floats(cout * 9), bias = rng.floats(cout)
                var packed = [Float](repeating: 0, count: cout * 9)
                var ref = [Float](repeating: 0, count: ho * wo * cout), fast = ref
                weights.withUnsafeBufferPointer { wt in
                    packed.withUnsafeMutableBufferPointer { f32_pack_dwconv(weights: wt, channels: cout, kernel: 3, packed: $0) }
                    input.withUnsafeBufferPointer { i in
                        bias.withUnsafeBufferPointer { b in
                            ref.withUnsafeMutableBufferPointer {
                                f32_stem3x3s2_reference(input: i, height: h, width: w, weights: wt, bias: b, cout: cout,
                                                        activation: .hardswish, output: $0)
                            }
                            packed.withUnsafeBufferPointer { pk in
                                fast.withUnsafeMutableBufferPointer {
                                    f32_stem3x3s2_simd8(input: i, height: h, width: w, packed: pk, bias: b, cout: cout,
                                                        activation: .hardswish, output: $0)
                                }
                            }
                        }
                    }
                }
                assertClose(fast, ref, "stem h=\(h) w=\(w) cout=\(cout) seed=\(s)")
            }
        }
    }

    func testGlobalAveragePool() {
        let s = seed()
        var rng = SeededRNG(state: s)
        for pixels in [1, 3, 17] {
            for c in channelCounts + [32, 40, 65] {
                let input = rng.floats(pixels * c)
                var ref = [Float](repeating: 0, count: c), fast = ref
                input.withUnsafeBufferPointer { i in
                    ref.withUnsafeMutableBufferPointer {
                        f32_global_average_pool_reference(input: i, pixels: pixels, channels: c, output: $0)
                    }
                    fast.withUnsafeMutableBufferPointer {
                        f32_global_average_pool_simd8(input: i, pixels: pixels, channels: c, output: $0)
                    }
                }
                assertClose(fast, ref, "gap p=\(pixels) c=\(c) seed=\(s)")
            }
        }
    }

    func testLinear() {
        let s = seed()
        var rng = SeededRNG(state: s)
        for nin in channelCounts + [64, 100] {
            for nout in [1, 5, 16] {
                for act in activations {
                    let x = rng.floats(nin), w = rng.floats(nin * nout), b = rng.floats(nout)
                    var ref = [Float](repeating: 0, count: nout), fast = ref
                    x.withUnsafeBufferPointer { xi in
                        w.withUnsafeBufferPointer { wi in
                            b.withUnsafeBufferPointer { bi in
                                ref.withUnsafeMutableBufferPointer {
                                    f32_linear_reference(input: xi, nin: nin, weights: wi, bias: bi, nout: nout,
                                                         activation: act, output: $0)
                                }
                                fast.withUnsafeMutableBufferPointer {
                                    f32_linear_simd8(input: xi, nin: nin, weights: wi, bias: bi, nout: nout,
                                                     activation: act, output: $0)
                                }
                            }
                        }
                    }
                    assertClose(fast, ref, "linear nin=\(nin) nout=\(nout) \(act) seed=\(s)")
                }
            }
        }
    }

    func testSqueezeExcitation() {
        let s = seed()
        var rng = SeededRNG(state: s)
        for pixels in [1, 6] {
            for (c, sq) in [(1, 1), (7, 8), (8, 8), (17, 8), (33, 16), (72, 24)] {
                let map = rng.floats(pixels * c)
                let fc1 = rng.floats(sq * c), b1 = rng.floats(sq), fc2 = rng.floats(c * sq), b2 = rng.floats(c)
                var scratch = [Float](repeating: 0, count: c + sq)
                var ref = [Float](repeating: 0, count: c), fast = ref
                var refMap = map, fastMap = map
                map.withUnsafeBufferPointer { m in
                    fc1.withUnsafeBufferPointer { f1 in b1.withUnsafeBufferPointer { bb1 in
                        fc2.withUnsafeBufferPointer { f2 in b2.withUnsafeBufferPointer { bb2 in
                            scratch.withUnsafeMutableBufferPointer { sc in
                                ref.withUnsafeMutableBufferPointer {
                                    f32_se_scale_reference(map: m, pixels: pixels, channels: c, fc1: f1, b1: bb1,
                                                           fc2: f2, b2: bb2, squeeze: sq, scratch: sc, scale: $0)
                                }
                                fast.withUnsafeMutableBufferPointer {
                                    f32_se_scale_simd8(map: m, pixels: pixels, channels: c, fc1: f1, b1: bb1,
                                                       fc2: f2, b2: bb2, squeeze: sq, scratch: sc, scale: $0)
                                }
                            }
                        } }
                    } }
                }
                assertClose(fast, ref, "se scale p=\(pixels) c=\(c) s=\(sq) seed=\(s)")
                ref.withUnsafeBufferPointer { sc in
                    refMap.withUnsafeMutableBufferPointer {
                        f32_scale_channels_reference(map: $0, pixels: pixels, channels: c, scale: sc)
                    }
                    fastMap.withUnsafeMutableBufferPointer {
                        f32_scale_channels_simd8(map: $0, pixels: pixels, channels: c, scale: sc)
                    }
                }
                assertClose(fastMap, refMap, "scale channels p=\(pixels) c=\(c) seed=\(s)")
            }
        }
    }
}
