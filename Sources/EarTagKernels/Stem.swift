// Stem: 3x3 conv, stride 2, zero padding 1, from one input plane to cout channels, fused bias + activation.
// ref: EfficientAT models/mn/model.py MN.__init__ (first ConvNormActivation, stride 2, hardswish).

/// Scalar reference stem conv.
/// Layout: input [h][w] (one plane, e.g. the mel [128][frames]), weights [cout][1][3][3] (PyTorch order, BN folded),
/// bias [cout], output [ho][wo][cout] channels-last with ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1.
public func f32_stem3x3s2_reference(
    input: UnsafeBufferPointer<Float>, height h: Int, width w: Int,
    weights: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>, cout: Int,
    activation: KernelActivation, output: UnsafeMutableBufferPointer<Float>
) {
    stemReferenceBody(input: input, h: h, w: w, weights: weights, bias: bias, cout: cout,
                               activation: activation, output: output)
}

/// Reference body: every output channel reads the single input plane.
private func stemReferenceBody(
    input: UnsafeBufferPointer<Float>, h: Int, w: Int, weights: UnsafeBufferPointer<Float>,
    bias: UnsafeBufferPointer<Float>, cout: Int, activation: KernelActivation,
    output: UnsafeMutableBufferPointer<Float>
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
                        acc += input[iy * w + ix] * weights[co * 9 + ky * 3 + kx]
                    }
                }
                output[(oy * wo + ox) * cout + co] = f32_activate_reference(acc, activation)
            }
        }
    }
}

/// Vectorized stem conv over 8-output-channel blocks, restricted to output rows `rows` when given.
/// Layout: input [h][w], packed weights [9][cout] (tap-major; `f32_pack_dwconv(channels: cout, kernel: 3)` packs
/// the PyTorch [cout][1][3][3] tensor), bias [cout], output [ho][wo][cout]. Tail channels go scalar.
/// Accumulates from the bias in (ky, kx) order like the reference.
public func f32_stem3x3s2_simd8(
    input: UnsafeBufferPointer<Float>, height h: Int, width w: Int,
    packed: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>, cout: Int,
    activation: KernelActivation, output: UnsafeMutableBufferPointer<Float>, rows: Range<Int>? = nil
) {
    let ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1
    precondition(input.count >= h * w && output.count >= ho * wo * cout && packed.count >= cout * 9)
    let g = StemArgs(inp: input.baseAddress!, h: h, w: w, wp: packed.baseAddress!, bp: bias.baseAddress!,
                     cout: cout, wo: wo, out: output.baseAddress!)
    switch activation {
    case .none: stemRows(IdentityOp.self, g, rows ?? 0..<ho)
    case .relu: stemRows(ReluOp.self, g, rows ?? 0..<ho)
    case .hardswish: stemRows(HardswishOp.self, g, rows ?? 0..<ho)
    }
}

/// Raw pointers and geometry of one stem call.
struct StemArgs {
    var inp: UnsafePointer<Float>
    var h: Int, w: Int
    var wp: UnsafePointer<Float>, bp: UnsafePointer<Float>
    var cout: Int, wo: Int
    var out: UnsafeMutablePointer<Float>
}

/// Body of `f32_stem3x3s2_simd8`: interior columns (all three kx taps inside) run the kx loop unrolled;
/// the first and last columns clamp their taps per pixel.
@inline(__always)
private func stemRows<A: ActivationOp>(_: A.Type, _ g: StemArgs, _ rows: Range<Int>) {
    let inp = g.inp, wp = g.wp, bp = g.bp, out = g.out, h = g.h, w = g.w, cout = g.cout, wo = g.wo
    let full = cout / 8, tail = full * 8
    // Interior columns: 2 ox - 1 >= 0 and 2 ox + 1 <= w - 1.
    let lo = min(wo, 1), hi = max(lo, min(wo, w >= 2 ? (w - 2) / 2 + 1 : 0))
    for oy in rows {
        let ky = validTaps(oy, n: h, kernel: 3, stride: 2, dilation: 1, pad: 1)
        // One output pixel with clamped taps (borders and tails).
        @inline(__always) func pixel(_ ox: Int, channels: Range<Int>) {
            let kx = validTaps(ox, n: w, kernel: 3, stride: 2, dilation: 1, pad: 1)
            let o = out + (oy * wo + ox) * cout
            for co in channels {
                var acc = bp[co]
                for ty in ky {
                    let row = inp + (oy * 2 - 1 + ty) * w + ox * 2 - 1
                    for tx in kx { acc = madd1(acc, row[tx], wp[(ty * 3 + tx) * cout + co]) }
                }
                o[co] = A.apply1(acc)
            }
        }
        for ox in 0..<lo { pixel(ox, channels: 0..<cout) }
        for ox in lo..<hi {
            let o = out + (oy * wo + ox) * cout
            for cb in 0..<full {
                var acc = load8(bp + cb * 8)
                for ty in ky {
                    let row = inp + (oy * 2 - 1 + ty) * w + ox * 2 - 1
                    let wt = wp + ty * 3 * cout + cb * 8
                    acc = madd(acc, SIMD8(repeating: row[0]), load8(wt))
                    acc = madd(acc, SIMD8(repeating: row[1]), load8(wt + cout))
                    acc = madd(acc, SIMD8(repeating: row[2]), load8(wt + 2 * cout))
                }
                store8(o + cb * 8, A.apply(acc))
            }
            if tail < cout { pixel(ox, channels: tail..<cout) }
        }
        for ox in hi..<wo { pixel(ox, channels: 0..<cout) }
    }
}
