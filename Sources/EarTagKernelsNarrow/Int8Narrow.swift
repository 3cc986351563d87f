// Int8 kernels for the 8-channel high-resolution layers (mn04_as: the stem, 1 -> 8 channels, and block 1's depthwise
// on 8 channels over 64 x 500 pixels). The 16-lane kernels of EarTagKernels leave half of each vector empty there and
// pay a 16-lane epilogue per 8 outputs; these use 8-lane vectors (x86 ymm, NEON a q-register pair), so every lane
// holds an output channel. Bit-exact with the scalar references `s8_stem3x3s2_reference` and `s8_dwconv_reference`:
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
/// non-NaN values up to the sign of a zero, which the magic rounding maps to the same integer.
@_transparent
func clamp8(_ v: SIMD8<Float>, _ lo: Float, _ hi: Float) -> SIMD8<Float> {
    var r = v
    r.replace(with: lo, where: r .< lo)
    r.replace(with: hi, where: r .> hi)
    return r
}

/// The epilogue of 8 channels (`S8Epilogue.apply` lane by lane, the same float operations in the same order) for
/// the exact float sums `sum`, stored as 8 int8 values at `o`. `s`/`b` hold the channels' scale and float bias;
/// `act` is a constant at every call so that the tile loops specialize per activation.
/// Invariant: after the clamp |y| <= 255 < 2^22, so the magic addition rounds exactly.
@_transparent
func emit8(_ sum: SIMD8<Float>, s: SIMD8<Float>, b: SIMD8<Float>, act: S8Activation, inverseOutputScale inv: Float,
           zeroPoint zp: Int32, output o: UnsafeMutablePointer<Int8>) {
    var y = (sum + b) * s
    switch act {
    case .none: break
    case .relu: y.replace(with: 0, where: y .< 0)
    case .hardswish: y = y * clamp8(y + 3, 0, 6) * (1 / 6 as Float)
    }
    let c = clamp8(y * inv, Float(-128 - zp), Float(127 - zp))
    let q = unsafeBitCast(c + SIMD8(repeating: magic), to: SIMD8<Int32>.self) &- SIMD8(repeating: magicBits &- zp)
    for l in 0..<8 { o[l] = Int8(truncatingIfNeeded: q[l]) }
}

/// Calls `body` with the activation as a literal constant (so `emit8` inside is specialized per activation).
@_transparent
func withConstantActivation(_ a: S8Activation, _ body: (S8Activation) -> Void) {
    switch a {
    case .none: body(.none)
    case .relu: body(.relu)
    case .hardswish: body(.hardswish)
    }
}

/// Vectorized int8 stem for exactly 8 output channels, bit-exact with `s8_stem3x3s2_reference` (cout 8): 3x3
/// stride 2, zero padding 1, one int8 plane [h][w] to [ho][wo][8]. Reads `centered`, the plane's x - zp as floats
/// (`s8_center_plane_f32`), and the weights of `s8_pack_dwconv(channels: 8, kernel: 3)` ([9][16], lanes 0-7 used).
/// The nine tap vectors stay in registers; per output pixel nine broadcast multiply-adds (exact: 9 * 255 * 2047 <
/// 2^24) and one 8-lane epilogue. Border pixels skip the padded taps like the reference.
public func s8_stem3x3s2_c8_simd(
    centered: UnsafeBufferPointer<Float>, height h: Int, width w: Int,
    packed: UnsafeBufferPointer<Float>, epilogue e: S8Epilogue,
    output: UnsafeMutableBufferPointer<Int8>
) {
    let ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1
    precondition(e.channels == 8, "s8_stem3x3s2_c8_simd needs 8 output channels, not \(e.channels)")
    precondition(h >= 1 && w >= 1 && centered.count >= h * w && output.count >= ho * wo * 8 && packed.count >= 9 * 16)
    let x = centered.baseAddress!, pw = UnsafeRawPointer(packed.baseAddress!), o = output.baseAddress!
    let w0 = pw.load(as: SIMD8<Float>.self), w1 = pw.load(fromByteOffset: 64, as: SIMD8<Float>.self)
    let w2 = pw.load(fromByteOffset: 128, as: SIMD8<Float>.self), w3 = pw.load(fromByteOffset: 192, as: SIMD8<Float>.self)
    let w4 = pw.load(fromByteOffset: 256, as: SIMD8<Float>.self), w5 = pw.load(fromByteOffset: 320, as: SIMD8<Float>.self)
    let w6 = pw.load(fromByteOffset: 384, as: SIMD8<Float>.self), w7 = pw.load(fromByteOffset: 448, as: SIMD8<Float>.self)
    let w8 = pw.load(fromByteOffset: 512, as: SIMD8<Float>.self)
    let s = e.scale.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress!).load(as: SIMD8<Float>.self) }
    let b = e.biasF.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress!).load(as: SIMD8<Float>.self) }
    let inv = e.inverseOutputScale, zp = e.zeroPoint
    // Interior outputs: rows 1 ... (h - 2) / 2 and columns 1 ... (w - 2) / 2 read taps 2o-1 ... 2o+1, all inside.
    let yHi = (h - 2) / 2 + 1, xHi = (w - 2) / 2 + 1
    withConstantActivation(e.activation) { act in
        for oy in 0..<ho {
            let interiorRow = oy >= 1 && oy < yHi
            var ox = 0
            while ox < wo {
                let out = o + (oy * wo + ox) * 8
                if interiorRow && ox >= 1 && ox < xHi {
                    let r0 = x + (2 * oy - 1) * w + 2 * ox - 1, r1 = r0 + w, r2 = r1 + w
                    var a = w0 * r0[0]
                    a.addProduct(w1, r0[1]); a.addProduct(w2, r0[2])
                    a.addProduct(w3, r1[0]); a.addProduct(w4, r1[1]); a.addProduct(w5, r1[2])
                    a.addProduct(w6, r2[0]); a.addProduct(w7, r2[1]); a.addProduct(w8, r2[2])
                    emit8(a, s: s, b: b, act: act, inverseOutputScale: inv, zeroPoint: zp, output: out)
                } else {
                    var a = SIMD8<Float>()
                    for ky in 0..<3 {
                        let iy = 2 * oy - 1 + ky
                        if iy < 0 || iy >= h { continue }
                        for kx in 0..<3 {
                            let ix = 2 * ox - 1 + kx
                            if ix < 0 || ix >= w { continue }
                            a.addProduct(pw.load(fromByteOffset: 64 * (ky * 3 + kx), as: SIMD8<Float>.self), x[iy * w + ix])
                        }
                    }
                    emit8(a, s: s, b: b, act: act, inverseOutputScale: inv, zeroPoint: zp, output: out)
                }
                ox += 1
            }
        }
    }
}

/// Vectorized int8 depthwise conv for exactly 8 channels over output rows `rows`, bit-exact with
/// `s8_dwconv_reference` (c 8): reads the centered input as dense floats [rows][w][8] (`s8_center_plane_f32` over
/// pixels * 8 values, starting at input row `centeredFirstRow`, so that callers can center band by band) and the
/// weights of `s8_pack_dwconv(channels: 8)` ([k*k][16], lanes 0-7 used). Interior output pixels (every horizontal
/// tap inside the input) go in tiles of 4 along the row, so each weight vector loaded serves four multiply-adds;
/// border pixels check each tap like the reference. Exact sums (25 taps of |w (x - zp)| <= 2047 * 255 < 2^24).
public func s8_dwconv_c8_4x8_simd(
    centered: UnsafeBufferPointer<Float>, height h: Int, width w: Int,
    packed: UnsafeBufferPointer<Float>, kernel k: Int, stride st: Int, dilation d: Int, epilogue e: S8Epilogue,
    output: UnsafeMutableBufferPointer<Int8>, rows: Range<Int>, centeredFirstRow first: Int = 0
) {
    let pad = (k - 1) / 2 * d
    let ho = f32_conv_out_size(h, kernel: k, stride: st, dilation: d)
    let wo = f32_conv_out_size(w, kernel: k, stride: st, dilation: d)
    precondition(e.channels == 8, "s8_dwconv_c8_4x8_simd needs 8 channels, not \(e.channels)")
    precondition(output.count >= ho * wo * 8 && packed.count >= k * k * 16)
    precondition(rows.lowerBound >= 0 && rows.upperBound <= ho)
    guard !rows.isEmpty else { return }
    let needed = s8_dw_input_rows(rows, height: h, kernel: k, stride: st, dilation: d)
    precondition(first <= needed.lowerBound && centered.count >= (needed.upperBound - first) * w * 8,
                 "centered rows do not cover the input rows of output rows \(rows)")
    // Input row iy is row iy - first of `centered`; byte offsets of pixel (iy, ix) are 32 * (iy * w + ix).
    let xb = UnsafeRawPointer(centered.baseAddress!) - 32 * first * w, wb = UnsafeRawPointer(packed.baseAddress!)
    let o = output.baseAddress!
    let s = e.scale.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress!).load(as: SIMD8<Float>.self) }
    let b = e.biasF.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress!).load(as: SIMD8<Float>.self) }
    let inv = e.inverseOutputScale, zp = e.zeroPoint
    // Interior columns: ox * st - pad >= 0 and ox * st - pad + (k - 1) * d <= w - 1.
    let interiorLo = (pad + st - 1) / st
    let lastStart = w - 1 - (k - 1) * d + pad
    let interiorHi = lastStart < 0 ? 0 : min(wo, lastStart / st + 1)
    let step = 32 * st
    withConstantActivation(e.activation) { act in
        for oy in rows {
            // Vertical taps inside the input: ky in kyLo..<kyHi.
            var kyLo = 0, kyHi = k
            while kyLo < k && oy * st - pad + kyLo * d < 0 { kyLo += 1 }
            while kyHi > kyLo && oy * st - pad + (kyHi - 1) * d >= h { kyHi -= 1 }
            var ox = 0
            while ox < wo {
                let out = o + (oy * wo + ox) * 8
                if ox >= interiorLo && ox + 4 <= interiorHi {
                    var a0 = SIMD8<Float>(), a1 = a0, a2 = a0, a3 = a0
                    for ky in kyLo..<kyHi {
                        let row = 32 * ((oy * st - pad + ky * d) * w + ox * st - pad)
                        for kx in 0..<k {
                            let wv = wb.load(fromByteOffset: 64 * (ky * k + kx), as: SIMD8<Float>.self)
                            let base = row + 32 * kx * d
                            a0.addProduct(xb.load(fromByteOffset: base, as: SIMD8<Float>.self), wv)
                            a1.addProduct(xb.load(fromByteOffset: base + step, as: SIMD8<Float>.self), wv)
                            a2.addProduct(xb.load(fromByteOffset: base + 2 * step, as: SIMD8<Float>.self), wv)
                            a3.addProduct(xb.load(fromByteOffset: base + 3 * step, as: SIMD8<Float>.self), wv)
                        }
                    }
                    emit8(a0, s: s, b: b, act: act, inverseOutputScale: inv, zeroPoint: zp, output: out)
                    emit8(a1, s: s, b: b, act: act, inverseOutputScale: inv, zeroPoint: zp, output: out + 8)
                    emit8(a2, s: s, b: b, act: act, inverseOutputScale: inv, zeroPoint: zp, output: out + 16)
                    emit8(a3, s: s, b: b, act: act, inverseOutputScale: inv, zeroPoint: zp, output: out + 24)
                    ox += 4
                    continue
                }
                var a = SIMD8<Float>()
                for ky in kyLo..<kyHi {
                    let iy = oy * st - pad + ky * d
                    for kx in 0..<k {
                        let ix = ox * st - pad + kx * d
                        if ix < 0 || ix >= w { continue }
                        a.addProduct(xb.load(fromByteOffset: 32 * (iy * w + ix), as: SIMD8<Float>.self),
                                     wb.load(fromByteOffset: 64 * (ky * k + kx), as: SIMD8<Float>.self))
                    }
                }
                emit8(a, s: s, b: b, act: act, inverseOutputScale: inv, zeroPoint: zp, output: out)
                ox += 1
            }
        }
    }
}
