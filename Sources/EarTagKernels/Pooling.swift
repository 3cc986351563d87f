// Global average pooling, channel squeeze-excitation and the dense (Linear) layers of the head.
// ref: EfficientAT models/mn/block_types.py SqueezeExcitation (mean over F,T -> fc1 -> ReLU -> fc2 -> sigmoid),
// models/mn/model.py MN (classifier: pool, Linear, Hardswish, Dropout, Linear).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Scalar reference global average pool. Layout: input [pixels][c] channels-last, output [c] = mean over pixels,
/// summed in pixel order then divided by pixels.
public func f32_global_average_pool_reference(input: UnsafeBufferPointer<Float>, pixels: Int, channels c: Int,
                                              output: UnsafeMutableBufferPointer<Float>) {
    precondition(pixels > 0 && input.count >= pixels * c && output.count >= c)
    for ch in 0..<c {
        var s: Float = 0
        for p in 0..<pixels { s += input[p * c + ch] }
        output[ch] = s / Float(pixels)
    }
}

/// Vectorized global average pool: 8-channel blocks summed over pixels (scalar tail channels), same layout and
/// summation order as the reference.
public func f32_global_average_pool_simd8(input: UnsafeBufferPointer<Float>, pixels: Int, channels c: Int,
                                          output: UnsafeMutableBufferPointer<Float>) {
    precondition(pixels > 0 && input.count >= pixels * c && output.count >= c)
    let inp = input.baseAddress!, out = output.baseAddress!
    let full = c / 8
    var cb = 0
    // Four blocks at a time keep four independent sums in flight.
    while cb + 4 <= full {
        var s0 = SIMD8<Float>(repeating: 0), s1 = s0, s2 = s0, s3 = s0
        var p = inp + cb * 8
        for _ in 0..<pixels {
            s0 += load8(p); s1 += load8(p + 8); s2 += load8(p + 16); s3 += load8(p + 24)
            p += c
        }
        store8(out + cb * 8, s0 / Float(pixels)); store8(out + cb * 8 + 8, s1 / Float(pixels))
        store8(out + cb * 8 + 16, s2 / Float(pixels)); store8(out + cb * 8 + 24, s3 / Float(pixels))
        cb += 4
    }
    while cb < full {
        var s0 = SIMD8<Float>(repeating: 0)
        var p = inp + cb * 8
        for _ in 0..<pixels { s0 += load8(p); p += c }
        store8(out + cb * 8, s0 / Float(pixels))
        cb += 1
    }
    for ch in (full * 8)..<c {
        var s: Float = 0
        for p in 0..<pixels { s += inp[p * c + ch] }
        out[ch] = s / Float(pixels)
    }
}

/// Scalar reference dense layer: output[o] = act(bias[o] + sum_i input[i] * weights[o][i]).
/// Layout: weights [nout][nin] (PyTorch Linear order), bias [nout] (or nil for none).
public func f32_linear_reference(input: UnsafeBufferPointer<Float>, nin: Int,
                                 weights: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>?,
                                 nout: Int, activation: KernelActivation,
                                 output: UnsafeMutableBufferPointer<Float>) {
    precondition(input.count >= nin && weights.count >= nin * nout && output.count >= nout)
    for o in 0..<nout {
        var acc: Float = bias?[o] ?? 0
        for i in 0..<nin { acc += input[i] * weights[o * nin + i] }
        output[o] = f32_activate_reference(acc, activation)
    }
}

/// Vectorized dense layer (matrix-vector product): each output is an 8-lane dot product over its contiguous
/// weight row plus a scalar tail, then bias and activation. Same layout as the reference; the sum order
/// differs (lane-wise partial sums), so it matches the reference to float rounding.
public func f32_linear_simd8(input: UnsafeBufferPointer<Float>, nin: Int,
                             weights: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>?,
                             nout: Int, activation: KernelActivation,
                             output: UnsafeMutableBufferPointer<Float>) {
    precondition(input.count >= nin && weights.count >= nin * nout && output.count >= nout)
    let x = input.baseAddress!, wp = weights.baseAddress!, out = output.baseAddress!
    let full = nin / 8 * 8
    for o in 0..<nout {
        let row = wp + o * nin
        var a0 = SIMD8<Float>(repeating: 0), a1 = a0
        var i = 0
        while i + 16 <= full {
            a0 = madd(a0, load8(x + i), load8(row + i))
            a1 = madd(a1, load8(x + i + 8), load8(row + i + 8))
            i += 16
        }
        if i < full { a0 = madd(a0, load8(x + i), load8(row + i)) }
        var acc = (a0 + a1).sum()
        for j in full..<nin { acc = madd1(acc, x[j], row[j]) }
        if let b = bias { acc += b[o] }
        out[o] = activate1(acc, activation)
    }
}

/// Logistic sigmoid 1 / (1 + exp(-x)).
@inline(__always)
public func f32_sigmoid(_ x: Float) -> Float { 1 / (1 + expf32(-x)) }

/// exp for Float via the C library's expf.
@inline(__always)
func expf32(_ x: Float) -> Float { expf(x) }

/// Computes the squeeze-excitation channel scale of a map (the "squeeze" and "excitation" halves without
/// applying them), reference version: scale[c] = sigmoid(fc2 relu(fc1 mean_pixels(map) + b1) + b2).
/// Layout: map [pixels][c]; fc1 [s][c], b1 [s]; fc2 [c][s], b2 [c]; scratch >= c + s floats; scale [c].
public func f32_se_scale_reference(map: UnsafeBufferPointer<Float>, pixels: Int, channels c: Int,
                                   fc1: UnsafeBufferPointer<Float>, b1: UnsafeBufferPointer<Float>,
                                   fc2: UnsafeBufferPointer<Float>, b2: UnsafeBufferPointer<Float>,
                                   squeeze s: Int, scratch: UnsafeMutableBufferPointer<Float>,
                                   scale: UnsafeMutableBufferPointer<Float>) {
    let pooled = UnsafeMutableBufferPointer(rebasing: scratch[0..<c])
    let hidden = UnsafeMutableBufferPointer(rebasing: scratch[c..<(c + s)])
    f32_global_average_pool_reference(input: map, pixels: pixels, channels: c, output: pooled)
    f32_linear_reference(input: UnsafeBufferPointer(pooled), nin: c, weights: fc1, bias: b1, nout: s,
                         activation: .relu, output: hidden)
    f32_linear_reference(input: UnsafeBufferPointer(hidden), nin: s, weights: fc2, bias: b2, nout: c,
                         activation: .none, output: scale)
    for ch in 0..<c { scale[ch] = f32_sigmoid(scale[ch]) }
}

/// Vectorized squeeze-excitation scale: same contract and layouts as `f32_se_scale_reference`.
public func f32_se_scale_simd8(map: UnsafeBufferPointer<Float>, pixels: Int, channels c: Int,
                               fc1: UnsafeBufferPointer<Float>, b1: UnsafeBufferPointer<Float>,
                               fc2: UnsafeBufferPointer<Float>, b2: UnsafeBufferPointer<Float>,
                               squeeze s: Int, scratch: UnsafeMutableBufferPointer<Float>,
                               scale: UnsafeMutableBufferPointer<Float>) {
    let pooled = UnsafeMutableBufferPointer(rebasing: scratch[0..<c])
    let hidden = UnsafeMutableBufferPointer(rebasing: scratch[c..<(c + s)])
    f32_global_average_pool_simd8(input: map, pixels: pixels, channels: c, output: pooled)
    f32_linear_simd8(input: UnsafeBufferPointer(pooled), nin: c, weights: fc1, bias: b1, nout: s,
                     activation: .relu, output: hidden)
    f32_linear_simd8(input: UnsafeBufferPointer(hidden), nin: s, weights: fc2, bias: b2, nout: c,
                     activation: .none, output: scale)
    for ch in 0..<c { scale[ch] = f32_sigmoid(scale[ch]) }
}

/// Multiplies every pixel's channels by scale[c] in place, reference version. Layout: map [pixels][c].
public func f32_scale_channels_reference(map: UnsafeMutableBufferPointer<Float>, pixels: Int, channels c: Int,
                                         scale: UnsafeBufferPointer<Float>) {
    for p in 0..<pixels { for ch in 0..<c { map[p * c + ch] *= scale[ch] } }
}

/// Multiplies every pixel's channels by scale[c] in place, 8 channels at a time with a scalar tail.
public func f32_scale_channels_simd8(map: UnsafeMutableBufferPointer<Float>, pixels: Int, channels c: Int,
                                     scale: UnsafeBufferPointer<Float>) {
    let m = map.baseAddress!, sp = scale.baseAddress!
    let full = c / 8 * 8
    for p in 0..<pixels {
        let row = m + p * c
        var ch = 0
        while ch < full { store8(row + ch, load8(row + ch) * load8(sp + ch)); ch += 8 }
        while ch < c { row[ch] *= sp[ch]; ch += 1 }
    }
}
