// The dot4 and dot2 int8 1x1 kernels held bit-exact to `s8_conv1x1_reference` over random edge shapes (input channels below,
// at and above a dot4 group and the 16-lane width, output-channel tails, pixel tails of the 8-pixel tile, residuals,
// extreme values), with the seed in every failure message. Runs the vpdpbusd build where it is compiled in, the
// portable lane loop elsewhere.
import XCTest
@testable import EarTagKernels
import EarTagTestSupport

final class Int8Dot4Tests: XCTestCase {
    /// Runs the reference and the dot2 (`words`) or dot4 kernel on the same inputs; returns both outputs. The
    /// kernels' scratch starts dirty: padding bytes meet zero weights, so the results must not depend on it.
    func run(words: Bool, x: [Int8], w: [Int16], r: [Int8]?, pixels: Int, cin: Int, cout: Int,
             e: S8Epilogue) -> ([Int8], [Int8]) {
        var ref = [Int8](repeating: 0, count: pixels * cout), vec = [Int8](repeating: 1, count: pixels * cout)
        (r ?? []).withUnsafeBufferPointer { ri in
            let res = r == nil ? nil : ri
            withBuffers(x, w, &ref) { xi, wi, o in
                s8_conv1x1_reference(input: xi, pixels: pixels, cin: cin, weights: wi, cout: cout, epilogue: e,
                                     residual: res, output: o)
            }
            withBuffers(x, w, &vec) { xi, wi, o in
                if words {
                    var packed = [Int16](repeating: 0, count: s8_packed_conv1x1_dot2_count(cin: cin, cout: cout))
                    var scratch = [Int16](repeating: -0x5A5A, count: s8_conv1x1_dot2_scratch_count(cin: cin))
                    packed.withUnsafeMutableBufferPointer { s8_pack_conv1x1_dot2(weights: wi, cin: cin, cout: cout, packed: $0) }
                    packed.withUnsafeBufferPointer { pk in
                        scratch.withUnsafeMutableBufferPointer {
                            s8_conv1x1_8x16_dot2(input: xi, pixels: pixels, cin: cin, packed: pk, cout: cout, epilogue: e,
                                                 residual: res, scratch: $0, output: o)
                        }
                    }
                } else {
                    var packed = [Int8](repeating: 0, count: s8_packed_conv1x1_dot4_count(cin: cin, cout: cout))
                    var corr = [Int32](repeating: 0, count: s8_conv1x1_dot4_correction_count(cout: cout))
                    var scratch = [UInt8](repeating: 0xA5, count: s8_conv1x1_dot4_scratch_count(cin: cin))
                    packed.withUnsafeMutableBufferPointer { pk in
                        corr.withUnsafeMutableBufferPointer {
                            s8_pack_conv1x1_dot4(weights: wi, cin: cin, cout: cout, packed: pk, correction: $0)
                        }
                    }
                    withBuffers(packed, corr, &scratch) { pk, k, sc in
                        s8_conv1x1_8x16_dot4(input: xi, pixels: pixels, cin: cin, packed: pk, correction: k, cout: cout,
                                             epilogue: e, residual: res, scratch: sc, output: o)
                    }
                }
            }
        }
        return (ref, vec)
    }

    func testDot2InstructionMeaning() {
        // Halves (-32768, 7) times (-1, -300): 32768 - 2100.
        let a = SIMD16<Int32>(repeating: Int32(bitPattern: 0x0007_8000))
        let b = SIMD16<Int32>(repeating: Int32(bitPattern: 0xFED4_FFFF))
        XCTAssertEqual(s8_dot2_16(SIMD16(repeating: -5), a, b), SIMD16(repeating: -5 + 32768 - 2100))
    }

    func testConv1x1_8x16_dot2BitExact() {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRNG(state: seed)
        for cin in [1, 2, 3, 5, 8, 15, 16, 17, 40, 64, 97] {
            for cout in [1, 7, 8, 15, 16, 17, 24, 33, 48] {
                let pixels = Int.random(in: 1...27, using: &rng), residual = Bool.random(using: &rng)
                let limit: Int16 = Bool.random(using: &rng) ? 2047 : 127
                let x = rng.int8s(pixels * cin), w = rng.weights(cin * cout, limit: limit), r = rng.int8s(pixels * cout)
                let e = rng.epilogue(cout, biasRange: 1 << 30, residual: residual)
                let (ref, vec) = run(words: true, x: x, w: w, r: residual ? r : nil, pixels: pixels, cin: cin, cout: cout, e: e)
                XCTAssertEqual(ref, vec, "seed \(seed) cin \(cin) cout \(cout) pixels \(pixels) residual \(residual) |w| <= \(limit)")
            }
        }
    }

    func testConv1x1_8x16_dot2AtExtremes() {
        // 12-bit weights at +-2047 against inputs at -128/127, up to mn04's widest 1x1 input.
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRNG(state: seed)
        for cin in [64, 65, 960] {
            let cout = 33, pixels = 11
            let x = (0..<(pixels * cin)).map { _ in Bool.random(using: &rng) ? Int8(-128) : Int8(127) }
            let w = (0..<(cout * cin)).map { _ in Bool.random(using: &rng) ? Int16(-2047) : Int16(2047) }
            let e = rng.epilogue(cout, biasRange: 1 << 30, unit: 1e-8...1e-6)
            let (ref, vec) = run(words: true, x: x, w: w, r: nil, pixels: pixels, cin: cin, cout: cout, e: e)
            XCTAssertEqual(ref, vec, "seed \(seed) cin \(cin)")
        }
    }

    func testDot4InstructionMeaning() {
        // One lane pattern checked by hand: bytes (1, 255, 128, 0) unsigned times (-1, 2, -128, 127) signed.
        let a = SIMD16<Int32>(repeating: Int32(bitPattern: 0x0080_FF01))
        let b = SIMD16<Int32>(repeating: Int32(bitPattern: 0x7F80_02FF))
        let r = s8_dot4_16(SIMD16(repeating: 10), a, b)
        XCTAssertEqual(r, SIMD16(repeating: 10 + 1 * -1 + 255 * 2 + 128 * -128 + 0 * 127))
    }

    func testConv1x1_8x16_dot4BitExact() {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRNG(state: seed)
        for cin in [1, 2, 3, 4, 5, 8, 15, 16, 17, 40, 63, 97, 200] {
            for cout in [1, 7, 8, 15, 16, 17, 24, 33, 48] {
                let pixels = Int.random(in: 1...27, using: &rng), residual = Bool.random(using: &rng)
                let x = rng.int8s(pixels * cin), w = rng.weights(cin * cout), r = rng.int8s(pixels * cout)
                let e = rng.epilogue(cout, biasRange: 1 << 30, residual: residual)
                let (ref, vec) = run(words: false, x: x, w: w, r: residual ? r : nil, pixels: pixels, cin: cin, cout: cout, e: e)
                XCTAssertEqual(ref, vec, "seed \(seed) cin \(cin) cout \(cout) pixels \(pixels) residual \(residual)")
            }
        }
    }

    func testConv1x1_8x16_dot4AtExtremesAndBeyondTheFloatLimit() {
        // Every product at its extreme, cin past the float-lane kernel's exact limit (1032) and at mn04's widest 1x1.
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRNG(state: seed)
        for cin in [960, s8FloatExactMaxK + 1, 2051] {
            let cout = 17, pixels = 9
            let x = (0..<(pixels * cin)).map { _ in Bool.random(using: &rng) ? Int8(-128) : Int8(127) }
            let w = (0..<(cout * cin)).map { _ in Bool.random(using: &rng) ? Int16(-127) : Int16(127) }
            let e = rng.epilogue(cout, biasRange: 1 << 30, unit: 1e-7...1e-5)
            let (ref, vec) = run(words: false, x: x, w: w, r: nil, pixels: pixels, cin: cin, cout: cout, e: e)
            XCTAssertEqual(ref, vec, "seed \(seed) cin \(cin)")
        }
    }
}
