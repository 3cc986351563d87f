// Pointwise (1x1) convolution as a GEMM over pixels: out[p][co] = act(sum_ci in[p][ci] * w[co][ci] + b[co])
// (+ residual[p][co]). Channels-last maps: a map of P pixels and C channels is P rows of C contiguous floats.
// ref: EfficientAT models/mn/block_types.py InvertedResidual (expand / project ConvNormActivation, res add).

/// Scalar reference 1x1 conv.
/// Layout: input [pixels][cin], weights [cout][cin] (PyTorch order, BN folded), bias [cout], output [pixels][cout],
/// residual (optional) [pixels][cout] added after the activation. Accumulates in ci order from the bias.
/// Invariant: output must not alias input; it may alias residual (each element is read before it is written).
public func f32_conv1x1_reference(
    input: UnsafeBufferPointer<Float>, pixels: Int, cin: Int,
    weights: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>, cout: Int,
    activation: KernelActivation, residual: UnsafeBufferPointer<Float>?,
    output: UnsafeMutableBufferPointer<Float>
) {
    precondition(input.count >= pixels * cin && output.count >= pixels * cout)
    precondition(weights.count >= cout * cin && bias.count >= cout)
    for p in 0..<pixels {
        for co in 0..<cout {
            var acc = bias[co]
            for ci in 0..<cin { acc += input[p * cin + ci] * weights[co * cin + ci] }
            var y = f32_activate_reference(acc, activation)
            if let r = residual { y += r[p * cout + co] }
            output[p * cout + co] = y
        }
    }
}

/// Number of floats `f32_pack_conv1x1` writes for a cin -> cout conv.
public func f32_packed_conv1x1_count(cin: Int, cout: Int) -> Int { f32_blocks8(cout) * cin * 8 }

/// Packs [cout][cin] weights for the simd8 GEMMs: layout [ceil(cout/8)][cin][8], output channel co at
/// block co/8 lane co%8; lanes past cout are zero, so a tail block computes harmless zeros.
public func f32_pack_conv1x1(weights: UnsafeBufferPointer<Float>, cin: Int, cout: Int,
                             packed: UnsafeMutableBufferPointer<Float>) {
    precondition(packed.count >= f32_packed_conv1x1_count(cin: cin, cout: cout))
    for cb in 0..<f32_blocks8(cout) {
        for ci in 0..<cin {
            for lane in 0..<8 {
                let co = cb * 8 + lane
                packed[(cb * cin + ci) * 8 + lane] = co < cout ? weights[co * cin + ci] : 0
            }
        }
    }
}

/// Multiplies the input-channel rows of packed 1x1 weights by `scale[ci]` into `scaled` (same packed layout).
/// `blockWidth` is the packing's output-channel block: 8 (`f32_pack_conv1x1`) or 16 (`f32_pack_conv1x1_16`).
/// Used to fold a squeeze-excitation channel scale into the following projection instead of scaling the map.
public func f32_scale_packed_conv1x1_simd8(packed: UnsafeBufferPointer<Float>, cin: Int, cout: Int,
                                           scale: UnsafeBufferPointer<Float>,
                                           scaled: UnsafeMutableBufferPointer<Float>, blockWidth: Int = 8) {
    precondition(blockWidth % 8 == 0)
    let blocks = (cout + blockWidth - 1) / blockWidth
    precondition(packed.count >= blocks * cin * blockWidth && scaled.count >= blocks * cin * blockWidth)
    let src = packed.baseAddress!, dst = scaled.baseAddress!, s = scale.baseAddress!
    for cb in 0..<blocks {
        for ci in 0..<cin {
            let f = SIMD8<Float>(repeating: s[ci])
            let o = (cb * cin + ci) * blockWidth
            var l = 0
            while l < blockWidth { store8(dst + o + l, load8(src + o + l) * f); l += 8 }
        }
    }
}

/// Vectorized 1x1 conv: micro-tiles of 4 pixels x 8 output channels (8 accumulating 4-lane registers on SSE/NEON).
/// Layout: input [pixels][cin], packed weights from `f32_pack_conv1x1`, bias [cout], output [pixels][cout],
/// residual (optional) [pixels][cout] added after the activation. Any pixels >= 0, cin >= 1, cout >= 1 (tails:
/// the last channel block stores only its valid lanes; 1-3 leftover pixels go through a 1-pixel tile).
/// Invariant: accumulates in ci order from the bias like the reference, so results match it to rounding of
/// the vector hardswish. Output must not alias input; it may alias residual.
public func f32_conv1x1_simd8x4(
    input: UnsafeBufferPointer<Float>, pixels: Int, cin: Int,
    packed: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>, cout: Int,
    activation: KernelActivation, residual: UnsafeBufferPointer<Float>?,
    output: UnsafeMutableBufferPointer<Float>
) {
    guard pixels > 0 else { return }
    precondition(input.count >= pixels * cin && output.count >= pixels * cout)
    precondition(packed.count >= f32_packed_conv1x1_count(cin: cin, cout: cout) && bias.count >= cout)
    let res = residual?.baseAddress
    switch activation {
    case .none: conv1x1Tiles(IdentityOp.self, input.baseAddress!, pixels, cin, packed.baseAddress!, bias.baseAddress!,
                             cout, res, output.baseAddress!)
    case .relu: conv1x1Tiles(ReluOp.self, input.baseAddress!, pixels, cin, packed.baseAddress!, bias.baseAddress!,
                             cout, res, output.baseAddress!)
    case .hardswish: conv1x1Tiles(HardswishOp.self, input.baseAddress!, pixels, cin, packed.baseAddress!,
                                  bias.baseAddress!, cout, res, output.baseAddress!)
    }
}

/// Body of `f32_conv1x1_simd8x4`, specialised per activation.
@inline(__always)
private func conv1x1Tiles<A: ActivationOp>(
    _: A.Type, _ inp: UnsafePointer<Float>, _ pixels: Int, _ cin: Int, _ wp: UnsafePointer<Float>,
    _ bp: UnsafePointer<Float>, _ cout: Int, _ res: UnsafePointer<Float>?, _ out: UnsafeMutablePointer<Float>
) {
    let nb = f32_blocks8(cout)
    let fullBlocks = cout / 8
    let rem = cout - fullBlocks * 8
    // Bias of a (possibly partial) block, zero-filled past cout.
    @inline(__always) func biasBlock(_ cb: Int) -> SIMD8<Float> {
        if cb < fullBlocks { return load8(bp + cb * 8) }
        var v = SIMD8<Float>(repeating: 0)
        for l in 0..<rem { v[l] = bp[cb * 8 + l] }
        return v
    }
    // Activation, residual and store of one 8-lane result for pixel p, block cb.
    @inline(__always) func finish(_ acc: SIMD8<Float>, _ p: Int, _ cb: Int) {
        var y = A.apply(acc)
        let o = p * cout + cb * 8
        if cb < fullBlocks {
            if let r = res { y += load8(r + o) }
            store8(out + o, y)
        } else {
            for l in 0..<rem { out[o + l] = y[l] + (res.map { $0[o + l] } ?? 0) }
        }
    }
    var p = 0
    while p + 4 <= pixels {
        let i0 = inp + p * cin, i1 = i0 + cin, i2 = i1 + cin, i3 = i2 + cin
        for cb in 0..<nb {
            let b = biasBlock(cb)
            var a0 = b, a1 = b, a2 = b, a3 = b
            var w = wp + cb * cin * 8
            var ci = 0
            #if arch(arm64)
            // NEON: four input channels per step, one 4-lane load per pixel, then lane splats (by-element FMAs)
            // instead of four scalar loads. (On x86 a broadcast load is cheaper than a lane shuffle.)
            while ci + 4 <= cin {
                let x0 = load4(i0 + ci), x1 = load4(i1 + ci), x2 = load4(i2 + ci), x3 = load4(i3 + ci)
                for l in 0..<4 {
                    let wv = load8(w + l * 8)
                    a0 = madd(a0, splat8(x0, l), wv)
                    a1 = madd(a1, splat8(x1, l), wv)
                    a2 = madd(a2, splat8(x2, l), wv)
                    a3 = madd(a3, splat8(x3, l), wv)
                }
                w += 32
                ci += 4
            }
            #endif
            while ci < cin {
                let wv = load8(w)
                a0 = madd(a0, SIMD8(repeating: i0[ci]), wv)
                a1 = madd(a1, SIMD8(repeating: i1[ci]), wv)
                a2 = madd(a2, SIMD8(repeating: i2[ci]), wv)
                a3 = madd(a3, SIMD8(repeating: i3[ci]), wv)
                w += 8
                ci += 1
            }
            finish(a0, p, cb); finish(a1, p + 1, cb); finish(a2, p + 2, cb); finish(a3, p + 3, cb)
        }
        p += 4
    }
    while p < pixels {
        let i0 = inp + p * cin
        for cb in 0..<nb {
            var a0 = biasBlock(cb)
            var w = wp + cb * cin * 8
            for ci in 0..<cin {
                a0 = madd(a0, SIMD8(repeating: i0[ci]), load8(w))
                w += 8
            }
            finish(a0, p, cb)
        }
        p += 1
    }
}

/// Number of floats `f32_pack_conv1x1_16` writes for a cin -> cout conv.
public func f32_packed_conv1x1_16_count(cin: Int, cout: Int) -> Int { (cout + 15) / 16 * cin * 16 }

/// Packs [cout][cin] weights for `f32_conv1x1_simd16x2`: layout [ceil(cout/16)][cin][16], zero past cout.
public func f32_pack_conv1x1_16(weights: UnsafeBufferPointer<Float>, cin: Int, cout: Int,
                                packed: UnsafeMutableBufferPointer<Float>) {
    precondition(packed.count >= f32_packed_conv1x1_16_count(cin: cin, cout: cout))
    for cb in 0..<((cout + 15) / 16) {
        for ci in 0..<cin {
            for lane in 0..<16 {
                let co = cb * 16 + lane
                packed[(cb * cin + ci) * 16 + lane] = co < cout ? weights[co * cin + ci] : 0
            }
        }
    }
}

/// Vectorized 1x1 conv with micro-tiles of 2 pixels x 16 output channels (each input broadcast feeds 16 lanes,
/// half the broadcasts of the 4x8 tile). Layout: input [pixels][cin], packed weights from `f32_pack_conv1x1_16`,
/// bias [cout], output [pixels][cout], residual (optional) [pixels][cout] added after the activation. Any shape;
/// channel tails store only valid lanes; an odd last pixel uses a 1-pixel tile. Accumulates in ci order from the
/// bias. Output must not alias input; it may alias residual.
public func f32_conv1x1_simd16x2(
    input: UnsafeBufferPointer<Float>, pixels: Int, cin: Int,
    packed: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>, cout: Int,
    activation: KernelActivation, residual: UnsafeBufferPointer<Float>?,
    output: UnsafeMutableBufferPointer<Float>
) {
    guard pixels > 0 else { return }
    precondition(input.count >= pixels * cin && output.count >= pixels * cout)
    precondition(packed.count >= f32_packed_conv1x1_16_count(cin: cin, cout: cout) && bias.count >= cout)
    let res = residual?.baseAddress
    switch activation {
    case .none: conv1x1Tiles16(IdentityOp.self, input.baseAddress!, pixels, cin, packed.baseAddress!,
                               bias.baseAddress!, cout, res, output.baseAddress!)
    case .relu: conv1x1Tiles16(ReluOp.self, input.baseAddress!, pixels, cin, packed.baseAddress!,
                               bias.baseAddress!, cout, res, output.baseAddress!)
    case .hardswish: conv1x1Tiles16(HardswishOp.self, input.baseAddress!, pixels, cin, packed.baseAddress!,
                                    bias.baseAddress!, cout, res, output.baseAddress!)
    }
}

/// Body of `f32_conv1x1_simd16x2`, specialised per activation.
@inline(__always)
private func conv1x1Tiles16<A: ActivationOp>(
    _: A.Type, _ inp: UnsafePointer<Float>, _ pixels: Int, _ cin: Int, _ wp: UnsafePointer<Float>,
    _ bp: UnsafePointer<Float>, _ cout: Int, _ res: UnsafePointer<Float>?, _ out: UnsafeMutablePointer<Float>
) {
    let nb = (cout + 15) / 16
    // Bias lanes co0..<co0+8, zero past cout.
    @inline(__always) func bias8(_ co0: Int) -> SIMD8<Float> {
        if co0 + 8 <= cout { return load8(bp + co0) }
        var v = SIMD8<Float>(repeating: 0)
        var l = 0
        while co0 + l < cout { v[l] = bp[co0 + l]; l += 1 }
        return v
    }
    // Activation, residual and store of lanes co0..<co0+8 of pixel p.
    @inline(__always) func finish(_ acc: SIMD8<Float>, _ p: Int, _ co0: Int) {
        guard co0 < cout else { return }
        var y = A.apply(acc)
        let o = p * cout + co0
        if co0 + 8 <= cout {
            if let r = res { y += load8(r + o) }
            store8(out + o, y)
        } else {
            for l in 0..<(cout - co0) { out[o + l] = y[l] + (res.map { $0[o + l] } ?? 0) }
        }
    }
    var p = 0
    while p + 2 <= pixels {
        let i0 = inp + p * cin, i1 = i0 + cin
        for cb in 0..<nb {
            let lo = bias8(cb * 16), hi = bias8(cb * 16 + 8)
            var a0 = lo, b0 = hi, a1 = lo, b1 = hi
            var w = wp + cb * cin * 16
            for ci in 0..<cin {
                let wl = load8(w), wh = load8(w + 8)
                let x0 = SIMD8<Float>(repeating: i0[ci]), x1 = SIMD8<Float>(repeating: i1[ci])
                a0 = madd(a0, x0, wl); b0 = madd(b0, x0, wh)
                a1 = madd(a1, x1, wl); b1 = madd(b1, x1, wh)
                w += 16
            }
            finish(a0, p, cb * 16); finish(b0, p, cb * 16 + 8)
            finish(a1, p + 1, cb * 16); finish(b1, p + 1, cb * 16 + 8)
        }
        p += 2
    }
    if p < pixels {
        let i0 = inp + p * cin
        for cb in 0..<nb {
            var a0 = bias8(cb * 16), b0 = bias8(cb * 16 + 8)
            var w = wp + cb * cin * 16
            for ci in 0..<cin {
                let x0 = SIMD8<Float>(repeating: i0[ci])
                a0 = madd(a0, x0, load8(w)); b0 = madd(b0, x0, load8(w + 8))
                w += 16
            }
            finish(a0, p, cb * 16); finish(b0, p, cb * 16 + 8)
        }
    }
}
