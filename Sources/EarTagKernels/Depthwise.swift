// Depthwise k x k convolution with zero padding (k - 1) / 2 * dilation, stride and dilation applied to both
// axes, fused bias + activation. Channels-last maps [rows][cols][C]; rows are frequency, cols are time.
// ref: EfficientAT models/mn/block_types.py InvertedResidual (depthwise ConvNormActivation, groups = channels).

/// Output length of a conv along one axis: floor((n + 2 pad - d (k - 1) - 1) / s) + 1.
@inline(__always)
public func f32_conv_out_size(_ n: Int, kernel: Int, stride: Int, dilation: Int) -> Int {
    let pad = (kernel - 1) / 2 * dilation
    return (n + 2 * pad - dilation * (kernel - 1) - 1) / stride + 1
}

/// Range of kernel taps whose input index o * s - pad + t * d falls inside 0..<n.
@inline(__always)
func validTaps(_ o: Int, n: Int, kernel: Int, stride: Int, dilation: Int, pad: Int) -> Range<Int> {
    let lowNum = pad - o * stride
    let lo = lowNum <= 0 ? 0 : (lowNum + dilation - 1) / dilation
    let hiNum = n - 1 - o * stride + pad
    let hi = hiNum < 0 ? 0 : min(kernel, hiNum / dilation + 1)
    return lo..<max(lo, hi)
}

/// Scalar reference depthwise conv.
/// Layout: input [h][w][c], weights [c][k][k] (PyTorch order, BN folded), bias [c], output [ho][wo][c] with
/// ho, wo from `f32_conv_out_size`. Taps outside the input read zero. Accumulates from the bias in (ky, kx) order.
public func f32_dwconv_reference(
    input: UnsafeBufferPointer<Float>, height h: Int, width w: Int, channels c: Int,
    weights: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>,
    kernel k: Int, stride s: Int, dilation d: Int, activation: KernelActivation,
    output: UnsafeMutableBufferPointer<Float>
) {
    let pad = (k - 1) / 2 * d
    let ho = f32_conv_out_size(h, kernel: k, stride: s, dilation: d)
    let wo = f32_conv_out_size(w, kernel: k, stride: s, dilation: d)
    precondition(input.count >= h * w * c && output.count >= ho * wo * c && weights.count >= c * k * k)
    for oy in 0..<ho {
        for ox in 0..<wo {
            for ch in 0..<c {
                var acc = bias[ch]
                for ky in 0..<k {
                    let iy = oy * s - pad + ky * d
                    if iy < 0 || iy >= h { continue }
                    for kx in 0..<k {
                        let ix = ox * s - pad + kx * d
                        if ix < 0 || ix >= w { continue }
                        acc += input[(iy * w + ix) * c + ch] * weights[(ch * k + ky) * k + kx]
                    }
                }
                output[(oy * wo + ox) * c + ch] = f32_activate_reference(acc, activation)
            }
        }
    }
}

/// Packs [c][k][k] depthwise weights tap-major for the simd8 kernels: layout [k * k][c] (channel contiguous).
public func f32_pack_dwconv(weights: UnsafeBufferPointer<Float>, channels c: Int, kernel k: Int,
                            packed: UnsafeMutableBufferPointer<Float>) {
    precondition(packed.count >= k * k * c)
    for ch in 0..<c {
        for t in 0..<(k * k) { packed[t * c + ch] = weights[ch * k * k + t] }
    }
}

/// Vectorized depthwise conv over 8-channel blocks for any kernel / stride / dilation, restricted to output rows
/// `rows` (so callers can split rows over threads). Layout: input [h][w][c], packed weights [k * k][c] from
/// `f32_pack_dwconv`, bias [c], output [ho][wo][c]. Each pixel clamps its tap ranges to the input (zero
/// padding); channels past the last full block of 8 take a scalar tail. Accumulates from the bias in (ky, kx)
/// order like the reference.
public func f32_dwconv_simd8(
    input: UnsafeBufferPointer<Float>, height h: Int, width w: Int, channels c: Int,
    packed: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>,
    kernel k: Int, stride s: Int, dilation d: Int, activation: KernelActivation,
    output: UnsafeMutableBufferPointer<Float>, rows: Range<Int>? = nil
) {
    let pad = (k - 1) / 2 * d
    let ho = f32_conv_out_size(h, kernel: k, stride: s, dilation: d)
    let wo = f32_conv_out_size(w, kernel: k, stride: s, dilation: d)
    precondition(input.count >= h * w * c && output.count >= ho * wo * c && packed.count >= c * k * k)
    let args = DepthwiseArgs(inp: input.baseAddress!, h: h, w: w, c: c, wp: packed.baseAddress!,
                             bp: bias.baseAddress!, k: k, s: s, d: d, pad: pad, ho: ho, wo: wo,
                             out: output.baseAddress!)
    switch activation {
    case .none: dwPixels(IdentityOp.self, args, rows ?? 0..<ho)
    case .relu: dwPixels(ReluOp.self, args, rows ?? 0..<ho)
    case .hardswish: dwPixels(HardswishOp.self, args, rows ?? 0..<ho)
    }
}

/// Raw pointers and geometry of one depthwise call.
struct DepthwiseArgs {
    var inp: UnsafePointer<Float>
    var h: Int, w: Int, c: Int
    var wp: UnsafePointer<Float>, bp: UnsafePointer<Float>
    var k: Int, s: Int, d: Int, pad: Int, ho: Int, wo: Int
    var out: UnsafeMutablePointer<Float>
}

/// Per-pixel body of `f32_dwconv_simd8` (each pixel clamps its own taps).
@inline(__always)
private func dwPixels<A: ActivationOp>(_: A.Type, _ g: DepthwiseArgs, _ rows: Range<Int>) {
    for oy in rows { dwPixelRange(A.self, g, oy, 0..<g.wo) }
}

/// Output pixels `cols` of row `oy`, one at a time with clamped taps and a scalar channel tail.
@inline(__always)
private func dwPixelRange<A: ActivationOp>(_: A.Type, _ g: DepthwiseArgs, _ oy: Int, _ cols: Range<Int>) {
    let inp = g.inp, wp = g.wp, bp = g.bp, out = g.out
    let h = g.h, w = g.w, c = g.c, k = g.k, s = g.s, d = g.d, pad = g.pad, wo = g.wo
    let full = c / 8
    let tail = full * 8
    do {
        let ky = validTaps(oy, n: h, kernel: k, stride: s, dilation: d, pad: pad)
        let iy0 = oy * s - pad
        for ox in cols {
            let kx = validTaps(ox, n: w, kernel: k, stride: s, dilation: d, pad: pad)
            let ix0 = ox * s - pad
            let o = out + (oy * wo + ox) * c
            for cb in 0..<full {
                var acc = load8(bp + cb * 8)
                for ty in ky {
                    let row = inp + ((iy0 + ty * d) * w + ix0) * c + cb * 8
                    let wrow = wp + ty * k * c + cb * 8
                    for tx in kx {
                        acc = madd(acc, load8(row + tx * d * c), load8(wrow + tx * c))
                    }
                }
                store8(o + cb * 8, A.apply(acc))
            }
            if tail < c {
                for ch in tail..<c {
                    var acc = bp[ch]
                    for ty in ky {
                        let row = inp + ((iy0 + ty * d) * w + ix0) * c + ch
                        for tx in kx { acc = madd1(acc, row[tx * d * c], wp[(ty * k + tx) * c + ch]) }
                    }
                    o[ch] = A.apply1(acc)
                }
            }
        }
    }
}

/// Vectorized depthwise conv with 4-pixel tiles: same contract and layouts as `f32_dwconv_simd8`. Within each
/// output row, the columns whose taps are all inside the input go 4 at a time (4 accumulators share each
/// weight load; the tap loop needs no clamping); border columns and leftovers take the per-pixel path.
/// Accumulation order per output is the same as the reference ((ky, kx) from the bias).
public func f32_dwconv_simd8x4(
    input: UnsafeBufferPointer<Float>, height h: Int, width w: Int, channels c: Int,
    packed: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>,
    kernel k: Int, stride s: Int, dilation d: Int, activation: KernelActivation,
    output: UnsafeMutableBufferPointer<Float>, rows: Range<Int>? = nil
) {
    let pad = (k - 1) / 2 * d
    let ho = f32_conv_out_size(h, kernel: k, stride: s, dilation: d)
    let wo = f32_conv_out_size(w, kernel: k, stride: s, dilation: d)
    precondition(input.count >= h * w * c && output.count >= ho * wo * c && packed.count >= c * k * k)
    let args = DepthwiseArgs(inp: input.baseAddress!, h: h, w: w, c: c, wp: packed.baseAddress!,
                             bp: bias.baseAddress!, k: k, s: s, d: d, pad: pad, ho: ho, wo: wo,
                             out: output.baseAddress!)
    switch activation {
    case .none: dwTilesForKernel(IdentityOp.self, args, rows ?? 0..<ho)
    case .relu: dwTilesForKernel(ReluOp.self, args, rows ?? 0..<ho)
    case .hardswish: dwTilesForKernel(HardswishOp.self, args, rows ?? 0..<ho)
    }
}

/// Picks a copy of the tile loop with the kernel size and stride as constants (3/5, 1/2), so the tap loops unroll.
@inline(__always)
private func dwTilesForKernel<A: ActivationOp>(_: A.Type, _ g: DepthwiseArgs, _ rows: Range<Int>) {
    switch (g.k, g.s) {
    case (3, 1): dwTiles(A.self, g, rows, k: 3, s: 1)
    case (3, 2): dwTiles(A.self, g, rows, k: 3, s: 2)
    case (5, 1): dwTiles(A.self, g, rows, k: 5, s: 1)
    case (5, 2): dwTiles(A.self, g, rows, k: 5, s: 2)
    default: dwTiles(A.self, g, rows, k: g.k, s: g.s)
    }
}

/// Body of `f32_dwconv_simd8x4`, specialised per activation (and, when inlined with constants, kernel/stride).
@inline(__always)
private func dwTiles<A: ActivationOp>(_: A.Type, _ g: DepthwiseArgs, _ rows: Range<Int>, k: Int, s: Int) {
    let inp = g.inp, wp = g.wp, bp = g.bp, out = g.out
    let h = g.h, w = g.w, c = g.c, d = g.d, pad = g.pad, wo = g.wo
    let full = c / 8, tail = full * 8
    // Interior columns: ox * s - pad >= 0 and ox * s - pad + (k - 1) * d <= w - 1.
    let lo = min(wo, (pad + s - 1) / s)
    let hiNum = w - 1 + pad - (k - 1) * d
    let hi = max(lo, min(wo, hiNum < 0 ? 0 : hiNum / s + 1))
    let step = s * c
    for oy in rows {
        dwPixelRange(A.self, g, oy, 0..<lo)
        let ky = validTaps(oy, n: h, kernel: k, stride: s, dilation: d, pad: pad)
        let iy0 = oy * s - pad
        var ox = lo
        while ox + 4 <= hi {
            let ix0 = ox * s - pad
            let o = out + (oy * wo + ox) * c
            for cb in 0..<full {
                let b = load8(bp + cb * 8)
                var a0 = b, a1 = b, a2 = b, a3 = b
                for ty in ky {
                    var p = inp + ((iy0 + ty * d) * w + ix0) * c + cb * 8
                    var wt = wp + ty * k * c + cb * 8
                    for _ in 0..<k {
                        let wv = load8(wt)
                        a0 = madd(a0, load8(p), wv)
                        a1 = madd(a1, load8(p + step), wv)
                        a2 = madd(a2, load8(p + 2 * step), wv)
                        a3 = madd(a3, load8(p + 3 * step), wv)
                        p += d * c
                        wt += c
                    }
                }
                let q = o + cb * 8
                store8(q, A.apply(a0)); store8(q + c, A.apply(a1))
                store8(q + 2 * c, A.apply(a2)); store8(q + 3 * c, A.apply(a3))
            }
            if tail < c {
                for j in 0..<4 {
                    for ch in tail..<c {
                        var acc = bp[ch]
                        for ty in ky {
                            let row = inp + ((iy0 + ty * d) * w + ix0 + j * s) * c + ch
                            for tx in 0..<k { acc = madd1(acc, row[tx * d * c], wp[(ty * k + tx) * c + ch]) }
                        }
                        o[j * c + ch] = A.apply1(acc)
                    }
                }
            }
            ox += 4
        }
        dwPixelRange(A.self, g, oy, ox..<wo)
    }
}

/// Signature shared by the vectorized depthwise kernels: input, h, w, c, packed [k*k][c], bias, k, stride,
/// dilation, activation, output, output rows.
public typealias F32DepthwiseKernel = @Sendable (
    UnsafeBufferPointer<Float>, Int, Int, Int, UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>,
    Int, Int, Int, KernelActivation, UnsafeMutableBufferPointer<Float>, Range<Int>
) -> Void

/// A vectorized depthwise kernel with the (kernel, stride, dilation) combinations it handles.
public struct F32DepthwiseVariant: Sendable {
    /// The kernel's function name.
    public let name: String
    /// Whether the kernel handles this (kernel, stride, dilation).
    public let supports: @Sendable (_ kernel: Int, _ stride: Int, _ dilation: Int) -> Bool
    /// Calls the kernel.
    public let run: F32DepthwiseKernel
}

/// Every vectorized depthwise variant, most specialised first (the engine picks the first that supports a layer).
public let f32_dwconv_variants: [F32DepthwiseVariant] = [
    F32DepthwiseVariant(name: "f32_dwconv_simd8x4", supports: { _, _, _ in true }, run: {
        f32_dwconv_simd8x4(input: $0, height: $1, width: $2, channels: $3, packed: $4, bias: $5, kernel: $6,
                           stride: $7, dilation: $8, activation: $9, output: $10, rows: $11)
    }),
    F32DepthwiseVariant(name: "f32_dwconv_simd8", supports: { _, _, _ in true }, run: {
        f32_dwconv_simd8(input: $0, height: $1, width: $2, channels: $3, packed: $4, bias: $5, kernel: $6,
                         stride: $7, dilation: $8, activation: $9, output: $10, rows: $11)
    }),
]
