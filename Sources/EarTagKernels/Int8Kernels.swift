// Int8 kernels of the quantized engine: scalar references (the specification) and vectorized variants held
// bit-exact to them by randomized tests. Activations are int8 asymmetric (real = scale * (q - zeroPoint)), weights
// int8 symmetric per output channel (|w| <= 127), accumulators exact integers. Layouts are channels-last like the
// float path. Requantization is the fp32 form: the exact accumulator, converted to float, times the real scale of one
// accumulator unit, activation in the real domain, optional residual, times 1 / output scale, clamp, round to nearest
// even with the 1.5 * 2^23 "magic" addition.
// ref: XNNPACK src/xnnpack/requantization.h (fp32 requantization, xnn_qs8_requantize_fp32 with the magic bias);
// gemmlowp doc/quantization.md (zero-point folding); https://www.tensorflow.org/lite/performance/quantization_spec.
//
// Why the vectorized kernels may accumulate in float lanes and still equal the int32 references bit for bit: every
// product of an int8 activation (|x| <= 128, or |x - zp| <= 255 when centered) and a weight (|w| <= 127, or <= 2047
// for the 12-bit layers) is an exact integer, and every partial sum stays below 2^24 while K * max|x| * max|w| < 2^24
// (`s8_float_sums_exact`: 1x1 convs and linears with 8-bit weights K <= 1032, with 12-bit weights K <= 64; depthwise
// and stem taps, centered: 25 * 255 * 2047 < 2^24). Floats represent all integers up to 2^24 exactly, so each fused
// multiply-add is exact and the float sum equals the references' int32 sum. Callers (Int8Engine) run the references
// where the condition does not hold. Both paths then add the bias as a float (Float(bias), the same value in both) in
// the epilogue, so any int32 bias keeps them bit-exact.

/// Largest reduction length of the float-lane 1x1/linear kernels with 8-bit weights (K * 128 * 127 < 2^24).
public let s8FloatExactMaxK = 1032

/// True when float sums of `k` products with |x| <= maxInput and |w| <= maxWeight are exact (every partial sum below
/// 2^24): the condition under which the vectorized kernels equal their int32 references.
public func s8_float_sums_exact(k: Int, maxInput: Int, maxWeight: Int) -> Bool { k * maxInput * maxWeight < 1 << 24 }
/// Largest |bias| (the quantizer's clamp; the loader refuses larger ones).
public let s8MaxBias: Int32 = 1 << 30

/// The 1.5 * 2^23 rounding constant: for |y| < 2^22, the float sum y + magic holds round-to-nearest-even(y) in its low
/// mantissa bits. ref: XNNPACK requantization.h (magic bias).
@usableFromInline let s8Magic: Float = 12_582_912
/// Bit pattern of `s8Magic`.
@usableFromInline let s8MagicBits: Int32 = 0x4B40_0000

/// Rounds a real value already in output steps to int8 with zero point `zp`: clamp to [-128 - zp, 127 - zp], round
/// to nearest even (magic addition), add zp. Invariant: after the clamp |y| <= 255 < 2^22, so the magic trick is exact.
@inline(__always)
public func s8_round(_ y: Float, zeroPoint zp: Int32) -> Int8 {
    let c = min(max(y, Float(-128 - zp)), Float(127 - zp))
    return Int8(truncatingIfNeeded: Int32(bitPattern: (c + s8Magic).bitPattern) &- s8MagicBits &+ zp)
}

/// Vector form of `s8_round` (same float operations lane by lane, so bit-exact with it).
@_transparent
func s8_round16(_ y: SIMD16<Float>, zeroPoint zp: Int32) -> SIMD16<Int32> {
    let c = s8_clamp16(y, Float(-128 - zp), Float(127 - zp))
    return unsafeBitCast(c + SIMD16(repeating: s8Magic), to: SIMD16<Int32>.self) &- SIMD16(repeating: s8MagicBits &- zp)
}

/// Lane-wise min(max(v, lo), hi) as two compare-and-blend steps (vcmpps + blend, NEON fcmgt + bsl). Equal to the
/// scalar min/max for every non-NaN value up to the sign of a zero, which the magic rounding maps to the same integer.
@_transparent
func s8_clamp16(_ v: SIMD16<Float>, _ lo: Float, _ hi: Float) -> SIMD16<Float> {
    var r = v
    r.replace(with: lo, where: r .< lo)
    r.replace(with: hi, where: r .> hi)
    return r
}

/// Lane-wise max(v, lo) (compare and blend; see `s8_clamp16`).
@_transparent
func s8_max16(_ v: SIMD16<Float>, _ lo: Float) -> SIMD16<Float> {
    var r = v
    r.replace(with: lo, where: r .< lo)
    return r
}

/// Activation applied in the real domain by the epilogue.
public enum S8Activation: Sendable, Equatable {
    case none, relu, hardswish
}

/// Per-layer epilogue: out = round((act((Float(sum) + Float(bias[c])) * scale[c]) + residual) * inverseOutputScale)
/// + zeroPoint, where sum is the exact int32 sum of products (bias not included), scale[c] = s_in * s_w[c] is the real
/// value of one accumulator unit, and residual = residualScale * (r - residualZeroPoint) when a residual map is given (fused residual add).
/// Arrays are padded with zeros to a multiple of 16 channels for the vector kernels.
public struct S8Epilogue: Sendable {
    public var activation: S8Activation
    public var channels: Int
    /// Integer biases (|b| <= 2^30) and their float values (what the epilogue adds), padded.
    public var bias: [Int32]
    public var biasF: [Float]
    /// s_in * s_w[c], padded.
    public var scale: [Float]
    public var inverseOutputScale: Float
    public var zeroPoint: Int32
    public var residualScale: Float
    public var residualZeroPoint: Int32

    /// Builds the epilogue of a layer with `bias.count` output channels.
    public init(bias: [Int32], scale: [Float], activation: S8Activation, outputScale: Float, outputZeroPoint: Int32,
                residualScale: Float = 0, residualZeroPoint: Int32 = 0) {
        precondition(bias.count == scale.count && outputScale > 0)
        precondition(bias.allSatisfy { abs($0) <= s8MaxBias }, "bias beyond 2^30")
        let padded = (bias.count + 15) / 16 * 16
        channels = bias.count
        self.bias = bias + [Int32](repeating: 0, count: padded - bias.count)
        biasF = self.bias.map { Float($0) }
        self.scale = scale + [Float](repeating: 0, count: padded - bias.count)
        self.activation = activation
        inverseOutputScale = 1 / outputScale
        zeroPoint = outputZeroPoint
        self.residualScale = residualScale
        self.residualZeroPoint = residualZeroPoint
    }

    /// The reference epilogue of channel `c` for the exact accumulator `acc` (residual value `r` when `hasResidual`).
    @inline(__always)
    public func apply(_ sum: Int32, channel c: Int, residual r: Int8 = 0, hasResidual: Bool = false) -> Int8 {
        var y = (Float(sum) + biasF[c]) * scale[c]
        switch activation {
        case .none: break
        case .relu: y = max(y, 0)
        case .hardswish: y = y * min(max(y + 3, 0), 6) * (1 / 6 as Float)
        }
        if hasResidual { y = y + residualScale * Float(Int32(r) - residualZeroPoint) }
        return s8_round(y * inverseOutputScale, zeroPoint: zeroPoint)
    }
}

/// Vector epilogue of 16 channels starting at `c0`: `sum` holds the exact float sums without bias; `scale` and
/// `biasF` point at the padded epilogue arrays; `residual` at the 16 (or `lanes`) residual values. Same float
/// operations, in the same order, as `S8Epilogue.apply`. `activation`, when given, must equal `e.activation`: kernels
/// pass it as a constant so that the compiler specializes their tile loops per activation.
@_transparent
func s8_epilogue16(_ sum: SIMD16<Float>, _ e: S8Epilogue, scale: UnsafePointer<Float>, biasF: UnsafePointer<Float>,
                   c0: Int, residual: UnsafePointer<Int8>?, lanes: Int, activation: S8Activation? = nil) -> SIMD16<Int32> {
    let s = UnsafeRawPointer(scale + c0).loadUnaligned(as: SIMD16<Float>.self)
    let b = UnsafeRawPointer(biasF + c0).loadUnaligned(as: SIMD16<Float>.self)
    var y = (sum + b) * s
    switch activation ?? e.activation {
    case .none: break
    case .relu: y = s8_max16(y, 0)
    case .hardswish: y = y * s8_clamp16(y + 3, 0, 6) * (1 / 6 as Float)
    }
    if let r = residual {
        // Float(r) - Float(zp) equals Float(r - zp): all three are small integers, exact in float.
        y = y + e.residualScale * (s8_load16(r, lanes: lanes) - Float(e.residualZeroPoint))
    }
    return s8_round16(y * e.inverseOutputScale, zeroPoint: e.zeroPoint)
}

/// Stores the first `lanes` (1...16) lanes of `q` as int8. Full and half vectors are narrowed by lane loops that
/// write straight to memory (one vpmovdb / xtn + store each); other tails go through a 16-byte stack buffer.
@_transparent
func s8_store16(_ q: SIMD16<Int32>, _ o: UnsafeMutablePointer<Int8>, lanes: Int) {
    if lanes == 16 {
        for l in 0..<16 { o[l] = Int8(truncatingIfNeeded: q[l]) }
    } else if lanes == 8 {
        for l in 0..<8 { o[l] = Int8(truncatingIfNeeded: q[l]) }
    } else {
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: 16) { t in
            for l in 0..<16 { t[l] = Int8(truncatingIfNeeded: q[l]) }
            o.update(from: t.baseAddress!, count: lanes)
        }
    }
}

/// Loads `lanes` (1...16) int8 values as floats, zero past `lanes`.
@_transparent
func s8_load16(_ r: UnsafePointer<Int8>, lanes: Int) -> SIMD16<Float> {
    var t = SIMD16<Int8>()
    if lanes == 16 {
        t = UnsafeRawPointer(r).loadUnaligned(as: SIMD16<Int8>.self)
    } else if lanes == 8 {
        t = unsafeBitCast(SIMD2<UInt64>(UnsafeRawPointer(r).loadUnaligned(as: UInt64.self), 0), to: SIMD16<Int8>.self)
    } else {
        withUnsafeMutableBytes(of: &t) { $0.baseAddress!.copyMemory(from: r, byteCount: lanes) }
    }
    var f = SIMD16<Float>()
    for l in 0..<16 { f[l] = Float(t[l]) }
    return f
}

/// Requantizes one tile row of 16 channels from `c0` (exact sums `a`) and stores it at `o` (the residual, if any,
/// read at `r`): `s8_epilogue16` then `s8_store16`.
@_transparent
func s8_emit16(_ a: SIMD16<Float>, _ e: S8Epilogue, scale: UnsafePointer<Float>, biasF: UnsafePointer<Float>, c0: Int,
               residual r: UnsafePointer<Int8>?, lanes: Int, output o: UnsafeMutablePointer<Int8>,
               activation: S8Activation? = nil) {
    s8_store16(s8_epilogue16(a, e, scale: scale, biasF: biasF, c0: c0, residual: r, lanes: lanes, activation: activation),
               o, lanes: lanes)
}

// MARK: - 1x1 conv (GEMM)

/// Scalar reference int8 1x1 conv (a GEMM): sum[p][co] = sum_ci input[p][ci] * weights[co][ci] in int32, then
/// `epilogue.apply` (which adds the bias) (with residual[p][co] when given: the fused residual add). The input zero point is folded
/// into the bias (valid: a 1x1 conv has no padding). Layout: input [pixels][cin], weights [cout][cin], output and
/// residual [pixels][cout]. Invariant: |input * weight| <= 128 * 2047 < 2^18; the int32 sum cannot overflow for
/// cin < 2^31 / 2^18 (8192; the model's largest cin is 960 at width 1.0, and 12-bit weights only occur
/// with cin <= 64).
public func s8_conv1x1_reference(
    input: UnsafeBufferPointer<Int8>, pixels: Int, cin: Int,
    weights: UnsafeBufferPointer<Int16>, cout: Int, epilogue: S8Epilogue,
    residual: UnsafeBufferPointer<Int8>? = nil, output: UnsafeMutableBufferPointer<Int8>
) {
    precondition(input.count >= pixels * cin && output.count >= pixels * cout)
    precondition(weights.count >= cout * cin && epilogue.channels == cout)
    precondition(residual == nil || residual!.count >= pixels * cout)
    for p in 0..<pixels {
        for co in 0..<cout {
            var acc: Int32 = 0
            for ci in 0..<cin { acc &+= Int32(input[p * cin + ci]) * Int32(weights[co * cin + ci]) }
            output[p * cout + co] = epilogue.apply(acc, channel: co, residual: residual?[p * cout + co] ?? 0,
                                                   hasResidual: residual != nil)
        }
    }
}

/// Number of floats `s8_pack_conv1x1_16` writes: [ceil(cout / 16)][cin][16].
public func s8_packed_conv1x1_16_count(cin: Int, cout: Int) -> Int { (cout + 15) / 16 * cin * 16 }

/// Packs [cout][cin] int8 weights for `s8_conv1x1_8x16_simd`: blocks of 16 output channels, [cout / 16][cin][16], as
/// exact floats, zero past cout.
public func s8_pack_conv1x1_16(weights: UnsafeBufferPointer<Int16>, cin: Int, cout: Int,
                               packed: UnsafeMutableBufferPointer<Float>) {
    precondition(weights.count >= cin * cout && packed.count >= s8_packed_conv1x1_16_count(cin: cin, cout: cout))
    for b in 0..<((cout + 15) / 16) {
        for ci in 0..<cin {
            for l in 0..<16 {
                let co = b * 16 + l
                packed[(b * cin + ci) * 16 + l] = co < cout ? Float(weights[co * cin + ci]) : 0
            }
        }
    }
}

/// Floats of scratch `s8_conv1x1_8x16_simd` needs: 8 pixels of `cin` input values.
public func s8_conv1x1_scratch_count(cin: Int) -> Int { 8 * cin }

/// Vectorized int8 1x1 conv, bit-exact with `s8_conv1x1_reference` (weights from `s8_pack_conv1x1_16`). Tiles of 8
/// pixels x 16 output channels: the 8 input rows are widened once to floats in `scratch`, then each input channel
/// costs one weight vector load, 8 broadcasts and 8 fused multiply-adds (x86 vfmadd231ps zmm, NEON fmla.4s x4).
/// Sums are exact (see the file header); the epilogue is `s8_epilogue16`. Precondition (caller):
/// s8_float_sums_exact(k: cin, maxInput: 128, maxWeight: max |w|).
public func s8_conv1x1_8x16_simd(
    input: UnsafeBufferPointer<Int8>, pixels: Int, cin: Int,
    packed: UnsafeBufferPointer<Float>, cout: Int, epilogue: S8Epilogue,
    residual: UnsafeBufferPointer<Int8>? = nil, scratch: UnsafeMutableBufferPointer<Float>,
    output: UnsafeMutableBufferPointer<Int8>
) {
    precondition(cin <= s8FloatExactMaxK, "cin \(cin) beyond the exact float range")
    precondition(input.count >= pixels * cin && output.count >= pixels * cout && epilogue.channels == cout)
    precondition(packed.count >= s8_packed_conv1x1_16_count(cin: cin, cout: cout))
    precondition(scratch.count >= s8_conv1x1_scratch_count(cin: cin))
    precondition(residual == nil || residual!.count >= pixels * cout)
    guard pixels > 0, cout > 0, cin > 0 else { return }
    let x = input.baseAddress!, xs = scratch.baseAddress!, o = output.baseAddress!
    let res = residual?.baseAddress
    epilogue.scale.withUnsafeBufferPointer { scale in
        epilogue.biasF.withUnsafeBufferPointer { biasF in
            let w = UnsafeRawPointer(packed.baseAddress!)
            var p = 0
            while p < pixels {
                let n = min(8, pixels - p)
                let src = x + p * cin
                for i in 0..<(n * cin) { xs[i] = Float(src[i]) }
                // Rows past the tail repeat the last pixel (computed, not stored).
                let r0 = xs, r1 = xs + min(1, n - 1) * cin, r2 = xs + min(2, n - 1) * cin, r3 = xs + min(3, n - 1) * cin
                let r4 = xs + min(4, n - 1) * cin, r5 = xs + min(5, n - 1) * cin, r6 = xs + min(6, n - 1) * cin
                let r7 = xs + min(7, n - 1) * cin
                for b in 0..<((cout + 15) / 16) {
                    var a0 = SIMD16<Float>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
                    var wp = w + b * cin * 64
                    for ci in 0..<cin {
                        let wv = wp.load(as: SIMD16<Float>.self)
                        a0.addProduct(wv, r0[ci]); a1.addProduct(wv, r1[ci])
                        a2.addProduct(wv, r2[ci]); a3.addProduct(wv, r3[ci])
                        a4.addProduct(wv, r4[ci]); a5.addProduct(wv, r5[ci])
                        a6.addProduct(wv, r6[ci]); a7.addProduct(wv, r7[ci])
                        wp += 64
                    }
                    let c0 = b * 16, lanes = min(16, cout - c0)
                    let sp = scale.baseAddress!, bp = biasF.baseAddress!
                    var off = p * cout + c0
                    s8_emit16(a0, epilogue, scale: sp, biasF: bp, c0: c0, residual: res.map { $0 + off }, lanes: lanes, output: o + off)
                    if n > 1 { off += cout; s8_emit16(a1, epilogue, scale: sp, biasF: bp, c0: c0, residual: res.map { $0 + off }, lanes: lanes, output: o + off) }
                    if n > 2 { off += cout; s8_emit16(a2, epilogue, scale: sp, biasF: bp, c0: c0, residual: res.map { $0 + off }, lanes: lanes, output: o + off) }
                    if n > 3 { off += cout; s8_emit16(a3, epilogue, scale: sp, biasF: bp, c0: c0, residual: res.map { $0 + off }, lanes: lanes, output: o + off) }
                    if n > 4 { off += cout; s8_emit16(a4, epilogue, scale: sp, biasF: bp, c0: c0, residual: res.map { $0 + off }, lanes: lanes, output: o + off) }
                    if n > 5 { off += cout; s8_emit16(a5, epilogue, scale: sp, biasF: bp, c0: c0, residual: res.map { $0 + off }, lanes: lanes, output: o + off) }
                    if n > 6 { off += cout; s8_emit16(a6, epilogue, scale: sp, biasF: bp, c0: c0, residual: res.map { $0 + off }, lanes: lanes, output: o + off) }
                    if n > 7 { off += cout; s8_emit16(a7, epilogue, scale: sp, biasF: bp, c0: c0, residual: res.map { $0 + off }, lanes: lanes, output: o + off) }
                }
                p += n
            }
        }
    }
}

// MARK: - Depthwise conv

/// Channels rounded up to a multiple of 16 (the row pitch of the vectorized depthwise buffers).
public func s8_dw_pitch(_ channels: Int) -> Int { (channels + 15) / 16 * 16 }

/// Scalar reference int8 depthwise conv over output rows `rows`: sum = sum_taps w[tap][c] * (x - zp_in) in int32, taps outside the input skipped (they hold real 0 = zp_in, contributing 0), then `epilogue.apply`.
/// Layout: input [h][w][c], weights tap-major [k * k][c], output [ho][wo][c] (see f32_conv_out_size).
/// Invariant: |w * (x - zp)| <= 2047 * 255 < 2^19; 25 taps give < 2^24, far inside int32.
public func s8_dwconv_reference(
    input: UnsafeBufferPointer<Int8>, height h: Int, width w: Int, channels c: Int, inputZeroPoint: Int32,
    weights: UnsafeBufferPointer<Int16>, kernel k: Int, stride s: Int, dilation d: Int, epilogue: S8Epilogue,
    output: UnsafeMutableBufferPointer<Int8>, rows: Range<Int>
) {
    let pad = (k - 1) / 2 * d
    let ho = f32_conv_out_size(h, kernel: k, stride: s, dilation: d)
    let wo = f32_conv_out_size(w, kernel: k, stride: s, dilation: d)
    precondition(input.count >= h * w * c && output.count >= ho * wo * c && weights.count >= c * k * k)
    precondition(rows.lowerBound >= 0 && rows.upperBound <= ho && epilogue.channels == c)
    for oy in rows {
        for ox in 0..<wo {
            for ch in 0..<c {
                var acc: Int32 = 0
                for ky in 0..<k {
                    let iy = oy * s - pad + ky * d
                    if iy < 0 || iy >= h { continue }
                    for kx in 0..<k {
                        let ix = ox * s - pad + kx * d
                        if ix < 0 || ix >= w { continue }
                        acc &+= (Int32(input[(iy * w + ix) * c + ch]) - inputZeroPoint) * Int32(weights[(ky * k + kx) * c + ch])
                    }
                }
                output[(oy * wo + ox) * c + ch] = epilogue.apply(acc, channel: ch)
            }
        }
    }
}

/// Packs tap-major [k*k][c] int8 depthwise weights to floats [k*k][s8_dw_pitch(c)], zero past c.
public func s8_pack_dwconv(weights: UnsafeBufferPointer<Int16>, channels c: Int, kernel k: Int,
                           packed: UnsafeMutableBufferPointer<Float>) {
    let pitch = s8_dw_pitch(c)
    precondition(weights.count >= k * k * c && packed.count >= k * k * pitch)
    for t in 0..<(k * k) { for ch in 0..<pitch { packed[t * pitch + ch] = ch < c ? Float(weights[t * c + ch]) : 0 } }
}

/// Writes x - zp as exact floats into `centered` [pixels][s8_dw_pitch(c)] (zero past c): the input of the vectorized
/// depthwise kernel. The inner loops have constant-free but contiguous trip counts, which the compiler widens
/// (x86 vpmovsxbd + vcvtdq2ps, NEON sxtl + scvtf).
public func s8_center_f32(input: UnsafeBufferPointer<Int8>, pixels: Int, channels c: Int, zeroPoint: Int32,
                          centered: UnsafeMutableBufferPointer<Float>) {
    let pitch = s8_dw_pitch(c)
    precondition(input.count >= pixels * c && centered.count >= pixels * pitch)
    guard pixels > 0 else { return }
    let x = input.baseAddress!, o = centered.baseAddress!
    for p in 0..<pixels {
        let src = x + p * c, dst = o + p * pitch
        for ch in 0..<c { dst[ch] = Float(Int32(src[ch]) &- zeroPoint) }
        for ch in c..<pitch { dst[ch] = 0 }
    }
}

/// Input rows [lo, hi) that output rows `rows` of a depthwise conv read (clamped to the input).
public func s8_dw_input_rows(_ rows: Range<Int>, height h: Int, kernel k: Int, stride s: Int, dilation d: Int) -> Range<Int> {
    let pad = (k - 1) / 2 * d
    let lo = max(0, rows.lowerBound * s - pad), hi = min(h, (rows.upperBound - 1) * s - pad + (k - 1) * d + 1)
    return lo..<max(lo, hi)
}

/// Vectorized int8 depthwise conv over output rows `rows`, bit-exact with `s8_dwconv_reference`: reads the centered
/// floats of `s8_center_f32` (only the input rows that `rows` need, starting at input row `centeredFirstRow`, so that
/// callers can center band by band and keep the floats in cache) and the weights of `s8_pack_dwconv`; 16 channels per
/// vector. Interior output pixels
/// (every horizontal tap inside the input) go in tiles of 4 along the row, so each weight vector loaded serves four
/// fused multiply-adds; border pixels take the one-pixel path with their taps clamped. Exact sums (25 taps of
/// |w (x - zp)| <= 2047 * 255 stay below 2^24); padded taps skipped like the reference; epilogue `s8_epilogue16`.
public func s8_dwconv_4x16_simd(
    centered: UnsafeBufferPointer<Float>, height h: Int, width w: Int, channels c: Int,
    packed: UnsafeBufferPointer<Float>, kernel k: Int, stride s: Int, dilation d: Int, epilogue: S8Epilogue,
    output: UnsafeMutableBufferPointer<Int8>, rows: Range<Int>, centeredFirstRow first: Int = 0
) {
    let pad = (k - 1) / 2 * d, pitch = s8_dw_pitch(c)
    let ho = f32_conv_out_size(h, kernel: k, stride: s, dilation: d)
    let wo = f32_conv_out_size(w, kernel: k, stride: s, dilation: d)
    precondition(output.count >= ho * wo * c && packed.count >= k * k * pitch)
    precondition(rows.lowerBound >= 0 && rows.upperBound <= ho && epilogue.channels == c)
    guard c > 0, !rows.isEmpty else { return }
    let needed = s8_dw_input_rows(rows, height: h, kernel: k, stride: s, dilation: d)
    precondition(first <= needed.lowerBound && centered.count >= (needed.upperBound - first) * w * pitch,
                 "centered rows do not cover the input rows of output rows \(rows)")
    // Row iy of the input is row iy - first of `centered`.
    let xb = UnsafeRawPointer(centered.baseAddress!) - 4 * first * w * pitch, wb = UnsafeRawPointer(packed.baseAddress!)
    let o = output.baseAddress!
    // Interior columns: ox * s - pad >= 0 and ox * s - pad + (k - 1) * d <= w - 1.
    let interiorLo = (pad + s - 1) / s
    let lastStart = w - 1 - (k - 1) * d + pad
    let interiorHi = lastStart < 0 ? 0 : min(wo, lastStart / s + 1)
    epilogue.scale.withUnsafeBufferPointer { scale in
        epilogue.biasF.withUnsafeBufferPointer { biasF in
            let sp = scale.baseAddress!, bp = biasF.baseAddress!
            for oy in rows {
                let ty = validTaps(oy, n: h, kernel: k, stride: s, dilation: d, pad: pad)
                var ox = 0
                while ox < wo {
                    if ox >= interiorLo && ox + 4 <= interiorHi {
                        for b in 0..<(pitch / 16) {
                            var a0 = SIMD16<Float>(), a1 = a0, a2 = a0, a3 = a0
                            for ky in ty {
                                let row = (oy * s - pad + ky * d) * w
                                for kx in 0..<k {
                                    let wv = wb.load(fromByteOffset: 4 * ((ky * k + kx) * pitch + b * 16), as: SIMD16<Float>.self)
                                    let base = 4 * ((row + ox * s - pad + kx * d) * pitch + b * 16), step = 4 * s * pitch
                                    a0.addProduct(xb.load(fromByteOffset: base, as: SIMD16<Float>.self), wv)
                                    a1.addProduct(xb.load(fromByteOffset: base + step, as: SIMD16<Float>.self), wv)
                                    a2.addProduct(xb.load(fromByteOffset: base + 2 * step, as: SIMD16<Float>.self), wv)
                                    a3.addProduct(xb.load(fromByteOffset: base + 3 * step, as: SIMD16<Float>.self), wv)
                                }
                            }
                            let c0 = b * 16, lanes = min(16, c - c0), out = o + (oy * wo + ox) * c + c0
                            s8_emit16(a0, epilogue, scale: sp, biasF: bp, c0: c0, residual: nil, lanes: lanes, output: out)
                            s8_emit16(a1, epilogue, scale: sp, biasF: bp, c0: c0, residual: nil, lanes: lanes, output: out + c)
                            s8_emit16(a2, epilogue, scale: sp, biasF: bp, c0: c0, residual: nil, lanes: lanes, output: out + 2 * c)
                            s8_emit16(a3, epilogue, scale: sp, biasF: bp, c0: c0, residual: nil, lanes: lanes, output: out + 3 * c)
                        }
                        ox += 4
                        continue
                    }
                    let tx = validTaps(ox, n: w, kernel: k, stride: s, dilation: d, pad: pad)
                    for b in 0..<(pitch / 16) {
                        var acc = SIMD16<Float>()
                        for ky in ty {
                            let iy = oy * s - pad + ky * d
                            for kx in tx {
                                let ix = ox * s - pad + kx * d
                                let xv = xb.load(fromByteOffset: 4 * ((iy * w + ix) * pitch + b * 16), as: SIMD16<Float>.self)
                                let wv = wb.load(fromByteOffset: 4 * ((ky * k + kx) * pitch + b * 16), as: SIMD16<Float>.self)
                                acc.addProduct(xv, wv)
                            }
                        }
                        let c0 = b * 16, lanes = min(16, c - c0)
                        s8_emit16(acc, epilogue, scale: sp, biasF: bp, c0: c0, residual: nil, lanes: lanes,
                                  output: o + (oy * wo + ox) * c + c0)
                    }
                    ox += 1
                }
            }
        }
    }
}

// MARK: - Stem

/// Scalar reference int8 stem: 3x3 stride-2 conv, zero padding 1, from one int8 plane [h][w] to [ho][wo][cout].
/// Weights tap-major [9][cout]. Padding taps are skipped (zero point not folded, as in the depthwise kernel), then
/// `epilogue.apply`. Invariant: 9 taps of |w * (x - zp)| <= 2047 * 255 stay below 2^23.
public func s8_stem3x3s2_reference(
    input: UnsafeBufferPointer<Int8>, height h: Int, width w: Int, inputZeroPoint: Int32,
    weights: UnsafeBufferPointer<Int16>, cout: Int, epilogue: S8Epilogue,
    output: UnsafeMutableBufferPointer<Int8>
) {
    let ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1
    precondition(input.count >= h * w && output.count >= ho * wo * cout && weights.count >= cout * 9)
    precondition(epilogue.channels == cout)
    for oy in 0..<ho {
        for ox in 0..<wo {
            for co in 0..<cout {
                var acc: Int32 = 0
                for ky in 0..<3 {
                    let iy = oy * 2 - 1 + ky
                    if iy < 0 || iy >= h { continue }
                    for kx in 0..<3 {
                        let ix = ox * 2 - 1 + kx
                        if ix < 0 || ix >= w { continue }
                        acc &+= (Int32(input[iy * w + ix]) - inputZeroPoint) * Int32(weights[(ky * 3 + kx) * cout + co])
                    }
                }
                output[(oy * wo + ox) * cout + co] = epilogue.apply(acc, channel: co)
            }
        }
    }
}

/// Vectorized int8 stem, bit-exact with `s8_stem3x3s2_reference`: `centered` holds the plane's x - zp as floats
/// (`s8_center_f32` with 1 channel writes pitch 16; here the plane is dense [h][w], see `s8_center_plane_f32`);
/// weights from `s8_pack_dwconv(channels: cout, kernel: 3)` ([9][pitch]). Per output pixel and 16 output channels:
/// nine broadcast multiply-adds (exact: 9 * 255 * 2047 < 2^24), then `s8_epilogue16`.
public func s8_stem3x3s2_16_simd(
    centered: UnsafeBufferPointer<Float>, height h: Int, width w: Int,
    packed: UnsafeBufferPointer<Float>, cout: Int, epilogue: S8Epilogue,
    output: UnsafeMutableBufferPointer<Int8>
) {
    let ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1, pitch = s8_dw_pitch(cout)
    precondition(centered.count >= h * w && output.count >= ho * wo * cout && packed.count >= 9 * pitch)
    precondition(epilogue.channels == cout)
    guard cout > 0 else { return }
    let x = centered.baseAddress!, wb = UnsafeRawPointer(packed.baseAddress!), o = output.baseAddress!
    epilogue.scale.withUnsafeBufferPointer { scale in
        epilogue.biasF.withUnsafeBufferPointer { biasF in
            for oy in 0..<ho {
                let ty = validTaps(oy, n: h, kernel: 3, stride: 2, dilation: 1, pad: 1)
                for ox in 0..<wo {
                    let tx = validTaps(ox, n: w, kernel: 3, stride: 2, dilation: 1, pad: 1)
                    for b in 0..<(pitch / 16) {
                        var acc = SIMD16<Float>()
                        for ky in ty {
                            let row = x + (oy * 2 - 1 + ky) * w
                            for kx in tx {
                                let wv = wb.load(fromByteOffset: 4 * ((ky * 3 + kx) * pitch + b * 16), as: SIMD16<Float>.self)
                                acc.addProduct(wv, row[ox * 2 - 1 + kx])
                            }
                        }
                        let c0 = b * 16, lanes = min(16, cout - c0)
                        s8_emit16(acc, epilogue, scale: scale.baseAddress!, biasF: biasF.baseAddress!, c0: c0,
                                  residual: nil, lanes: lanes, output: o + (oy * wo + ox) * cout + c0)
                    }
                }
            }
        }
    }
}

/// Writes x - zp of a dense int8 plane as exact floats (the input of `s8_stem3x3s2_16_simd`).
public func s8_center_plane_f32(input: UnsafeBufferPointer<Int8>, count: Int, zeroPoint: Int32,
                                centered: UnsafeMutableBufferPointer<Float>) {
    precondition(input.count >= count && centered.count >= count)
    guard count > 0 else { return }
    let x = input.baseAddress!, o = centered.baseAddress!
    for i in 0..<count { o[i] = Float(Int32(x[i]) &- zeroPoint) }
}

// MARK: - Input quantization

/// Scalar reference quantization of floats: q = s8_round(x * (1 / scale), zp) (round to nearest even, clamped).
public func s8_quantize_reference(input: UnsafeBufferPointer<Float>, count: Int, scale: Float, zeroPoint: Int32,
                                  output: UnsafeMutableBufferPointer<Int8>) {
    precondition(input.count >= count && output.count >= count)
    let inv = 1 / scale
    for i in 0..<count { output[i] = s8_round(input[i] * inv, zeroPoint: zeroPoint) }
}

/// Vectorized `s8_quantize_reference` (16 lanes, scalar tail), bit-exact with it.
public func s8_quantize_16_simd(input: UnsafeBufferPointer<Float>, count: Int, scale: Float, zeroPoint: Int32,
                                output: UnsafeMutableBufferPointer<Int8>) {
    precondition(input.count >= count && output.count >= count)
    guard count > 0 else { return }
    let inv = 1 / scale, x = UnsafeRawPointer(input.baseAddress!), o = output.baseAddress!
    var i = 0
    while i + 16 <= count {
        let v = x.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        s8_store16(s8_round16(v * inv, zeroPoint: zeroPoint), o + i, lanes: 16)
        i += 16
    }
    while i < count { o[i] = s8_round(input[i] * inv, zeroPoint: zeroPoint); i += 1 }
}

// MARK: - Pooling, squeeze-excitation gate, head

/// Scalar reference per-channel int32 sums over pixels of an int8 map [pixels][c] (the global pool's numerator).
/// Invariant: |sum| <= 128 * pixels, inside int32 for pixels < 2^24.
public func s8_channel_sums_reference(input: UnsafeBufferPointer<Int8>, pixels: Int, channels c: Int,
                                      sums: UnsafeMutableBufferPointer<Int32>) {
    precondition(input.count >= pixels * c && sums.count >= c && pixels < 1 << 24)
    for ch in 0..<c { sums[ch] = 0 }
    for p in 0..<pixels { for ch in 0..<c { sums[ch] &+= Int32(input[p * c + ch]) } }
}

/// Vectorized `s8_channel_sums_reference` (16 channels per int32 vector, scalar channel tail); integer sums, so
/// bit-exact in any order.
public func s8_channel_sums_16_simd(input: UnsafeBufferPointer<Int8>, pixels: Int, channels c: Int,
                                    sums: UnsafeMutableBufferPointer<Int32>) {
    precondition(input.count >= pixels * c && sums.count >= c && pixels < 1 << 24)
    guard c > 0 else { return }
    let x = input.baseAddress!
    var c0 = 0
    while c0 + 16 <= c {
        var acc = SIMD16<Int32>()
        for p in 0..<pixels {
            let row = x + p * c + c0
            var v = SIMD16<Int32>()
            for l in 0..<16 { v[l] = Int32(row[l]) }
            acc &+= v
        }
        for l in 0..<16 { sums[c0 + l] = acc[l] }
        c0 += 16
    }
    for ch in c0..<c {
        var a: Int32 = 0
        for p in 0..<pixels { a &+= Int32(x[p * c + ch]) }
        sums[ch] = a
    }
}

/// Global average pool to int8 from channel sums: out[c] = s8_round((sum[c] - pixels * zpIn) * multiplier, zpOut)
/// with multiplier = scaleIn / (pixels * scaleOut) in float. Invariant: |sum - pixels * zp| <= 255 * pixels < 2^31.
public func s8_pool_requantize(sums: UnsafeBufferPointer<Int32>, pixels: Int, channels c: Int, inputZeroPoint: Int32,
                               multiplier: Float, outputZeroPoint: Int32, output: UnsafeMutableBufferPointer<Int8>) {
    precondition(pixels < 1 << 23 && output.count >= c && sums.count >= c)
    let off = Int32(pixels) * inputZeroPoint
    for ch in 0..<c { output[ch] = s8_round(Float(sums[ch] - off) * multiplier, zeroPoint: outputZeroPoint) }
}

/// Scalar reference squeeze-excitation gate with requantization, in place on an int8 map [pixels][c]:
/// x = s8_round(Float(x - zpIn) * multiplier[c], zpOut) with multiplier[c] = gate[c] * s_in / s_out (the gated map has
/// its own calibrated quantization). Invariant: |x - zp| <= 255 is exact in float; one rounding per value.
public func s8_gate_reference(map: UnsafeMutableBufferPointer<Int8>, pixels: Int, channels c: Int,
                              inputZeroPoint: Int32, multiplier: UnsafeBufferPointer<Float>, outputZeroPoint: Int32) {
    precondition(map.count >= pixels * c && multiplier.count >= c)
    for p in 0..<pixels {
        for ch in 0..<c {
            map[p * c + ch] = s8_round(Float(Int32(map[p * c + ch]) - inputZeroPoint) * multiplier[ch], zeroPoint: outputZeroPoint)
        }
    }
}

/// Vectorized `s8_gate_reference`: 16 channels per vector (widen, subtract, multiply, `s8_round16`, narrow), scalar
/// channel tail; the same float operations, so bit-exact.
public func s8_gate_16_simd(map: UnsafeMutableBufferPointer<Int8>, pixels: Int, channels c: Int,
                            inputZeroPoint: Int32, multiplier: UnsafeBufferPointer<Float>, outputZeroPoint: Int32) {
    precondition(map.count >= pixels * c && multiplier.count >= c)
    guard c > 0, pixels > 0 else { return }
    let m = map.baseAddress!, g = UnsafeRawPointer(multiplier.baseAddress!)
    let full = c / 16 * 16, zin = Float(inputZeroPoint)
    for p in 0..<pixels {
        let row = m + p * c
        var c0 = 0
        while c0 < full {
            let x = s8_load16(row + c0, lanes: 16) - zin
            let y = x * g.loadUnaligned(fromByteOffset: 4 * c0, as: SIMD16<Float>.self)
            s8_store16(s8_round16(y, zeroPoint: outputZeroPoint), row + c0, lanes: 16)
            c0 += 16
        }
        for ch in full..<c {
            row[ch] = s8_round(Float(Int32(row[ch]) - inputZeroPoint) * multiplier[ch], zeroPoint: outputZeroPoint)
        }
    }
}

/// Scalar reference int8 dense layer with float output (the classifier's last Linear): (Float(int32 sum) + biasF[o])
/// times inputScale * weightScale[o] (biasF: the bias with the zero point folded, as in s8_conv1x1_reference).
/// Invariant: as s8_conv1x1_reference.
public func s8_linear_dequantize_reference(input: UnsafeBufferPointer<Int8>, nin: Int,
                                           weights: UnsafeBufferPointer<Int16>, biasF: UnsafeBufferPointer<Float>,
                                           nout: Int, scales: UnsafeBufferPointer<Float>,
                                           output: UnsafeMutableBufferPointer<Float>) {
    precondition(input.count >= nin && weights.count >= nin * nout && output.count >= nout && scales.count >= nout)
    for o in 0..<nout {
        var acc: Int32 = 0
        for i in 0..<nin { acc &+= Int32(input[i]) * Int32(weights[o * nin + i]) }
        output[o] = (Float(acc) + biasF[o]) * scales[o]
    }
}

/// Vectorized `s8_linear_dequantize_reference`, bit-exact with it: weights from `s8_pack_conv1x1_16` (nout as cout),
/// the input widened to floats in `scratch` (nin floats), 16 outputs per vector with exact float sums (nin <=
/// s8FloatExactMaxK), then (sum + biasF) * scale, the reference's operations.
public func s8_linear_dequantize_16_simd(input: UnsafeBufferPointer<Int8>, nin: Int,
                                         packed: UnsafeBufferPointer<Float>, biasF: UnsafeBufferPointer<Float>,
                                         nout: Int, scales: UnsafeBufferPointer<Float>,
                                         scratch: UnsafeMutableBufferPointer<Float>,
                                         output: UnsafeMutableBufferPointer<Float>) {
    precondition(nin <= s8FloatExactMaxK && input.count >= nin && scratch.count >= nin && output.count >= nout)
    precondition(packed.count >= s8_packed_conv1x1_16_count(cin: nin, cout: nout) && biasF.count >= nout && scales.count >= nout)
    guard nin > 0, nout > 0 else { return }
    let xs = scratch.baseAddress!, x = input.baseAddress!
    for i in 0..<nin { xs[i] = Float(x[i]) }
    let w = UnsafeRawPointer(packed.baseAddress!)
    for b in 0..<((nout + 15) / 16) {
        var a = SIMD16<Float>(), wp = w + b * nin * 64
        for i in 0..<nin { a.addProduct(wp.load(as: SIMD16<Float>.self), xs[i]); wp += 64 }
        for l in 0..<min(16, nout - b * 16) { output[b * 16 + l] = (a[l] + biasF[b * 16 + l]) * scales[b * 16 + l] }
    }
}
