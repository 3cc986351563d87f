// Int8 kernels of the quantized engine: scalar references (the specification) and vectorized variants held
// bit-exact to them by randomized tests. Activations are int8 asymmetric (real = scale * (q - zeroPoint)), weights
// int8 symmetric per output channel (|w| <= 127), accumulators int32. Layouts are channels-last like the float path.
// ref: gemmlowp doc/quantization.md ("Quantization of a matrix multiplication", zero-point folding);
// TFLite kernels/internal/common.h MultiplyByQuantizedMultiplier (TFLITE_SINGLE_ROUNDING form) and
// https://www.tensorflow.org/lite/performance/quantization_spec (int8 scheme).

/// A real multiplier M as int32 `multiplier` and right `shift`: M ~= multiplier * 2^-(31 + shift),
/// multiplier in [2^30, 2^31) (or 0 when M is 0 or too small to represent).
public struct S8Multiplier: Sendable, Equatable {
    public var multiplier: Int32
    public var shift: Int32

    public init(multiplier: Int32, shift: Int32) {
        self.multiplier = multiplier
        self.shift = shift
    }

    /// Decomposes a non-negative real multiplier M < 2^30 (requantization multipliers are far below 1).
    /// ref: TFLite quantization_util.cc QuantizeMultiplier (frexp, round the mantissa to 31 bits).
    public init(_ real: Double) {
        precondition(real >= 0 && real.isFinite && real < 1_073_741_824, "multiplier \(real) out of range")
        if real == 0 { self.init(multiplier: 0, shift: 0); return }
        var e = Int(real.exponent) + 1                   // real = f * 2^e with f = significand / 2 in [0.5, 1)
        var m = (real.significand * 1_073_741_824).rounded()  // f * 2^31
        if m >= 2_147_483_648 { m /= 2; e += 1 }
        if 31 - e > 62 { self.init(multiplier: 0, shift: 0); return }  // below 2^-32: rounds to 0 for any int32
        self.init(multiplier: Int32(m), shift: Int32(-e))  // total right shift 31 + shift = 31 - e
    }

    /// The real value represented.
    public var real: Double { Double(multiplier) * Double(sign: .plus, exponent: -31 - Int(shift), significand: 1) }
}

/// Multiplies `acc` by the real multiplier with a single rounding to nearest (ties toward +infinity):
/// (acc * m + 2^(n-1)) >> n with n = 31 + shift. Invariant: |acc| < 2^31 and m < 2^31, so the product is below 2^62
/// and the Int64 sum cannot overflow; the arithmetic shift floors, so adding 2^(n-1) first rounds half up.
/// ref: TFLite common.h MultiplyByQuantizedMultiplier under TFLITE_SINGLE_ROUNDING.
@inline(__always)
public func s8_scale(_ acc: Int32, _ m: S8Multiplier) -> Int32 {
    let n = Int64(31 + m.shift)
    let p = Int64(acc) * Int64(m.multiplier) + (Int64(1) << (n - 1))
    let r = p >> n
    return Int32(clamping: r)
}

/// Requantizes an int32 accumulator to int8: clamp(zeroPoint + s8_scale(acc, m), lo, hi).
/// `lo` = zeroPoint implements a fused ReLU (real 0 maps to the zero point exactly); otherwise lo = -128, hi = 127.
@inline(__always)
public func s8_requantize(_ acc: Int32, _ m: S8Multiplier, zeroPoint: Int32, lo: Int32 = -128, hi: Int32 = 127) -> Int8 {
    let v = Int64(s8_scale(acc, m)) + Int64(zeroPoint)
    return Int8(min(max(v, Int64(lo)), Int64(hi)))
}

/// Requantization parameters of one conv/linear layer: per-output-channel multipliers and the output clamp.
public struct S8Requant: Sendable {
    /// One multiplier per output channel: input scale * weight scale[c] / output scale.
    public var multipliers: [S8Multiplier]
    public var zeroPoint: Int32
    /// Clamp bounds in the output's int8 domain (lo = zeroPoint for a fused ReLU).
    public var lo: Int32
    public var hi: Int32

    public init(multipliers: [S8Multiplier], zeroPoint: Int32, lo: Int32, hi: Int32) {
        self.multipliers = multipliers
        self.zeroPoint = zeroPoint
        self.lo = lo
        self.hi = hi
    }
}

/// Scalar reference int8 1x1 conv (a GEMM): acc[p][co] = bias[co] + sum_ci input[p][ci] * weights[co][ci], then
/// requantized. The input zero point is folded into `bias` (bias = round(b / (s_in s_w)) - zp_in * sum_ci w[co][ci]),
/// valid because a 1x1 conv has no padding. Layout: input [pixels][cin], weights [cout][cin], output [pixels][cout].
/// Invariant: |input * weight| <= 128 * 127 = 16256, so the int32 sum cannot overflow while cin < 2^31 / 16256 - the
/// bias (about 132 000 for a bias of magnitude up to 2^30; the model's largest cin is 960 at width 1.0).
public func s8_conv1x1_reference(
    input: UnsafeBufferPointer<Int8>, pixels: Int, cin: Int,
    weights: UnsafeBufferPointer<Int8>, bias: UnsafeBufferPointer<Int32>, cout: Int,
    requant: S8Requant, output: UnsafeMutableBufferPointer<Int8>
) {
    precondition(input.count >= pixels * cin && output.count >= pixels * cout)
    precondition(weights.count >= cout * cin && bias.count >= cout && requant.multipliers.count >= cout)
    for p in 0..<pixels {
        for co in 0..<cout {
            var acc = bias[co]
            for ci in 0..<cin { acc &+= Int32(input[p * cin + ci]) * Int32(weights[co * cin + ci]) }
            output[p * cout + co] = s8_requantize(acc, requant.multipliers[co], zeroPoint: requant.zeroPoint,
                                                  lo: requant.lo, hi: requant.hi)
        }
    }
}

/// Scalar reference int8 depthwise conv over output rows `rows`: acc = bias[c] + sum_taps w[tap][c] * (x - zp_in),
/// taps outside the input skipped (they hold real 0 = zp_in, contributing 0), so the zero point is NOT folded into
/// the bias. Layout: input [h][w][c], weights tap-major [k * k][c], output [ho][wo][c] (see f32_conv_out_size).
/// Invariant: |w * (x - zp)| <= 127 * 255 = 32385; 25 taps give < 2^20, far inside int32 with any int32 bias < 2^30.
public func s8_dwconv_reference(
    input: UnsafeBufferPointer<Int8>, height h: Int, width w: Int, channels c: Int, inputZeroPoint: Int32,
    weights: UnsafeBufferPointer<Int8>, bias: UnsafeBufferPointer<Int32>,
    kernel k: Int, stride s: Int, dilation d: Int, requant: S8Requant,
    output: UnsafeMutableBufferPointer<Int8>, rows: Range<Int>
) {
    let pad = (k - 1) / 2 * d
    let ho = f32_conv_out_size(h, kernel: k, stride: s, dilation: d)
    let wo = f32_conv_out_size(w, kernel: k, stride: s, dilation: d)
    precondition(input.count >= h * w * c && output.count >= ho * wo * c && weights.count >= c * k * k)
    precondition(rows.lowerBound >= 0 && rows.upperBound <= ho)
    for oy in rows {
        for ox in 0..<wo {
            for ch in 0..<c {
                var acc = bias[ch]
                for ky in 0..<k {
                    let iy = oy * s - pad + ky * d
                    if iy < 0 || iy >= h { continue }
                    for kx in 0..<k {
                        let ix = ox * s - pad + kx * d
                        if ix < 0 || ix >= w { continue }
                        acc &+= (Int32(input[(iy * w + ix) * c + ch]) - inputZeroPoint) * Int32(weights[(ky * k + kx) * c + ch])
                    }
                }
                output[(oy * wo + ox) * c + ch] = s8_requantize(acc, requant.multipliers[ch], zeroPoint: requant.zeroPoint,
                                                                lo: requant.lo, hi: requant.hi)
            }
        }
    }
}

/// Scalar reference int8 stem: 3x3 stride-2 conv, zero padding 1, from one int8 plane [h][w] to [ho][wo][cout].
/// Weights tap-major [9][cout]. Padding taps are skipped (zero point not folded, as in the depthwise kernel).
/// Invariant: 9 taps of |w * (x - zp)| <= 32385 stay below 2^19.
public func s8_stem3x3s2_reference(
    input: UnsafeBufferPointer<Int8>, height h: Int, width w: Int, inputZeroPoint: Int32,
    weights: UnsafeBufferPointer<Int8>, bias: UnsafeBufferPointer<Int32>, cout: Int, requant: S8Requant,
    output: UnsafeMutableBufferPointer<Int8>
) {
    let ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1
    precondition(input.count >= h * w && output.count >= ho * wo * cout && weights.count >= cout * 9)
    for oy in 0..<ho {
        for ox in 0..<wo {
            for co in 0..<cout {
                var acc = bias[co]
                for ky in 0..<3 {
                    let iy = oy * 2 - 1 + ky
                    if iy < 0 || iy >= h { continue }
                    for kx in 0..<3 {
                        let ix = ox * 2 - 1 + kx
                        if ix < 0 || ix >= w { continue }
                        acc &+= (Int32(input[iy * w + ix]) - inputZeroPoint) * Int32(weights[(ky * 3 + kx) * cout + co])
                    }
                }
                output[(oy * wo + ox) * cout + co] = s8_requantize(acc, requant.multipliers[co],
                                                                   zeroPoint: requant.zeroPoint, lo: requant.lo, hi: requant.hi)
            }
        }
    }
}

/// Parameters of an int8 residual add: out = zpOut + ((a - zpA) * multA + (b - zpB) * multB + 2^(shift-1)) >> shift.
/// multA / 2^shift ~= scaleA / scaleOut, likewise for b. Built so max(multA, multB) < 2^22.
public struct S8AddParams: Sendable, Equatable {
    public var zeroPointA: Int32, multiplierA: Int32
    public var zeroPointB: Int32, multiplierB: Int32
    public var shift: Int32
    public var zeroPointOut: Int32

    /// Chooses the common shift so the larger rescale multiplier has 22 significant bits (shift clamped to 1...31).
    public init(scaleA: Double, zeroPointA: Int32, scaleB: Double, zeroPointB: Int32, scaleOut: Double, zeroPointOut: Int32) {
        let ra = scaleA / scaleOut, rb = scaleB / scaleOut
        let top = max(ra, rb)
        // top * 2^shift < 2^22  <=>  shift = 21 - floor(log2(top))
        let shift = min(31, max(1, 21 - Int((top).exponent)))
        let p = Double(sign: .plus, exponent: shift, significand: 1)
        self.zeroPointA = zeroPointA; self.zeroPointB = zeroPointB; self.zeroPointOut = zeroPointOut
        multiplierA = Int32(min((ra * p).rounded(), 4_194_303))
        multiplierB = Int32(min((rb * p).rounded(), 4_194_303))
        self.shift = Int32(shift)
    }
}

/// Scalar reference int8 residual add (elementwise, `count` values). The rescaled sum is rounded once (half up).
/// Invariant: |x - zp| <= 255 and multipliers < 2^22, so each product < 2^30 and their sum < 2^31: no overflow.
public func s8_add_reference(a: UnsafeBufferPointer<Int8>, b: UnsafeBufferPointer<Int8>, count: Int,
                             params q: S8AddParams, output: UnsafeMutableBufferPointer<Int8>) {
    precondition(a.count >= count && b.count >= count && output.count >= count)
    let round = Int32(1) << (q.shift - 1)
    for i in 0..<count {
        let s = (Int32(a[i]) - q.zeroPointA) * q.multiplierA + (Int32(b[i]) - q.zeroPointB) * q.multiplierB + round
        output[i] = Int8(min(max((s >> q.shift) + q.zeroPointOut, -128), 127))
    }
}

/// Scalar reference lookup table, in place: x = table[x + 128] (a 256-entry int8 -> int8 map, e.g. hardswish from
/// the pre-activation quantization to the post-activation one). Exact by construction.
public func s8_lut_reference(data: UnsafeMutableBufferPointer<Int8>, count: Int, table: UnsafeBufferPointer<Int8>) {
    precondition(data.count >= count && table.count >= 256)
    for i in 0..<count { data[i] = table[Int(data[i]) + 128] }
}

/// Builds the 256-entry table mapping int8 values of the input quantization through `f` to the output quantization,
/// rounding to nearest (ties away from zero, Foundation `rounded()`) and clamping to int8.
public func s8_make_lut(inputScale: Double, inputZeroPoint: Int32, outputScale: Double, outputZeroPoint: Int32,
                        _ f: (Double) -> Double) -> [Int8] {
    (0..<256).map { i in
        let x = inputScale * Double(i - 128 - Int(inputZeroPoint))
        let q = (f(x) / outputScale).rounded() + Double(outputZeroPoint)
        return Int8(min(max(q, -128), 127))
    }
}

/// Scalar reference per-channel int32 sums over pixels of an int8 map [pixels][c] (the global pool's numerator).
/// Invariant: |sum| <= 128 * pixels, inside int32 for pixels < 2^24.
public func s8_channel_sums_reference(input: UnsafeBufferPointer<Int8>, pixels: Int, channels c: Int,
                                      sums: UnsafeMutableBufferPointer<Int32>) {
    precondition(input.count >= pixels * c && sums.count >= c && pixels < 1 << 24)
    for ch in 0..<c { sums[ch] = 0 }
    for p in 0..<pixels { for ch in 0..<c { sums[ch] &+= Int32(input[p * c + ch]) } }
}

/// Scalar reference global average pool to int8: out[c] = requantize(sum[c] - pixels * zpIn) with the multiplier
/// scaleIn / (pixels * scaleOut) (computed by the caller per run, as it depends on pixels).
/// Invariant: |sum - pixels * zp| <= 255 * pixels < 2^31 for pixels < 2^23.
public func s8_global_average_pool_reference(input: UnsafeBufferPointer<Int8>, pixels: Int, channels c: Int,
                                             inputZeroPoint: Int32, multiplier: S8Multiplier, outputZeroPoint: Int32,
                                             sums: UnsafeMutableBufferPointer<Int32>,
                                             output: UnsafeMutableBufferPointer<Int8>) {
    precondition(pixels < 1 << 23 && output.count >= c)
    s8_channel_sums_reference(input: input, pixels: pixels, channels: c, sums: sums)
    let off = Int32(pixels) * inputZeroPoint
    for ch in 0..<c { output[ch] = s8_requantize(sums[ch] - off, multiplier, zeroPoint: outputZeroPoint) }
}

/// Scalar reference squeeze-excitation gate in Q15, in place on an int8 map [pixels][c] keeping its quantization:
/// x = zp + ((x - zp) * gate[c] + 2^14) >> 15 with gate[c] = round(sigmoid * 2^15) in 0...32768.
/// Invariant: |x - zp| <= 255, so the product is < 2^23; a gate <= 1 never grows |x - zp|, so no clamp is needed.
public func s8_gate_q15_reference(map: UnsafeMutableBufferPointer<Int8>, pixels: Int, channels c: Int,
                                  zeroPoint: Int32, gate: UnsafeBufferPointer<Int32>) {
    precondition(map.count >= pixels * c && gate.count >= c)
    for p in 0..<pixels {
        for ch in 0..<c {
            let x = Int32(map[p * c + ch]) - zeroPoint
            map[p * c + ch] = Int8(zeroPoint + ((x * gate[ch] + 16384) >> 15))
        }
    }
}

/// Scalar reference int8 dense layer with float output (the classifier's last Linear): the int32 accumulator
/// (bias with zero point folded, as in s8_conv1x1_reference) times inputScale * weightScale[o].
/// Invariant: as s8_conv1x1_reference (nin < ~132 000).
public func s8_linear_dequantize_reference(input: UnsafeBufferPointer<Int8>, nin: Int,
                                           weights: UnsafeBufferPointer<Int8>, bias: UnsafeBufferPointer<Int32>,
                                           nout: Int, scales: UnsafeBufferPointer<Float>,
                                           output: UnsafeMutableBufferPointer<Float>) {
    precondition(input.count >= nin && weights.count >= nin * nout && output.count >= nout && scales.count >= nout)
    for o in 0..<nout {
        var acc = bias[o]
        for i in 0..<nin { acc &+= Int32(input[i]) * Int32(weights[o * nin + i]) }
        output[o] = Float(acc) * scales[o]
    }
}

/// Scalar reference quantization of floats: q = clamp(round(x / scale) + zp) (rounding to nearest even via rint).
public func s8_quantize_reference(input: UnsafeBufferPointer<Float>, count: Int, scale: Float, zeroPoint: Int32,
                                  output: UnsafeMutableBufferPointer<Int8>) {
    precondition(input.count >= count && output.count >= count)
    let inv = 1 / scale
    for i in 0..<count {
        let q = (input[i] * inv).rounded(.toNearestOrEven) + Float(zeroPoint)
        output[i] = Int8(min(max(q, -128), 127))
    }
}

// MARK: - Vectorized 1x1 conv

/// Number of int16 values `s8_pack_conv1x1_16` writes for a cin -> cout conv (cout rounded up to 16).
public func s8_packed_conv1x1_16_count(cin: Int, cout: Int) -> Int { (cout + 15) / 16 * cin * 16 }

/// Packs [cout][cin] int8 weights for `s8_conv1x1_simd16x4`: blocks of 16 output channels, layout
/// [cout / 16][cin][16] widened to int16, zero-filled past cout.
public func s8_pack_conv1x1_16(weights: UnsafeBufferPointer<Int8>, cin: Int, cout: Int,
                               packed: UnsafeMutableBufferPointer<Int16>) {
    precondition(weights.count >= cin * cout && packed.count >= s8_packed_conv1x1_16_count(cin: cin, cout: cout))
    for b in 0..<((cout + 15) / 16) {
        for ci in 0..<cin {
            for l in 0..<16 {
                let co = b * 16 + l
                packed[(b * cin + ci) * 16 + l] = co < cout ? Int16(weights[co * cin + ci]) : 0
            }
        }
    }
}

/// Adds the 16 int16 lanes of `p` into int32 accumulators without a (slow, generic) SIMD conversion: the vector is
/// reinterpreted as 8 int32 lanes, each holding lanes 2i (low half) and 2i+1 (high half); `(v << 16) >> 16` and
/// `v >> 16` sign-extend them (SSE2 pslld/psrad, NEON shl/sshr), so `even[i]` sums lane 2i and `odd[i]` lane 2i+1.
@inline(__always)
func s8_widen_add(_ even: inout SIMD8<Int32>, _ odd: inout SIMD8<Int32>, _ p: SIMD16<Int16>) {
    let v = unsafeBitCast(p, to: SIMD8<Int32>.self)
    even &+= (v &<< 16) &>> 16
    odd &+= v &>> 16
}

/// Vectorized int8 1x1 conv, bit-exact with `s8_conv1x1_reference` (same contract; weights packed by
/// `s8_pack_conv1x1_16`). Two pixels x 16 output channels per step: each int8 x int8 product is formed in int16
/// (|x w| <= 16256 < 2^15, exact) and widened into even/odd int32 accumulators (`s8_widen_add`); integer sums are
/// exact, so the order does not matter and the result equals the reference. Requantization is scalar `s8_requantize`.
/// Invariant: as the reference (int32 cannot overflow for cin < ~66 000 with |bias| <= 2^30).
public func s8_conv1x1_simd16x2(
    input: UnsafeBufferPointer<Int8>, pixels: Int, cin: Int,
    packed: UnsafeBufferPointer<Int16>, bias: UnsafeBufferPointer<Int32>, cout: Int,
    requant: S8Requant, output: UnsafeMutableBufferPointer<Int8>
) {
    precondition(input.count >= pixels * cin && output.count >= pixels * cout && bias.count >= cout)
    precondition(packed.count >= s8_packed_conv1x1_16_count(cin: cin, cout: cout) && requant.multipliers.count >= cout)
    guard pixels > 0, cout > 0 else { return }
    let x = input.baseAddress!, w = packed.baseAddress!
    requant.multipliers.withUnsafeBufferPointer { mults in
        var p = 0
        while p < pixels {
            let n = min(2, pixels - p)
            let x0 = x + p * cin, x1 = x + (p + n - 1) * cin  // a lone last pixel is computed twice
            for b in 0..<((cout + 15) / 16) {
                let lanes = min(16, cout - b * 16)
                var be = SIMD8<Int32>(repeating: 0), bo = SIMD8<Int32>(repeating: 0)
                for i in 0..<8 {
                    if 2 * i < lanes { be[i] = bias[b * 16 + 2 * i] }
                    if 2 * i + 1 < lanes { bo[i] = bias[b * 16 + 2 * i + 1] }
                }
                var e0 = be, o0 = bo, e1 = be, o1 = bo
                var wp = w + b * cin * 16
                for ci in 0..<cin {
                    let wv = UnsafeRawPointer(wp).loadUnaligned(as: SIMD16<Int16>.self)
                    s8_widen_add(&e0, &o0, wv &* SIMD16<Int16>(repeating: Int16(x0[ci])))
                    s8_widen_add(&e1, &o1, wv &* SIMD16<Int16>(repeating: Int16(x1[ci])))
                    wp += 16
                }
                for j in 0..<n {
                    let e = j == 0 ? e0 : e1, o = j == 0 ? o0 : o1
                    let base = (p + j) * cout + b * 16
                    for l in 0..<lanes {
                        let a = l & 1 == 0 ? e[l >> 1] : o[l >> 1]
                        output[base + l] = s8_requantize(a, mults[b * 16 + l], zeroPoint: requant.zeroPoint,
                                                         lo: requant.lo, hi: requant.hi)
                    }
                }
            }
            p += n
        }
    }
}

// MARK: - Vectorized depthwise conv

/// Channels rounded up to a multiple of 16 (the row pitch of the vectorized depthwise buffers).
public func s8_dw_pitch(_ channels: Int) -> Int { (channels + 15) / 16 * 16 }

/// Packs tap-major [k*k][c] int8 depthwise weights to int16 [k*k][s8_dw_pitch(c)], zero-filled past c.
public func s8_pack_dwconv(weights: UnsafeBufferPointer<Int8>, channels c: Int, kernel k: Int,
                           packed: UnsafeMutableBufferPointer<Int16>) {
    let pitch = s8_dw_pitch(c)
    precondition(weights.count >= k * k * c && packed.count >= k * k * pitch)
    for t in 0..<(k * k) { for ch in 0..<pitch { packed[t * pitch + ch] = ch < c ? Int16(weights[t * c + ch]) : 0 } }
}

/// Writes x - zp as int16 into `centered` [h*w][s8_dw_pitch(c)] (zero past c), the input of `s8_dwconv_simd16`.
public func s8_center_int16(input: UnsafeBufferPointer<Int8>, pixels: Int, channels c: Int, zeroPoint: Int32,
                            centered: UnsafeMutableBufferPointer<Int16>) {
    let pitch = s8_dw_pitch(c), z = Int16(zeroPoint)
    precondition(input.count >= pixels * c && centered.count >= pixels * pitch)
    for p in 0..<pixels {
        for ch in 0..<c { centered[p * pitch + ch] = Int16(input[p * c + ch]) - z }
        for ch in c..<pitch { centered[p * pitch + ch] = 0 }
    }
}

/// Vectorized int8 depthwise conv over output rows `rows`, bit-exact with `s8_dwconv_reference`: reads the centered
/// int16 input of `s8_center_int16` and int16 weights of `s8_pack_dwconv`; 16 channels per step, products in int16
/// (|w (x - zp)| <= 127 * 255 = 32385 < 2^15, exact) widened by `s8_widen_add`; padded taps skipped like the reference.
/// Invariant: 25 taps < 2^20 plus |bias| <= 2^30: no int32 overflow.
public func s8_dwconv_simd16(
    centered: UnsafeBufferPointer<Int16>, height h: Int, width w: Int, channels c: Int,
    packed: UnsafeBufferPointer<Int16>, bias: UnsafeBufferPointer<Int32>,
    kernel k: Int, stride s: Int, dilation d: Int, requant: S8Requant,
    output: UnsafeMutableBufferPointer<Int8>, rows: Range<Int>
) {
    let pad = (k - 1) / 2 * d, pitch = s8_dw_pitch(c)
    let ho = f32_conv_out_size(h, kernel: k, stride: s, dilation: d)
    let wo = f32_conv_out_size(w, kernel: k, stride: s, dilation: d)
    precondition(centered.count >= h * w * pitch && output.count >= ho * wo * c && packed.count >= k * k * pitch)
    precondition(rows.lowerBound >= 0 && rows.upperBound <= ho && bias.count >= c)
    let xb = UnsafeRawPointer(centered.baseAddress!), wb = UnsafeRawPointer(packed.baseAddress!)
    requant.multipliers.withUnsafeBufferPointer { mults in
        for oy in rows {
            let ty = validTaps(oy, n: h, kernel: k, stride: s, dilation: d, pad: pad)
            for ox in 0..<wo {
                let tx = validTaps(ox, n: w, kernel: k, stride: s, dilation: d, pad: pad)
                for b in 0..<(pitch / 16) {
                    let lanes = min(16, c - b * 16)
                    var e = SIMD8<Int32>(repeating: 0), o = SIMD8<Int32>(repeating: 0)
                    for i in 0..<8 {
                        if 2 * i < lanes { e[i] = bias[b * 16 + 2 * i] }
                        if 2 * i + 1 < lanes { o[i] = bias[b * 16 + 2 * i + 1] }
                    }
                    for ky in ty {
                        let iy = oy * s - pad + ky * d
                        for kx in tx {
                            let ix = ox * s - pad + kx * d
                            let xv = xb.loadUnaligned(fromByteOffset: 2 * ((iy * w + ix) * pitch + b * 16), as: SIMD16<Int16>.self)
                            let wv = wb.loadUnaligned(fromByteOffset: 2 * ((ky * k + kx) * pitch + b * 16), as: SIMD16<Int16>.self)
                            s8_widen_add(&e, &o, xv &* wv)
                        }
                    }
                    let base = (oy * wo + ox) * c + b * 16
                    for l in 0..<lanes {
                        let a = l & 1 == 0 ? e[l >> 1] : o[l >> 1]
                        output[base + l] = s8_requantize(a, mults[b * 16 + l], zeroPoint: requant.zeroPoint,
                                                         lo: requant.lo, hi: requant.hi)
                    }
                }
            }
        }
    }
}
