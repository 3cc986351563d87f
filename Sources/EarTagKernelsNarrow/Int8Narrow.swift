// Int8 kernels in 8-lane vectors (x86 ymm, NEON a q-register pair) for the layers where the 16-lane kernels of
// EarTagKernels leave lanes empty: the 8-channel stem (mn04_as: 1 -> 8 channels over 64 x 500 outputs) and every
// depthwise layer with a multiple of 8 channels (8, 24, 72 ... fill every lane; the 16-lane kernel computes 16, 32,
// 80), in tiles of 8 pixels. Bit-exact with the scalar references `s8_stem3x3s2_reference` and `s8_dwconv_reference`:
// the sums are exact float sums (see EarTagKernels/Int8Kernels.swift), the epilogue is `S8Epilogue.apply`'s float
// operations in the same order, lane by lane.
//
// Why a module of its own: the speed of EarTagKernels' int8 kernels depends on whole-module inlining decisions. A
// previous 8-channel kernel added to that module made the whole int8 engine 60 % slower even when unused (the dot
// kernels' tile loop and `loadUnaligned` stopped being inlined; docs/quantization.md "Speed"). Kept here, these
// kernels cannot change how EarTagKernels is optimized; they use only its public API (`S8Epilogue`,
// `f32_conv_out_size`, `s8_dw_input_rows`, the packing of `s8_pack_dwconv`).
// ref: XNNPACK src/xnnpack/requantization.h (fp32 requantization with the magic bias), as EarTagKernels.
import EarTagKernels

/// The 1.5 * 2^23 rounding constant of `s8_round` (round to nearest even by magic addition). ref: XNNPACK
/// requantization.h.
private let magic: Float = 12_582_912
/// Bit pattern of `magic`.
private let magicBits: Int32 = 0x4B40_0000

/// Lane-wise min(max(v, lo), hi) as compare-and-blend (vcmpps + vblendvps); equal to the scalar min/max for
/// non-NaN values up to the sign of a zero, which the magic rounding maps to the same integer. The 8-lane twin of
/// EarTagKernels' internal `s8_clamp16`: one generic version would go through Swift's generic SIMD operations, which
/// compile to calls (docs/quantization.md "Kernels"), and making it public would change EarTagKernels.
@_transparent
func clamp8(_ v: SIMD8<Float>, _ lo: Float, _ hi: Float) -> SIMD8<Float> {
    var r = v
    r.replace(with: lo, where: r .< lo)
    r.replace(with: hi, where: r .> hi)
    return r
}

/// An activation of the epilogue as a type, so that generic tile loops are specialized per activation (a value
/// tested inside the loop was not hoisted: the compiler kept one test per output pixel).
protocol Activation8 {
    /// The activation of `S8Epilogue.apply`, lane by lane, with the same float operations in the same order.
    static func apply(_ y: SIMD8<Float>) -> SIMD8<Float>
}

/// No activation.
enum Identity8: Activation8 {
    /// Returns `y`.
    @_transparent static func apply(_ y: SIMD8<Float>) -> SIMD8<Float> { y }
}

/// ReLU: max(y, 0) as compare-and-blend.
enum ReLU8: Activation8 {
    /// Returns max(y, 0) lane by lane.
    @_transparent static func apply(_ y: SIMD8<Float>) -> SIMD8<Float> {
        var r = y
        r.replace(with: 0, where: r .< 0)
        return r
    }
}

/// Hardswish: y * min(max(y + 3, 0), 6) * (1 / 6), multiplied in that order like the reference.
enum Hardswish8: Activation8 {
    /// Returns hardswish(y) lane by lane.
    @_transparent static func apply(_ y: SIMD8<Float>) -> SIMD8<Float> { y * clamp8(y + 3, 0, 6) * (1 / 6 as Float) }
}

/// The per-layer constants of the 8-channel epilogue, loaded once per kernel call.
struct Epilogue8 {
    /// Scale (s_in * s_w[c]) and float bias of the 8 channels.
    var scale: SIMD8<Float>, bias: SIMD8<Float>
    /// 1 / output scale; output zero point; the clamp bounds in output steps, -128 - zp and 127 - zp.
    var inverseOutputScale: Float, zeroPoint: Int32, lo: Float, hi: Float
    /// Real value of one residual step and the residual's zero point (as a float; a fused residual add).
    var residualScale: Float, residualZeroPoint: Float

    /// Loads the constants of `e` and the scale and bias of its channels 0-7 (its arrays are padded to 16).
    init(_ e: S8Epilogue) {
        scale = e.scale.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress!).load(as: SIMD8<Float>.self) }
        bias = e.biasF.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress!).load(as: SIMD8<Float>.self) }
        inverseOutputScale = e.inverseOutputScale
        zeroPoint = e.zeroPoint
        lo = Float(-128 - e.zeroPoint); hi = Float(127 - e.zeroPoint)
        residualScale = e.residualScale; residualZeroPoint = Float(e.residualZeroPoint)
    }

    /// Switches to the scale and bias of channels 8 * group ..< 8 * group + 8 (`sp`, `bp`: the padded arrays).
    @_transparent
    mutating func load(_ sp: UnsafeRawPointer, _ bp: UnsafeRawPointer, group: Int) {
        scale = load8(sp, 32 * group); bias = load8(bp, 32 * group)
    }

    /// Requantizes the exact float sums `sum` of 8 channels (`S8Epilogue.apply` lane by lane: bias, scale,
    /// activation `A`, times 1 / output scale, clamp, magic rounding, zero point) and stores 8 int8 values at `o`.
    /// Invariant: after the clamp |y| <= 255 < 2^22, so the magic addition rounds exactly.
    @_transparent
    func emit<A: Activation8>(_ sum: SIMD8<Float>, _: A.Type, to o: UnsafeMutablePointer<Int8>) {
        store(A.apply((sum + bias) * scale), to: o)
    }

    /// `emit` with the fused residual add of `S8Epilogue.apply`: after the activation,
    /// y + residualScale * (r - residualZeroPoint) for the 8 residual values at `r` (Float(r) - Float(zp) equals
    /// Float(r - zp): small integers, exact in float).
    @_transparent
    func emit<A: Activation8>(_ sum: SIMD8<Float>, _: A.Type, residual r: UnsafePointer<Int8>,
                              to o: UnsafeMutablePointer<Int8>) {
        let t = UnsafeRawPointer(r).loadUnaligned(as: SIMD8<Int8>.self)
        var f = SIMD8<Float>()
        for l in 0..<8 { f[l] = Float(t[l]) }
        store(A.apply((sum + bias) * scale) + residualScale * (f - residualZeroPoint), to: o)
    }

    /// Times 1 / output scale, clamp, magic rounding, zero point; stores 8 int8 values at `o`.
    @_transparent
    func store(_ y: SIMD8<Float>, to o: UnsafeMutablePointer<Int8>) {
        let c = clamp8(y * inverseOutputScale, lo, hi)
        let q = unsafeBitCast(c + SIMD8(repeating: magic), to: SIMD8<Int32>.self) &- SIMD8(repeating: magicBits &- zeroPoint)
        for l in 0..<8 { o[l] = Int8(truncatingIfNeeded: q[l]) }
    }
}

/// Calls the closure specialized for the activation `a` (a type, see `Activation8`).
@_transparent
func dispatch(_ a: S8Activation, none: () -> Void, relu: () -> Void, hardswish: () -> Void) {
    switch a {
    case .none: none()
    case .relu: relu()
    case .hardswish: hardswish()
    }
}

/// Loads the 8-lane vector at byte offset `offset` of `p` (the first 8 lanes of a 16-lane packed weight row, or one
/// pixel of a dense 8-channel float map).
@_transparent
func load8(_ p: UnsafeRawPointer, _ offset: Int) -> SIMD8<Float> { p.load(fromByteOffset: offset, as: SIMD8<Float>.self) }

/// The nine 8-channel tap vectors of a 3x3 stem, held in registers.
struct Taps9 {
    var t0, t1, t2, t3, t4, t5, t6, t7, t8: SIMD8<Float>

    /// Loads the taps from weights packed by `s8_pack_dwconv(channels: 8, kernel: 3)` ([9][16]).
    init(_ p: UnsafeRawPointer) {
        (t0, t1, t2) = (load8(p, 0), load8(p, 64), load8(p, 128))
        (t3, t4, t5) = (load8(p, 192), load8(p, 256), load8(p, 320))
        (t6, t7, t8) = (load8(p, 384), load8(p, 448), load8(p, 512))
    }

    /// The exact sum of the nine taps for the output pixel whose top-left input tap is element `i` of rows `r0`,
    /// `r1`, `r2` (each input value broadcast across the 8 channels).
    @_transparent
    func sum(_ r0: UnsafePointer<Float>, _ r1: UnsafePointer<Float>, _ r2: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
        var a = t0 * r0[i]
        a.addProduct(t1, r0[i + 1]); a.addProduct(t2, r0[i + 2])
        a.addProduct(t3, r1[i]); a.addProduct(t4, r1[i + 1]); a.addProduct(t5, r1[i + 2])
        a.addProduct(t6, r2[i]); a.addProduct(t7, r2[i + 1]); a.addProduct(t8, r2[i + 2])
        return a
    }
}

/// Vectorized int8 stem for exactly 8 output channels, bit-exact with `s8_stem3x3s2_reference` (cout 8): 3x3
/// stride 2, zero padding 1, one int8 plane [h][w] to [ho][wo][8]. Reads `centered`, the plane's x - zp as floats
/// (`s8_center_plane_f32`), and the weights of `s8_pack_dwconv(channels: 8, kernel: 3)` ([9][16], lanes 0-7 used).
/// The nine tap vectors stay in registers; interior output pixels go in tiles of 8 along the row (eight independent
/// chains of nine broadcast multiply-adds, exact: 9 * 255 * 2047 < 2^24), each followed by one 8-lane epilogue.
/// Border pixels skip the padded taps like the reference.
public func s8_stem3x3s2_c8_simd(
    centered: UnsafeBufferPointer<Float>, height h: Int, width w: Int,
    packed: UnsafeBufferPointer<Float>, epilogue e: S8Epilogue,
    output: UnsafeMutableBufferPointer<Int8>
) {
    let ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1
    precondition(e.channels == 8, "s8_stem3x3s2_c8_simd needs 8 output channels, not \(e.channels)")
    precondition(h >= 1 && w >= 1 && centered.count >= h * w && output.count >= ho * wo * 8 && packed.count >= 9 * 16)
    let x = centered.baseAddress!, pw = UnsafeRawPointer(packed.baseAddress!), o = output.baseAddress!
    let ep = Epilogue8(e)
    dispatch(e.activation,
             none: { stemC8(Identity8.self, x, h, w, pw, ep, o) },
             relu: { stemC8(ReLU8.self, x, h, w, pw, ep, o) },
             hardswish: { stemC8(Hardswish8.self, x, h, w, pw, ep, o) })
}

/// The body of `s8_stem3x3s2_c8_simd` and `s16_stem3x3s2_c8_simd` for activation `A`, storing outputs of type `T`
/// (int8 or int16, `StemOutput8`).
@inline(__always)
func stemC8<A: Activation8, T: StemOutput8>(_: A.Type, _ x: UnsafePointer<Float>, _ h: Int, _ w: Int,
                                           _ pw: UnsafeRawPointer, _ ep: Epilogue8, _ o: UnsafeMutablePointer<T>) {
    let ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1
    let taps = Taps9(pw)
    // Interior outputs: rows 1 ..< yHi and columns 1 ..< xHi read taps 2o-1 ... 2o+1, all inside.
    let yHi = (h - 2) / 2 + 1, xHi = (w - 2) / 2 + 1
    for oy in 0..<ho {
        let interiorRow = oy >= 1 && oy < yHi
        var ox = 0
        while ox < wo {
            let out = o + (oy * wo + ox) * 8
            if interiorRow && ox >= 1 && ox + 8 <= xHi {
                let r0 = x + (2 * oy - 1) * w + 2 * ox - 1, r1 = r0 + w, r2 = r1 + w
                T.emit(ep, taps.sum(r0, r1, r2, 0), A.self, to: out)
                T.emit(ep, taps.sum(r0, r1, r2, 2), A.self, to: out + 8)
                T.emit(ep, taps.sum(r0, r1, r2, 4), A.self, to: out + 16)
                T.emit(ep, taps.sum(r0, r1, r2, 6), A.self, to: out + 24)
                T.emit(ep, taps.sum(r0, r1, r2, 8), A.self, to: out + 32)
                T.emit(ep, taps.sum(r0, r1, r2, 10), A.self, to: out + 40)
                T.emit(ep, taps.sum(r0, r1, r2, 12), A.self, to: out + 48)
                T.emit(ep, taps.sum(r0, r1, r2, 14), A.self, to: out + 56)
                ox += 8
                continue
            }
            if interiorRow && ox >= 1 && ox < xHi {
                let r0 = x + (2 * oy - 1) * w + 2 * ox - 1
                T.emit(ep, taps.sum(r0, r0 + w, r0 + 2 * w, 0), A.self, to: out)
            } else {
                // Border pixel: padded taps skipped, in the reference's order.
                var a = SIMD8<Float>()
                for ky in 0..<3 where 2 * oy - 1 + ky >= 0 && 2 * oy - 1 + ky < h {
                    for kx in 0..<3 where 2 * ox - 1 + kx >= 0 && 2 * ox - 1 + kx < w {
                        a.addProduct(load8(pw, 64 * (ky * 3 + kx)), x[(2 * oy - 1 + ky) * w + 2 * ox - 1 + kx])
                    }
                }
                T.emit(ep, a, A.self, to: out)
            }
            ox += 1
        }
    }
}

/// An output element of the 8-channel stem: how 8 exact sums are requantized and stored as `Self`.
protocol StemOutput8 {
    /// Requantizes `sum` with `ep` (activation `A`) and stores 8 values at `o`.
    static func emit<A: Activation8>(_ ep: Epilogue8, _ sum: SIMD8<Float>, _: A.Type, to o: UnsafeMutablePointer<Self>)
}

extension Int8: StemOutput8 {
    /// `Epilogue8.emit`.
    @_transparent
    static func emit<A: Activation8>(_ ep: Epilogue8, _ sum: SIMD8<Float>, _: A.Type, to o: UnsafeMutablePointer<Int8>) {
        ep.emit(sum, A.self, to: o)
    }
}

extension Int16: StemOutput8 {
    /// `Epilogue8.emit16` (the epilogue needs the bounds of `init(int16Output:)`).
    @_transparent
    static func emit<A: Activation8>(_ ep: Epilogue8, _ sum: SIMD8<Float>, _: A.Type, to o: UnsafeMutablePointer<Int16>) {
        ep.emit16(sum, A.self, to: o)
    }
}

/// Vectorized int8 depthwise conv for channels in groups of 8 (c a multiple of 8) over output rows `rows`,
/// bit-exact with `s8_dwconv_reference`: reads the centered input as dense floats [rows][w][c]
/// (`s8_center_plane_f32` over pixels * c values, starting at input row `centeredFirstRow`, so that callers can
/// center band by band) and the weights of `s8_pack_dwconv` ([k*k][s8_dw_pitch(c)]). Interior output pixels (every
/// horizontal tap inside the input) go in tiles of 8 pixels x 8 channels, so each weight vector loaded serves eight
/// independent multiply-adds; border pixels and row tails take one pixel x 32 channels (four chains) at a time, their
/// taps clamped to the input (padded taps skipped like the reference). No lane is empty for
/// c = 8, 24, 40 ... (the 16-lane kernel computes 16, 32, 48). Exact sums (25 taps of |w (x - zp)| <= 2047 * 255 <
/// 2^24).
public func s8_dwconv_c8n_8x8_simd(
    centered: UnsafeBufferPointer<Float>, height h: Int, width w: Int, channels c: Int,
    packed: UnsafeBufferPointer<Float>, kernel k: Int, stride st: Int, dilation d: Int, epilogue e: S8Epilogue,
    output: UnsafeMutableBufferPointer<Int8>, rows: Range<Int>, centeredFirstRow first: Int = 0
) {
    let ho = f32_conv_out_size(h, kernel: k, stride: st, dilation: d)
    let wo = f32_conv_out_size(w, kernel: k, stride: st, dilation: d)
    precondition(c > 0 && c % 8 == 0 && e.channels == c, "s8_dwconv_c8n_8x8_simd needs a multiple of 8 channels, not \(c)")
    precondition(output.count >= ho * wo * c && packed.count >= k * k * s8_dw_pitch(c))
    precondition(rows.lowerBound >= 0 && rows.upperBound <= ho)
    guard !rows.isEmpty else { return }
    let needed = s8_dw_input_rows(rows, height: h, kernel: k, stride: st, dilation: d)
    precondition(first <= needed.lowerBound && centered.count >= (needed.upperBound - first) * w * c,
                 "centered rows do not cover the input rows of output rows \(rows)")
    // Input row iy is row iy - first of `centered`; the byte offset of pixel (iy, ix) is 4 * c * (iy * w + ix).
    let xb = UnsafeRawPointer(centered.baseAddress!) - 4 * c * first * w
    let shape = Shape8(h: h, w: w, c: c, wo: wo, k: k, st: st, d: d)
    let wb = UnsafeRawPointer(packed.baseAddress!), o = output.baseAddress!
    e.scale.withUnsafeBufferPointer { scale in
        e.biasF.withUnsafeBufferPointer { bias in
            let sp = UnsafeRawPointer(scale.baseAddress!), bp = UnsafeRawPointer(bias.baseAddress!)
            dispatch(e.activation,
                     none: { dwconvC8(Identity8.self, xb, wb, shape, e, sp, bp, o, rows) },
                     relu: { dwconvC8(ReLU8.self, xb, wb, shape, e, sp, bp, o, rows) },
                     hardswish: { dwconvC8(Hardswish8.self, xb, wb, shape, e, sp, bp, o, rows) })
        }
    }
}

/// The 8 accumulators of an 8-pixel x 8-channel depthwise tile at stride 1 and dilation 1.
struct Tile8 {
    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
    var a4 = SIMD8<Float>(), a5 = SIMD8<Float>(), a6 = SIMD8<Float>(), a7 = SIMD8<Float>()

    /// Adds one kernel row of a 3-tap kernel at stride 1: input pixels x0...x9 from byte offset `p` of `xb` (pitch
    /// `pb`), tap weights from offset `t` of `wb` (pitch `tb`); pixel j takes x[j] w0 + x[j+1] w1 + x[j+2] w2. Exact
    /// float sums (integers below 2^24, see `s8_dwconv_c8n_8x8_simd`), so the order of the additions does not matter.
    @_transparent
    mutating func row3(_ xb: UnsafeRawPointer, _ p: Int, _ pb: Int, _ wb: UnsafeRawPointer, _ t: Int, _ tb: Int) {
        let w0 = load8(wb, t), w1 = load8(wb, t + tb), w2 = load8(wb, t + 2 * tb)
        let x0 = load8(xb, p), x1 = load8(xb, p + pb), x2 = load8(xb, p + 2 * pb), x3 = load8(xb, p + 3 * pb)
        let x4 = load8(xb, p + 4 * pb), x5 = load8(xb, p + 5 * pb), x6 = load8(xb, p + 6 * pb), x7 = load8(xb, p + 7 * pb)
        let x8 = load8(xb, p + 8 * pb), x9 = load8(xb, p + 9 * pb)
        a0.addProduct(x0, w0); a1.addProduct(x1, w0); a2.addProduct(x2, w0); a3.addProduct(x3, w0)
        a4.addProduct(x4, w0); a5.addProduct(x5, w0); a6.addProduct(x6, w0); a7.addProduct(x7, w0)
        a0.addProduct(x1, w1); a1.addProduct(x2, w1); a2.addProduct(x3, w1); a3.addProduct(x4, w1)
        a4.addProduct(x5, w1); a5.addProduct(x6, w1); a6.addProduct(x7, w1); a7.addProduct(x8, w1)
        a0.addProduct(x2, w2); a1.addProduct(x3, w2); a2.addProduct(x4, w2); a3.addProduct(x5, w2)
        a4.addProduct(x6, w2); a5.addProduct(x7, w2); a6.addProduct(x8, w2); a7.addProduct(x9, w2)
    }

    /// `row3` for a 5-tap kernel row: input pixels x0...x11.
    @_transparent
    mutating func row5(_ xb: UnsafeRawPointer, _ p: Int, _ pb: Int, _ wb: UnsafeRawPointer, _ t: Int, _ tb: Int) {
        let w0 = load8(wb, t), w1 = load8(wb, t + tb), w2 = load8(wb, t + 2 * tb), w3 = load8(wb, t + 3 * tb)
        let w4 = load8(wb, t + 4 * tb)
        let x0 = load8(xb, p), x1 = load8(xb, p + pb), x2 = load8(xb, p + 2 * pb), x3 = load8(xb, p + 3 * pb)
        let x4 = load8(xb, p + 4 * pb), x5 = load8(xb, p + 5 * pb), x6 = load8(xb, p + 6 * pb), x7 = load8(xb, p + 7 * pb)
        let x8 = load8(xb, p + 8 * pb), x9 = load8(xb, p + 9 * pb), x10 = load8(xb, p + 10 * pb), x11 = load8(xb, p + 11 * pb)
        a0.addProduct(x0, w0); a1.addProduct(x1, w0); a2.addProduct(x2, w0); a3.addProduct(x3, w0)
        a4.addProduct(x4, w0); a5.addProduct(x5, w0); a6.addProduct(x6, w0); a7.addProduct(x7, w0)
        a0.addProduct(x1, w1); a1.addProduct(x2, w1); a2.addProduct(x3, w1); a3.addProduct(x4, w1)
        a4.addProduct(x5, w1); a5.addProduct(x6, w1); a6.addProduct(x7, w1); a7.addProduct(x8, w1)
        a0.addProduct(x2, w2); a1.addProduct(x3, w2); a2.addProduct(x4, w2); a3.addProduct(x5, w2)
        a4.addProduct(x6, w2); a5.addProduct(x7, w2); a6.addProduct(x8, w2); a7.addProduct(x9, w2)
        a0.addProduct(x3, w3); a1.addProduct(x4, w3); a2.addProduct(x5, w3); a3.addProduct(x6, w3)
        a4.addProduct(x7, w3); a5.addProduct(x8, w3); a6.addProduct(x9, w3); a7.addProduct(x10, w3)
        a0.addProduct(x4, w4); a1.addProduct(x5, w4); a2.addProduct(x6, w4); a3.addProduct(x7, w4)
        a4.addProduct(x8, w4); a5.addProduct(x9, w4); a6.addProduct(x10, w4); a7.addProduct(x11, w4)
    }
}

/// Geometry of a depthwise call: input h x w x c, output width wo, kernel k, stride st, dilation d.
struct Shape8 {
    var h, w, c, wo, k, st, d: Int
}

/// The body of `s8_dwconv_c8n_8x8_simd` for activation `A` (`xb`: the centered input, shifted so that input row 0
/// is at offset 0; `sp`/`bp`: the epilogue's padded scale and float bias arrays).
@inline(__always)
func dwconvC8<A: Activation8>(_: A.Type, _ xb: UnsafeRawPointer, _ wb: UnsafeRawPointer, _ g: Shape8,
                              _ e: S8Epilogue, _ sp: UnsafeRawPointer, _ bp: UnsafeRawPointer,
                              _ o: UnsafeMutablePointer<Int8>, _ rows: Range<Int>) {
    let (h, w, c, wo, k, st, d) = (g.h, g.w, g.c, g.wo, g.k, g.st, g.d)
    let pad = (k - 1) / 2 * d, groups = c / 8, tapBytes = 4 * s8_dw_pitch(c), pixelBytes = 4 * c
    // Interior columns: ox * st - pad >= 0 and ox * st - pad + (k - 1) * d <= w - 1.
    let interiorLo = (pad + st - 1) / st
    let lastStart = w - 1 - (k - 1) * d + pad
    let interiorHi = lastStart < 0 ? 0 : min(wo, lastStart / st + 1)
    let step = pixelBytes * st
    var ep = Epilogue8(e)
    for oy in rows {
        // Vertical taps inside the input: ky in kyLo ..< kyHi.
        var kyLo = 0, kyHi = k
        while kyLo < k && oy * st - pad + kyLo * d < 0 { kyLo += 1 }
        while kyHi > kyLo && oy * st - pad + (kyHi - 1) * d >= h { kyHi -= 1 }
        var ox = 0
        while ox < wo {
            let out = o + (oy * wo + ox) * c
            if ox >= interiorLo && ox + 8 <= interiorHi && st == 1 && d == 1 && (k == 3 || k == 5) {
                // Stride 1: the tile's 8 pixels read 7 + k consecutive input pixels per kernel row; each is loaded
                // once and feeds up to k multiply-adds (`Tile8.row3`/`row5`), not once per tap. Same exact sums in
                // another order. (Stride-2 twins measured no faster on mn04_as, so stride 2 keeps the loop below.)
                for gi in 0..<groups {
                    var a = Tile8()
                    for ky in kyLo..<kyHi {
                        let row = pixelBytes * ((oy - pad + ky) * w + ox - pad) + 32 * gi
                        let t = tapBytes * ky * k + 32 * gi
                        if k == 3 { a.row3(xb, row, pixelBytes, wb, t, tapBytes) } else { a.row5(xb, row, pixelBytes, wb, t, tapBytes) }
                    }
                    ep.load(sp, bp, group: gi)
                    let og = out + 8 * gi
                    ep.emit(a.a0, A.self, to: og); ep.emit(a.a1, A.self, to: og + c)
                    ep.emit(a.a2, A.self, to: og + 2 * c); ep.emit(a.a3, A.self, to: og + 3 * c)
                    ep.emit(a.a4, A.self, to: og + 4 * c); ep.emit(a.a5, A.self, to: og + 5 * c)
                    ep.emit(a.a6, A.self, to: og + 6 * c); ep.emit(a.a7, A.self, to: og + 7 * c)
                }
                ox += 8
                continue
            }
            if ox >= interiorLo && ox + 8 <= interiorHi {
                for gi in 0..<groups {
                    var a0 = SIMD8<Float>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
                    for ky in kyLo..<kyHi {
                        let row = pixelBytes * ((oy * st - pad + ky * d) * w + ox * st - pad) + 32 * gi
                        for kx in 0..<k {
                            let wv = load8(wb, tapBytes * (ky * k + kx) + 32 * gi), p = row + pixelBytes * kx * d
                            a0.addProduct(load8(xb, p), wv); a1.addProduct(load8(xb, p + step), wv)
                            a2.addProduct(load8(xb, p + 2 * step), wv); a3.addProduct(load8(xb, p + 3 * step), wv)
                            a4.addProduct(load8(xb, p + 4 * step), wv); a5.addProduct(load8(xb, p + 5 * step), wv)
                            a6.addProduct(load8(xb, p + 6 * step), wv); a7.addProduct(load8(xb, p + 7 * step), wv)
                        }
                    }
                    ep.load(sp, bp, group: gi)
                    let og = out + 8 * gi
                    ep.emit(a0, A.self, to: og); ep.emit(a1, A.self, to: og + c)
                    ep.emit(a2, A.self, to: og + 2 * c); ep.emit(a3, A.self, to: og + 3 * c)
                    ep.emit(a4, A.self, to: og + 4 * c); ep.emit(a5, A.self, to: og + 5 * c)
                    ep.emit(a6, A.self, to: og + 6 * c); ep.emit(a7, A.self, to: og + 7 * c)
                }
                ox += 8
                continue
            }
            // One pixel (border or row tail): horizontal taps inside the input are kx in kxLo ..< kxHi; channel
            // groups four at a time (four independent chains), then one at a time.
            var kxLo = 0, kxHi = k
            while kxLo < k && ox * st - pad + kxLo * d < 0 { kxLo += 1 }
            while kxHi > kxLo && ox * st - pad + (kxHi - 1) * d >= w { kxHi -= 1 }
            var gi = 0
            while gi < groups {
                let n = groups - gi >= 4 ? 4 : 1
                var a0 = SIMD8<Float>(), a1 = a0, a2 = a0, a3 = a0
                for ky in kyLo..<kyHi {
                    let iy = oy * st - pad + ky * d
                    for kx in kxLo..<kxHi {
                        let p = pixelBytes * (iy * w + ox * st - pad + kx * d) + 32 * gi
                        let t = tapBytes * (ky * k + kx) + 32 * gi
                        a0.addProduct(load8(xb, p), load8(wb, t))
                        if n == 4 {
                            a1.addProduct(load8(xb, p + 32), load8(wb, t + 32))
                            a2.addProduct(load8(xb, p + 64), load8(wb, t + 64))
                            a3.addProduct(load8(xb, p + 96), load8(wb, t + 96))
                        }
                    }
                }
                ep.load(sp, bp, group: gi)
                ep.emit(a0, A.self, to: out + 8 * gi)
                if n == 4 {
                    ep.load(sp, bp, group: gi + 1); ep.emit(a1, A.self, to: out + 8 * gi + 8)
                    ep.load(sp, bp, group: gi + 2); ep.emit(a2, A.self, to: out + 8 * gi + 16)
                    ep.load(sp, bp, group: gi + 3); ep.emit(a3, A.self, to: out + 8 * gi + 24)
                }
                gi += n
            }
            ox += 1
        }
    }
}

// MARK: - 1x1 conv

/// Vectorized int8 1x1 conv (a GEMM, with the fused residual add when `residual` is given) for a multiple of 8 output
/// channels, bit-exact with `s8_conv1x1_reference`: weights packed by `s8_pack_conv1x1_16` ([cout / 16][cin][16]
/// floats; group g of 8 channels is lanes (g % 2) * 8 ..< +8 of block g / 2). Tiles of 8 pixels x 8 output channels:
/// the tile's input rows are widened once to floats in `scratch` (`s8_conv1x1_scratch_count(cin:)`), then each
/// input channel costs one weight vector load and 8 broadcast multiply-adds. Meant for the few-input layers at high
/// resolution (mn04_as: features.1.project 8 -> 8, features.2.expand 8 -> 24 over 32 000 pixels), where the
/// epilogue dominates and 16-lane blocks would leave lanes empty. Precondition (caller): the float sums are exact,
/// s8_float_sums_exact(k: cin, maxInput: 128, maxWeight: max |w|) (cin <= 64 for 12-bit weights).
public func s8_conv1x1_c8n_8x8_simd(
    input: UnsafeBufferPointer<Int8>, pixels: Int, cin: Int,
    packed: UnsafeBufferPointer<Float>, cout: Int, epilogue e: S8Epilogue,
    residual: UnsafeBufferPointer<Int8>? = nil, scratch: UnsafeMutableBufferPointer<Float>,
    output: UnsafeMutableBufferPointer<Int8>
) {
    precondition(cout > 0 && cout % 8 == 0 && e.channels == cout,
                 "s8_conv1x1_c8n_8x8_simd needs a multiple of 8 output channels, not \(cout)")
    precondition(cin >= 1 && cin <= s8FloatExactMaxK, "cin \(cin) outside 1...\(s8FloatExactMaxK)")
    precondition(input.count >= pixels * cin && output.count >= pixels * cout)
    precondition(packed.count >= s8_packed_conv1x1_16_count(cin: cin, cout: cout))
    precondition(scratch.count >= s8_conv1x1_scratch_count(cin: cin))
    precondition(residual == nil || residual!.count >= pixels * cout)
    guard pixels > 0 else { return }
    let g = GEMM8(x: input.baseAddress!, pixels: pixels, cin: cin, w: UnsafeRawPointer(packed.baseAddress!), cout: cout,
                  xs: scratch.baseAddress!, res: residual?.baseAddress, o: output.baseAddress!)
    e.scale.withUnsafeBufferPointer { scale in
        e.biasF.withUnsafeBufferPointer { bias in
            let sp = UnsafeRawPointer(scale.baseAddress!), bp = UnsafeRawPointer(bias.baseAddress!)
            if residual == nil {
                dispatch(e.activation,
                         none: { conv1x1C8(Identity8.self, NoResidual8.self, g, e, sp, bp) },
                         relu: { conv1x1C8(ReLU8.self, NoResidual8.self, g, e, sp, bp) },
                         hardswish: { conv1x1C8(Hardswish8.self, NoResidual8.self, g, e, sp, bp) })
            } else {
                dispatch(e.activation,
                         none: { conv1x1C8(Identity8.self, AddResidual8.self, g, e, sp, bp) },
                         relu: { conv1x1C8(ReLU8.self, AddResidual8.self, g, e, sp, bp) },
                         hardswish: { conv1x1C8(Hardswish8.self, AddResidual8.self, g, e, sp, bp) })
            }
        }
    }
}

/// Whether a 1x1 tile loop adds a residual, as a type (so that the test folds away after specialization).
protocol Residual8 {
    /// True when the epilogue adds the residual map.
    static var present: Bool { get }
}

/// No residual add.
enum NoResidual8: Residual8 {
    /// False.
    @_transparent static var present: Bool { false }
}

/// Fused residual add.
enum AddResidual8: Residual8 {
    /// True.
    @_transparent static var present: Bool { true }
}

/// Operands of a 1x1 call: input [pixels][cin], packed weights, cout, float scratch, residual and output
/// [pixels][cout].
struct GEMM8 {
    var x: UnsafePointer<Int8>, pixels: Int, cin: Int, w: UnsafeRawPointer, cout: Int
    var xs: UnsafeMutablePointer<Float>, res: UnsafePointer<Int8>?, o: UnsafeMutablePointer<Int8>
}

/// The body of `s8_conv1x1_c8n_8x8_simd` for activation `A` and residual mode `R`.
@inline(__always)
func conv1x1C8<A: Activation8, R: Residual8>(_: A.Type, _: R.Type, _ g: GEMM8, _ e: S8Epilogue,
                                             _ sp: UnsafeRawPointer, _ bp: UnsafeRawPointer) {
    let cin = g.cin, cout = g.cout, xs = g.xs
    var ep = Epilogue8(e)
    var p = 0
    while p < g.pixels {
        let n = min(8, g.pixels - p)
        let src = g.x + p * cin
        for i in 0..<(n * cin) { xs[i] = Float(src[i]) }
        // Rows past the tail repeat the last pixel (computed, not stored).
        let r0 = xs, r1 = xs + min(1, n - 1) * cin, r2 = xs + min(2, n - 1) * cin, r3 = xs + min(3, n - 1) * cin
        let r4 = xs + min(4, n - 1) * cin, r5 = xs + min(5, n - 1) * cin, r6 = xs + min(6, n - 1) * cin
        let r7 = xs + min(7, n - 1) * cin
        for gi in 0..<(cout / 8) {
            var a0 = SIMD8<Float>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
            // Group gi: block gi / 2 of [cout / 16][cin][16], lanes (gi % 2) * 8 ..< + 8.
            var wo = 4 * ((gi / 2) * cin * 16 + (gi % 2) * 8)
            for ci in 0..<cin {
                let wv = load8(g.w, wo)
                a0.addProduct(wv, r0[ci]); a1.addProduct(wv, r1[ci]); a2.addProduct(wv, r2[ci]); a3.addProduct(wv, r3[ci])
                a4.addProduct(wv, r4[ci]); a5.addProduct(wv, r5[ci]); a6.addProduct(wv, r6[ci]); a7.addProduct(wv, r7[ci])
                wo += 64
            }
            ep.load(sp, bp, group: gi)
            let off = p * cout + 8 * gi
            emitRow(a0, A.self, R.self, ep, g, off)
            if n > 1 { emitRow(a1, A.self, R.self, ep, g, off + cout) }
            if n > 2 { emitRow(a2, A.self, R.self, ep, g, off + 2 * cout) }
            if n > 3 { emitRow(a3, A.self, R.self, ep, g, off + 3 * cout) }
            if n > 4 { emitRow(a4, A.self, R.self, ep, g, off + 4 * cout) }
            if n > 5 { emitRow(a5, A.self, R.self, ep, g, off + 5 * cout) }
            if n > 6 { emitRow(a6, A.self, R.self, ep, g, off + 6 * cout) }
            if n > 7 { emitRow(a7, A.self, R.self, ep, g, off + 7 * cout) }
        }
        p += n
    }
}

/// Requantizes 8 channels of one pixel at element offset `off` of the output (and of the residual when `R` has one).
@_transparent
func emitRow<A: Activation8, R: Residual8>(_ a: SIMD8<Float>, _: A.Type, _: R.Type, _ ep: Epilogue8, _ g: GEMM8,
                                           _ off: Int) {
    if R.present {
        ep.emit(a, A.self, residual: g.res! + off, to: g.o + off)
    } else {
        ep.emit(a, A.self, to: g.o + off)
    }
}

// MARK: - Kernels around a 16-bit stem output
//
// In this file and not a file of their own: SwiftPM compiles a release target with multi-threaded whole-module
// optimization (-num-threads N, one LLVM module per source file), and every generic specialization the target needs
// (UnsafeRawPointer.load / loadUnaligned of SIMD8 vectors, min<Int>) is emitted into the first file's LLVM module
// only, where the other files' kernels cannot inline it. As a separate Int16Stem.swift (sorted before this file) these
// kernels made s8_dwconv_c8n_8x8_simd 1.6x and s8_conv1x1_c8n_8x8_simd with a residual 1.9x slower (64 x 500 x 8
// maps, microbenchmark of the SwiftPM-built objects, median of 41 runs); renamed to sort after it, the int16 kernels
// were the slow ones (depthwise 2.5x). `-num-threads 0` would give one module, but SwiftPM then links stale per-file
// objects. One file keeps every kernel of the target in one LLVM module.
//
// Kernels around a 16-bit stem output (docs/quantization.md, "Held-out sensitivity analysis": quantizing
// `features.0.act` at 16 bits keeps the float top-1 label on more held-out clips than at 8 bits). Three layers touch
// that map: the stem writes it (int16 output), the first depthwise conv reads it (int16 input, int8 output), and the
// first block's projection adds it as its residual (int16 residual, int8 input and output). Each has a scalar
// reference (the specification) and an 8-lane vector kernel bit-exact with it.
//
// int16 activations: real = scale * (q - zp), q and zp in -32768...32767 (zp stored as Int32 in `S8Epilogue`).
// Rounding `s16_round`: the magic-bias rounding of `s8_round` with 16-bit clamp bounds.
// ref: XNNPACK src/xnnpack/requantization.h (fp32 requantization with the magic bias), as EarTagKernels.
//
// Exactness. Stem: int8 input, so the float-lane sums of `s8_stem3x3s2_c8_simd` stay exact (9 * 255 * 2047 < 2^24).
// Depthwise on int16: |x - zp| <= 65535 and |w| <= 2047 make float sums inexact (a 3x3 sum reaches 1.2e9), so the
// vector kernel accumulates in int32 lanes (`&*`, `&+`: vpmulld / vpaddd) and converts the exact int32 sum with
// Float(sum) once, as `S8Epilogue.apply` does (inexact above 2^24, but the same rounding in both paths). 1x1 with
// int16 residual: the int8 x 12-bit-weight sums are exact floats as in `s8_conv1x1_c8n_8x8_simd`; the residual
// term Float(r) - Float(zp_r) equals Float(r - zp_r) because |r - zp_r| <= 65535 < 2^24.

/// The zero points of int16 maps (the clamp bounds of `s16_round` then stay within |y| <= 65535 < 2^22).
public let s16ZeroPoints: ClosedRange<Int32> = -32768...32767

/// Rounds a real value already in output steps to int16 with zero point `zp` (-32768...32767): clamp to
/// [-32768 - zp, 32767 - zp], round to nearest even (magic addition), add zp. Invariant: after the clamp
/// |y| <= 65535 < 2^22, so the magic addition rounds exactly.
@inline(__always)
public func s16_round(_ y: Float, zeroPoint zp: Int32) -> Int16 {
    let c = min(max(y, Float(-32768 - zp)), Float(32767 - zp))
    return Int16(truncatingIfNeeded: Int32(bitPattern: (c + magic).bitPattern) &- magicBits &+ zp)
}

/// The real value `S8Epilogue.apply` computes before its residual step and rounding, act((Float(sum) + biasF[c]) *
/// scale[c]), with the same float operations in the same order.
@inline(__always)
func s16_activated(_ e: S8Epilogue, _ sum: Int32, channel c: Int) -> Float {
    var y = (Float(sum) + e.biasF[c]) * e.scale[c]
    switch e.activation {
    case .none: break
    case .relu: y = max(y, 0)
    case .hardswish: y = y * min(max(y + 3, 0), 6) * (1 / 6 as Float)
    }
    return y
}

/// The int16-output and int16-residual paths of the 8-lane epilogue.
extension Epilogue8 {
    /// The constants of `e` for an int16 output: clamp bounds -32768 - zp and 32767 - zp.
    init(int16Output e: S8Epilogue) {
        self.init(e)
        lo = Float(-32768 - e.zeroPoint); hi = Float(32767 - e.zeroPoint)
    }

    /// `emit` with an int16 store (`s16_round` lane by lane). Invariant: after the clamp |y| <= 65535 < 2^22, so the
    /// magic addition rounds exactly. Needs the bounds of `init(int16Output:)`.
    @_transparent
    func emit16<A: Activation8>(_ sum: SIMD8<Float>, _: A.Type, to o: UnsafeMutablePointer<Int16>) {
        let c = clamp8(A.apply((sum + bias) * scale) * inverseOutputScale, lo, hi)
        let q = unsafeBitCast(c + SIMD8(repeating: magic), to: SIMD8<Int32>.self)
            &- SIMD8(repeating: magicBits &- zeroPoint)
        for l in 0..<8 { o[l] = Int16(truncatingIfNeeded: q[l]) }
    }

    /// `emit` with the fused residual add of `S8Epilogue.apply` reading 8 int16 residual values at `r` (int8 store).
    /// Float(r) - Float(zp_r) equals Float(r - zp_r): |r - zp_r| <= 65535 is exact in float.
    @_transparent
    func emit<A: Activation8>(_ sum: SIMD8<Float>, _: A.Type, residual16 r: UnsafePointer<Int16>,
                              to o: UnsafeMutablePointer<Int8>) {
        let t = UnsafeRawPointer(r).loadUnaligned(as: SIMD8<Int16>.self)
        var f = SIMD8<Float>()
        for l in 0..<8 { f[l] = Float(t[l]) }
        store(A.apply((sum + bias) * scale) + residualScale * (f - residualZeroPoint), to: o)
    }
}

// MARK: - Stem with int16 output

/// Scalar reference int16-output stem: 3x3 stride-2 conv, zero padding 1, one int8 plane [h][w] to [ho][wo][cout]
/// (weights tap-major [9][cout]); padded taps skipped like `s8_stem3x3s2_reference`; then `S8Epilogue.apply`'s float
/// operations and `s16_round` with the epilogue's (16-bit) output scale and zero point. Invariant: 9 taps of
/// |w (x - zp)| <= 2047 * 255 stay below 2^23.
public func s16_stem3x3s2_reference(
    input: UnsafeBufferPointer<Int8>, height h: Int, width w: Int, inputZeroPoint: Int32,
    weights: UnsafeBufferPointer<Int16>, cout: Int, epilogue: S8Epilogue,
    output: UnsafeMutableBufferPointer<Int16>
) {
    let ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1
    precondition(input.count >= h * w && output.count >= ho * wo * cout && weights.count >= cout * 9)
    precondition(epilogue.channels == cout && s16ZeroPoints.contains(epilogue.zeroPoint))
    for oy in 0..<ho {
        for ox in 0..<wo {
            for co in 0..<cout {
                var acc: Int32 = 0
                for ky in 0..<3 where oy * 2 - 1 + ky >= 0 && oy * 2 - 1 + ky < h {
                    for kx in 0..<3 where ox * 2 - 1 + kx >= 0 && ox * 2 - 1 + kx < w {
                        let x = Int32(input[(oy * 2 - 1 + ky) * w + ox * 2 - 1 + kx])
                        acc &+= (x - inputZeroPoint) * Int32(weights[(ky * 3 + kx) * cout + co])
                    }
                }
                let y = s16_activated(epilogue, acc, channel: co) * epilogue.inverseOutputScale
                output[(oy * wo + ox) * cout + co] = s16_round(y, zeroPoint: epilogue.zeroPoint)
            }
        }
    }
}

/// Vectorized int16-output stem for exactly 8 output channels, bit-exact with `s16_stem3x3s2_reference` (cout 8):
/// the structure of `s8_stem3x3s2_c8_simd` (centered plane from `s8_center_plane_f32`, weights from
/// `s8_pack_dwconv(channels: 8, kernel: 3)`, the nine taps in registers, interior pixels in tiles of 8, exact float
/// sums: 9 * 255 * 2047 < 2^24) with an int16 store (`Epilogue8.emit16`).
public func s16_stem3x3s2_c8_simd(
    centered: UnsafeBufferPointer<Float>, height h: Int, width w: Int,
    packed: UnsafeBufferPointer<Float>, epilogue e: S8Epilogue,
    output: UnsafeMutableBufferPointer<Int16>
) {
    let ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1
    precondition(e.channels == 8, "s16_stem3x3s2_c8_simd needs 8 output channels, not \(e.channels)")
    precondition(h >= 1 && w >= 1 && centered.count >= h * w && output.count >= ho * wo * 8 && packed.count >= 9 * 16)
    let x = centered.baseAddress!, pw = UnsafeRawPointer(packed.baseAddress!), o = output.baseAddress!
    precondition(s16ZeroPoints.contains(e.zeroPoint), "output zero point \(e.zeroPoint) outside the int16 range")
    let ep = Epilogue8(int16Output: e)
    dispatch(e.activation,
             none: { stemC8(Identity8.self, x, h, w, pw, ep, o) },
             relu: { stemC8(ReLU8.self, x, h, w, pw, ep, o) },
             hardswish: { stemC8(Hardswish8.self, x, h, w, pw, ep, o) })
}

// MARK: - Depthwise conv reading int16

/// Largest |x - zp| of an int16 map (both ends of the range).
public let s16MaxCentered = 65_535

/// True when the int32 sum of a k x k depthwise conv on an int16 map with |w| <= maxWeight cannot overflow:
/// k * k * 65535 * maxWeight < 2^31 (k = 3 with 12-bit weights: 1.2e9).
public func s16_dw_sums_exact(kernel k: Int, maxWeight: Int) -> Bool { k * k * s16MaxCentered * maxWeight < 1 << 31 }

/// Largest |v| of `n` integers at `p`.
@inline(__always)
func s16_max_abs<T: BinaryInteger>(_ p: UnsafeBufferPointer<T>, _ n: Int) -> Int {
    var m = 0
    for i in 0..<n { m = max(m, abs(Int(p[i]))) }
    return m
}

/// Scalar reference depthwise conv from an int16 map to int8 over output rows `rows`: sum = sum_taps w[tap][c] *
/// (x - zp_in) in int32, padded taps skipped, then `S8Epilogue.apply` (Float(sum), int8 output). Layout: input
/// [h][w][c] int16, weights tap-major [k*k][c], output [ho][wo][c] (`f32_conv_out_size`). Invariant (checked):
/// `s16_dw_sums_exact(kernel: k, maxWeight: max |w|)`, so the int32 sum is exact.
public func s16_dwconv_reference(
    input: UnsafeBufferPointer<Int16>, height h: Int, width w: Int, channels c: Int, inputZeroPoint: Int32,
    weights: UnsafeBufferPointer<Int16>, kernel k: Int, stride s: Int, dilation d: Int, epilogue: S8Epilogue,
    output: UnsafeMutableBufferPointer<Int8>, rows: Range<Int>
) {
    let pad = (k - 1) / 2 * d
    let ho = f32_conv_out_size(h, kernel: k, stride: s, dilation: d)
    let wo = f32_conv_out_size(w, kernel: k, stride: s, dilation: d)
    precondition(input.count >= h * w * c && output.count >= ho * wo * c && weights.count >= c * k * k)
    precondition(rows.lowerBound >= 0 && rows.upperBound <= ho && epilogue.channels == c)
    precondition(s16_dw_sums_exact(kernel: k, maxWeight: s16_max_abs(weights, k * k * c)),
                 "s16_dwconv_reference: int32 sums could overflow for kernel \(k)")
    for oy in rows {
        for ox in 0..<wo {
            for ch in 0..<c {
                var acc: Int32 = 0
                for ky in 0..<k where oy * s - pad + ky * d >= 0 && oy * s - pad + ky * d < h {
                    for kx in 0..<k where ox * s - pad + kx * d >= 0 && ox * s - pad + kx * d < w {
                        let x = Int32(input[((oy * s - pad + ky * d) * w + ox * s - pad + kx * d) * c + ch])
                        acc &+= (x - inputZeroPoint) * Int32(weights[(ky * k + kx) * c + ch])
                    }
                }
                output[(oy * wo + ox) * c + ch] = epilogue.apply(acc, channel: ch)
            }
        }
    }
}

/// Writes x - zp of `count` int16 values as int32 into `centered` (dense): the input of `s16_dwconv_c8n_8x8_i32`.
public func s16_center_i32(input: UnsafeBufferPointer<Int16>, count: Int, zeroPoint: Int32,
                           centered: UnsafeMutableBufferPointer<Int32>) {
    precondition(input.count >= count && centered.count >= count)
    guard count > 0 else { return }
    let x = input.baseAddress!, o = centered.baseAddress!
    for i in 0..<count { o[i] = Int32(x[i]) &- zeroPoint }
}

/// Channels rounded up to a multiple of 8 (the row pitch of `s16_pack_dwconv_i32`).
func s16_dw_pitch(_ c: Int) -> Int { (c + 7) / 8 * 8 }

/// Number of int32 values `s16_pack_dwconv_i32` writes: [k*k][c rounded up to a multiple of 8].
public func s16_pack_dwconv_i32_count(channels c: Int, kernel k: Int) -> Int { k * k * s16_dw_pitch(c) }

/// Packs tap-major [k*k][c] depthwise weights as int32 [k*k][c rounded up to 8], zero past c.
public func s16_pack_dwconv_i32(weights: UnsafeBufferPointer<Int16>, channels c: Int, kernel k: Int,
                                packed: UnsafeMutableBufferPointer<Int32>) {
    let pitch = s16_dw_pitch(c)
    precondition(weights.count >= k * k * c && packed.count >= k * k * pitch)
    for t in 0..<(k * k) { for ch in 0..<pitch { packed[t * pitch + ch] = ch < c ? Int32(weights[t * c + ch]) : 0 } }
}

/// Loads the 8 int32 lanes at byte offset `offset` of `p`.
@_transparent
func load8i(_ p: UnsafeRawPointer, _ offset: Int) -> SIMD8<Int32> {
    p.loadUnaligned(fromByteOffset: offset, as: SIMD8<Int32>.self)
}

/// Lane-wise Float(v) (one vcvtdq2ps; each lane rounds like the scalar Float(Int32)).
@_transparent
func float8(_ v: SIMD8<Int32>) -> SIMD8<Float> {
    var f = SIMD8<Float>()
    for l in 0..<8 { f[l] = Float(v[l]) }
    return f
}

/// Vectorized depthwise conv from an int16 map to int8 for channels in groups of 8 (c a multiple of 8) over output
/// rows `rows`, bit-exact with `s16_dwconv_reference`: reads x - zp as dense int32 [rows][w][c] (`s16_center_i32`,
/// starting at input row `centeredFirstRow`, so that callers can center band by band) and the weights of
/// `s16_pack_dwconv_i32`. Exact int32 lanes (`&*`, `&+`); each sum goes to float once, then `S8Epilogue.apply`'s
/// operations lane by lane. Interior output pixels go in tiles of 8 pixels x 8 channels (one weight vector per eight
/// multiply-adds); border pixels and row tails one pixel x 32 channels. Invariant (checked on the packed weights):
/// `s16_dw_sums_exact(kernel: k, maxWeight: max |w|)`.
public func s16_dwconv_c8n_8x8_i32(
    centered: UnsafeBufferPointer<Int32>, height h: Int, width w: Int, channels c: Int,
    packed: UnsafeBufferPointer<Int32>, kernel k: Int, stride st: Int, dilation d: Int, epilogue e: S8Epilogue,
    output: UnsafeMutableBufferPointer<Int8>, rows: Range<Int>, centeredFirstRow first: Int = 0
) {
    let ho = f32_conv_out_size(h, kernel: k, stride: st, dilation: d)
    let wo = f32_conv_out_size(w, kernel: k, stride: st, dilation: d)
    precondition(c > 0 && c % 8 == 0 && e.channels == c, "s16_dwconv_c8n_8x8_i32 needs a multiple of 8 channels, not \(c)")
    precondition(output.count >= ho * wo * c && packed.count >= s16_pack_dwconv_i32_count(channels: c, kernel: k))
    precondition(rows.lowerBound >= 0 && rows.upperBound <= ho)
    precondition(s16_dw_sums_exact(kernel: k, maxWeight: s16_max_abs(packed, k * k * c)),
                 "s16_dwconv_c8n_8x8_i32: int32 sums could overflow for kernel \(k)")
    guard !rows.isEmpty else { return }
    let needed = s8_dw_input_rows(rows, height: h, kernel: k, stride: st, dilation: d)
    precondition(first <= needed.lowerBound && centered.count >= (needed.upperBound - first) * w * c,
                 "centered rows do not cover the input rows of output rows \(rows)")
    // Input row iy is row iy - first of `centered`; the byte offset of pixel (iy, ix) is 4 * c * (iy * w + ix).
    let xb = UnsafeRawPointer(centered.baseAddress!) - 4 * c * first * w
    let shape = Shape8(h: h, w: w, c: c, wo: wo, k: k, st: st, d: d)
    let wb = UnsafeRawPointer(packed.baseAddress!), o = output.baseAddress!
    e.scale.withUnsafeBufferPointer { scale in
        e.biasF.withUnsafeBufferPointer { bias in
            let sp = UnsafeRawPointer(scale.baseAddress!), bp = UnsafeRawPointer(bias.baseAddress!)
            dispatch(e.activation,
                     none: { dwconvI32(Identity8.self, xb, wb, shape, e, sp, bp, o, rows) },
                     relu: { dwconvI32(ReLU8.self, xb, wb, shape, e, sp, bp, o, rows) },
                     hardswish: { dwconvI32(Hardswish8.self, xb, wb, shape, e, sp, bp, o, rows) })
        }
    }
}

/// The 8 int32 accumulators of an 8-pixel x 8-channel tile of `dwconvI32` at stride 1 and dilation 1.
struct TileI32 {
    var a0 = SIMD8<Int32>(), a1 = SIMD8<Int32>(), a2 = SIMD8<Int32>(), a3 = SIMD8<Int32>()
    var a4 = SIMD8<Int32>(), a5 = SIMD8<Int32>(), a6 = SIMD8<Int32>(), a7 = SIMD8<Int32>()

    /// Adds one kernel row of a 3x3 kernel: input pixels x0...x9 (int32 lanes) from byte offset `p` of `xb` (pitch
    /// `pb`), tap weights from offset `t` of `wb` (pitch `tb`); pixel j takes x[j] w0 + x[j+1] w1 + x[j+2] w2.
    /// Integer sums, exact in any order (the bound of `s16_dwconv_c8n_8x8_i32`).
    @_transparent
    mutating func row3(_ xb: UnsafeRawPointer, _ p: Int, _ pb: Int, _ wb: UnsafeRawPointer, _ t: Int, _ tb: Int) {
        let w0 = load8i(wb, t), w1 = load8i(wb, t + tb), w2 = load8i(wb, t + 2 * tb)
        let x0 = load8i(xb, p), x1 = load8i(xb, p + pb), x2 = load8i(xb, p + 2 * pb), x3 = load8i(xb, p + 3 * pb)
        let x4 = load8i(xb, p + 4 * pb), x5 = load8i(xb, p + 5 * pb), x6 = load8i(xb, p + 6 * pb), x7 = load8i(xb, p + 7 * pb)
        let x8 = load8i(xb, p + 8 * pb), x9 = load8i(xb, p + 9 * pb)
        a0 &+= x0 &* w0; a1 &+= x1 &* w0; a2 &+= x2 &* w0; a3 &+= x3 &* w0
        a4 &+= x4 &* w0; a5 &+= x5 &* w0; a6 &+= x6 &* w0; a7 &+= x7 &* w0
        a0 &+= x1 &* w1; a1 &+= x2 &* w1; a2 &+= x3 &* w1; a3 &+= x4 &* w1
        a4 &+= x5 &* w1; a5 &+= x6 &* w1; a6 &+= x7 &* w1; a7 &+= x8 &* w1
        a0 &+= x2 &* w2; a1 &+= x3 &* w2; a2 &+= x4 &* w2; a3 &+= x5 &* w2
        a4 &+= x6 &* w2; a5 &+= x7 &* w2; a6 &+= x8 &* w2; a7 &+= x9 &* w2
    }
}

/// The body of `s16_dwconv_c8n_8x8_i32` for activation `A` (`xb`: the centered int32 input, shifted so that input
/// row 0 is at offset 0; `wb`: packed int32 weights [k*k][c]; `sp`/`bp`: the epilogue's padded scale and bias).
@inline(__always)
func dwconvI32<A: Activation8>(_: A.Type, _ xb: UnsafeRawPointer, _ wb: UnsafeRawPointer, _ g: Shape8,
                               _ e: S8Epilogue, _ sp: UnsafeRawPointer, _ bp: UnsafeRawPointer,
                               _ o: UnsafeMutablePointer<Int8>, _ rows: Range<Int>) {
    let (h, w, c, wo, k, st, d) = (g.h, g.w, g.c, g.wo, g.k, g.st, g.d)
    let pad = (k - 1) / 2 * d, groups = c / 8, tapBytes = 4 * c, pixelBytes = 4 * c
    // Interior columns: ox * st - pad >= 0 and ox * st - pad + (k - 1) * d <= w - 1.
    let interiorLo = (pad + st - 1) / st
    let lastStart = w - 1 - (k - 1) * d + pad
    let interiorHi = lastStart < 0 ? 0 : min(wo, lastStart / st + 1)
    let step = pixelBytes * st
    var ep = Epilogue8(e)
    for oy in rows {
        // Vertical taps inside the input: ky in kyLo ..< kyHi.
        var kyLo = 0, kyHi = k
        while kyLo < k && oy * st - pad + kyLo * d < 0 { kyLo += 1 }
        while kyHi > kyLo && oy * st - pad + (kyHi - 1) * d >= h { kyHi -= 1 }
        var ox = 0
        while ox < wo {
            let out = o + (oy * wo + ox) * c
            if ox >= interiorLo && ox + 8 <= interiorHi && st == 1 && d == 1 && k == 3 {
                // Stride 1, 3x3 (block 1 of every model with the 16-bit stem output): each input pixel of a kernel
                // row loaded once, as in `dwconvC8` (`TileI32.row3`).
                for gi in 0..<groups {
                    var a = TileI32()
                    for ky in kyLo..<kyHi {
                        a.row3(xb, pixelBytes * ((oy - pad + ky) * w + ox - pad) + 32 * gi, pixelBytes,
                               wb, tapBytes * ky * 3 + 32 * gi, tapBytes)
                    }
                    ep.load(sp, bp, group: gi)
                    let og = out + 8 * gi
                    ep.emit(float8(a.a0), A.self, to: og); ep.emit(float8(a.a1), A.self, to: og + c)
                    ep.emit(float8(a.a2), A.self, to: og + 2 * c); ep.emit(float8(a.a3), A.self, to: og + 3 * c)
                    ep.emit(float8(a.a4), A.self, to: og + 4 * c); ep.emit(float8(a.a5), A.self, to: og + 5 * c)
                    ep.emit(float8(a.a6), A.self, to: og + 6 * c); ep.emit(float8(a.a7), A.self, to: og + 7 * c)
                }
                ox += 8
                continue
            }
            if ox >= interiorLo && ox + 8 <= interiorHi {
                for gi in 0..<groups {
                    var a0 = SIMD8<Int32>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
                    for ky in kyLo..<kyHi {
                        let row = pixelBytes * ((oy * st - pad + ky * d) * w + ox * st - pad) + 32 * gi
                        for kx in 0..<k {
                            let wv = load8i(wb, tapBytes * (ky * k + kx) + 32 * gi), p = row + pixelBytes * kx * d
                            a0 &+= load8i(xb, p) &* wv; a1 &+= load8i(xb, p + step) &* wv
                            a2 &+= load8i(xb, p + 2 * step) &* wv; a3 &+= load8i(xb, p + 3 * step) &* wv
                            a4 &+= load8i(xb, p + 4 * step) &* wv; a5 &+= load8i(xb, p + 5 * step) &* wv
                            a6 &+= load8i(xb, p + 6 * step) &* wv; a7 &+= load8i(xb, p + 7 * step) &* wv
                        }
                    }
                    ep.load(sp, bp, group: gi)
                    let og = out + 8 * gi
                    ep.emit(float8(a0), A.self, to: og); ep.emit(float8(a1), A.self, to: og + c)
                    ep.emit(float8(a2), A.self, to: og + 2 * c); ep.emit(float8(a3), A.self, to: og + 3 * c)
                    ep.emit(float8(a4), A.self, to: og + 4 * c); ep.emit(float8(a5), A.self, to: og + 5 * c)
                    ep.emit(float8(a6), A.self, to: og + 6 * c); ep.emit(float8(a7), A.self, to: og + 7 * c)
                }
                ox += 8
                continue
            }
            // One pixel (border or row tail): horizontal taps inside the input are kx in kxLo ..< kxHi; channel
            // groups four at a time (four independent chains), then one at a time (two loops: one loop with an `if n == 4`
            // inside crashed swift-frontend 6.3.1 in IRGen, CreateShuffleVector).
            var kxLo = 0, kxHi = k
            while kxLo < k && ox * st - pad + kxLo * d < 0 { kxLo += 1 }
            while kxHi > kxLo && ox * st - pad + (kxHi - 1) * d >= w { kxHi -= 1 }
            var gi = 0
            while gi + 4 <= groups {
                var a0 = SIMD8<Int32>(), a1 = a0, a2 = a0, a3 = a0
                for ky in kyLo..<kyHi {
                    let iy = oy * st - pad + ky * d
                    for kx in kxLo..<kxHi {
                        let p = pixelBytes * (iy * w + ox * st - pad + kx * d) + 32 * gi
                        let t = tapBytes * (ky * k + kx) + 32 * gi
                        a0 &+= load8i(xb, p) &* load8i(wb, t); a1 &+= load8i(xb, p + 32) &* load8i(wb, t + 32)
                        a2 &+= load8i(xb, p + 64) &* load8i(wb, t + 64); a3 &+= load8i(xb, p + 96) &* load8i(wb, t + 96)
                    }
                }
                ep.load(sp, bp, group: gi); ep.emit(float8(a0), A.self, to: out + 8 * gi)
                ep.load(sp, bp, group: gi + 1); ep.emit(float8(a1), A.self, to: out + 8 * gi + 8)
                ep.load(sp, bp, group: gi + 2); ep.emit(float8(a2), A.self, to: out + 8 * gi + 16)
                ep.load(sp, bp, group: gi + 3); ep.emit(float8(a3), A.self, to: out + 8 * gi + 24)
                gi += 4
            }
            while gi < groups {
                var a0 = SIMD8<Int32>()
                for ky in kyLo..<kyHi {
                    let iy = oy * st - pad + ky * d
                    for kx in kxLo..<kxHi {
                        a0 &+= load8i(xb, pixelBytes * (iy * w + ox * st - pad + kx * d) + 32 * gi)
                            &* load8i(wb, tapBytes * (ky * k + kx) + 32 * gi)
                    }
                }
                ep.load(sp, bp, group: gi); ep.emit(float8(a0), A.self, to: out + 8 * gi)
                gi += 1
            }
            ox += 1
        }
    }
}

// MARK: - 1x1 conv with an int16 residual

/// Scalar reference int8 1x1 conv whose fused residual add reads an int16 map: sum[p][co] = sum_ci input[p][ci] *
/// weights[co][ci] in int32, then `S8Epilogue.apply`'s operations with the residual step y + residualScale *
/// Float(Int32(r) - residualZeroPoint) (r int16, zp_r 16-bit) and `s8_round`. Layout: input [pixels][cin], weights
/// [cout][cin], residual and output [pixels][cout]. Invariant: as `s8_conv1x1_reference` (|x w| < 2^18, cin < 8192).
public func s8_conv1x1_res16_reference(
    input: UnsafeBufferPointer<Int8>, pixels: Int, cin: Int,
    weights: UnsafeBufferPointer<Int16>, cout: Int, epilogue: S8Epilogue,
    residual: UnsafeBufferPointer<Int16>, output: UnsafeMutableBufferPointer<Int8>
) {
    precondition(input.count >= pixels * cin && output.count >= pixels * cout && residual.count >= pixels * cout)
    precondition(weights.count >= cout * cin && epilogue.channels == cout && cin < 8192)
    precondition(s16ZeroPoints.contains(epilogue.residualZeroPoint))
    for p in 0..<pixels {
        for co in 0..<cout {
            var acc: Int32 = 0
            for ci in 0..<cin { acc &+= Int32(input[p * cin + ci]) * Int32(weights[co * cin + ci]) }
            var y = s16_activated(epilogue, acc, channel: co)
            y = y + epilogue.residualScale * Float(Int32(residual[p * cout + co]) - epilogue.residualZeroPoint)
            output[p * cout + co] = s8_round(y * epilogue.inverseOutputScale, zeroPoint: epilogue.zeroPoint)
        }
    }
}

/// Vectorized `s8_conv1x1_res16_reference` for a multiple of 8 output channels, bit-exact with it: the tiles of
/// `s8_conv1x1_c8n_8x8_simd` (8 pixels x 8 output channels, the tile's inputs widened once to floats in `scratch`,
/// `s8_conv1x1_scratch_count(cin:)`; weights from `s8_pack_conv1x1_16`) with the int16 residual read by
/// `Epilogue8.emit(_:_:residual16:to:)`. Precondition: the float sums are exact, cin <= 64 for 12-bit weights
/// (s8_float_sums_exact(k: cin, maxInput: 128, maxWeight: 2047)).
public func s8_conv1x1_c8n_8x8_res16_simd(
    input: UnsafeBufferPointer<Int8>, pixels: Int, cin: Int,
    packed: UnsafeBufferPointer<Float>, cout: Int, epilogue e: S8Epilogue, residual: UnsafeBufferPointer<Int16>,
    scratch: UnsafeMutableBufferPointer<Float>, output: UnsafeMutableBufferPointer<Int8>
) {
    precondition(cout > 0 && cout % 8 == 0 && e.channels == cout,
                 "s8_conv1x1_c8n_8x8_res16_simd needs a multiple of 8 output channels, not \(cout)")
    precondition(cin >= 1 && cin <= s8FloatExactMaxK, "cin \(cin) outside 1...\(s8FloatExactMaxK)")
    precondition(input.count >= pixels * cin && output.count >= pixels * cout && residual.count >= pixels * cout)
    precondition(packed.count >= s8_packed_conv1x1_16_count(cin: cin, cout: cout))
    precondition(scratch.count >= s8_conv1x1_scratch_count(cin: cin))
    precondition(s16ZeroPoints.contains(e.residualZeroPoint), "residual zero point \(e.residualZeroPoint) outside the int16 range")
    guard pixels > 0 else { return }
    let g = GEMM8Res16(x: input.baseAddress!, pixels: pixels, cin: cin, w: UnsafeRawPointer(packed.baseAddress!),
                       cout: cout, xs: scratch.baseAddress!, res: residual.baseAddress!, o: output.baseAddress!)
    e.scale.withUnsafeBufferPointer { scale in
        e.biasF.withUnsafeBufferPointer { bias in
            let sp = UnsafeRawPointer(scale.baseAddress!), bp = UnsafeRawPointer(bias.baseAddress!)
            dispatch(e.activation,
                     none: { conv1x1Res16(Identity8.self, g, e, sp, bp) },
                     relu: { conv1x1Res16(ReLU8.self, g, e, sp, bp) },
                     hardswish: { conv1x1Res16(Hardswish8.self, g, e, sp, bp) })
        }
    }
}

/// Operands of a 1x1 call with an int16 residual: input [pixels][cin], packed weights, cout, float scratch, residual
/// and output [pixels][cout].
struct GEMM8Res16 {
    var x: UnsafePointer<Int8>, pixels: Int, cin: Int, w: UnsafeRawPointer, cout: Int
    var xs: UnsafeMutablePointer<Float>, res: UnsafePointer<Int16>, o: UnsafeMutablePointer<Int8>
}

/// The body of `s8_conv1x1_c8n_8x8_res16_simd` for activation `A`.
@inline(__always)
func conv1x1Res16<A: Activation8>(_: A.Type, _ g: GEMM8Res16, _ e: S8Epilogue, _ sp: UnsafeRawPointer,
                                  _ bp: UnsafeRawPointer) {
    let cin = g.cin, cout = g.cout, xs = g.xs
    var ep = Epilogue8(e)
    var p = 0
    while p < g.pixels {
        let n = min(8, g.pixels - p)
        let src = g.x + p * cin
        for i in 0..<(n * cin) { xs[i] = Float(src[i]) }
        // Rows past the tail repeat the last pixel (computed, not stored): row r starts at xs + min(r, n - 1) * cin.
        let r0 = xs, r1 = xs + min(1, n - 1) * cin, r2 = xs + min(2, n - 1) * cin, r3 = xs + min(3, n - 1) * cin
        let r4 = xs + min(4, n - 1) * cin, r5 = xs + min(5, n - 1) * cin, r6 = xs + min(6, n - 1) * cin
        let r7 = xs + min(7, n - 1) * cin
        for gi in 0..<(cout / 8) {
            var a0 = SIMD8<Float>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
            // Group gi: block gi / 2 of [cout / 16][cin][16], lanes (gi % 2) * 8 ..< + 8.
            var woff = 4 * ((gi / 2) * cin * 16 + (gi % 2) * 8)
            for ci in 0..<cin {
                let wv = load8(g.w, woff)
                a0.addProduct(wv, r0[ci]); a1.addProduct(wv, r1[ci]); a2.addProduct(wv, r2[ci]); a3.addProduct(wv, r3[ci])
                a4.addProduct(wv, r4[ci]); a5.addProduct(wv, r5[ci]); a6.addProduct(wv, r6[ci]); a7.addProduct(wv, r7[ci])
                woff += 64
            }
            ep.load(sp, bp, group: gi)
            let off = p * cout + 8 * gi
            ep.emit(a0, A.self, residual16: g.res + off, to: g.o + off)
            if n > 1 { ep.emit(a1, A.self, residual16: g.res + off + cout, to: g.o + off + cout) }
            if n > 2 { ep.emit(a2, A.self, residual16: g.res + off + 2 * cout, to: g.o + off + 2 * cout) }
            if n > 3 { ep.emit(a3, A.self, residual16: g.res + off + 3 * cout, to: g.o + off + 3 * cout) }
            if n > 4 { ep.emit(a4, A.self, residual16: g.res + off + 4 * cout, to: g.o + off + 4 * cout) }
            if n > 5 { ep.emit(a5, A.self, residual16: g.res + off + 5 * cout, to: g.o + off + 5 * cout) }
            if n > 6 { ep.emit(a6, A.self, residual16: g.res + off + 6 * cout, to: g.o + off + 6 * cout) }
            if n > 7 { ep.emit(a7, A.self, residual16: g.res + off + 7 * cout, to: g.o + off + 7 * cout) }
        }
        p += n
    }
}
