// The trainer's layers, forward and backward, on channels-last batches [batch][rows][cols][channels]
// (rows = frequency, cols = time): BatchNorm (+ activation), 1x1 conv, depthwise conv, stem conv, channel
// squeeze-excitation, global average pool, linear. Gradients are overwritten (not accumulated) by each backward.
// ref: EfficientAT models/mn/block_types.py (InvertedResidual, SqueezeExcitation), models/mn/model.py (MN);
// PyTorch BatchNorm2d training semantics (batch statistics, biased variance for normalisation, unbiased variance
// for running_var, running = (1 - momentum) running + momentum batch).
import EarTagKernels
import Foundation

/// The non-linearity after a BatchNorm or linear layer.
enum TrainActivation: Sendable {
    case none, relu, hardswish
}

/// act(x) on eight lanes (hardswish as x * clamp(x + 3, 0, 6) / 6).
@inline(__always)
func activate(_ x: SIMD8<Float>, _ a: TrainActivation) -> SIMD8<Float> {
    switch a {
    case .none: return x
    case .relu: return x.replacing(with: 0, where: x .< 0)
    case .hardswish:
        var t = x + 3
        t.replace(with: 0, where: t .< 0)
        t.replace(with: 6, where: t .> 6)
        return x * t * (1 / 6 as Float)
    }
}

/// act(x) on one value (same formula as the vector form).
@inline(__always)
func activate(_ x: Float, _ a: TrainActivation) -> Float {
    switch a {
    case .none: return x
    case .relu: return max(x, 0)
    case .hardswish: return x * min(max(x + 3, 0), 6) * (1 / 6 as Float)
    }
}

/// g * act'(x) on eight lanes. ref: PyTorch hardswish_backward (0 below -3, x / 3 + 1/2 up to 3, 1 above);
/// threshold_backward for ReLU (0 at x <= 0).
@inline(__always)
func activationGradient(_ x: SIMD8<Float>, _ g: SIMD8<Float>, _ a: TrainActivation) -> SIMD8<Float> {
    switch a {
    case .none: return g
    case .relu: return g.replacing(with: 0, where: x .<= 0)
    case .hardswish:
        var d = x * (1 / 3 as Float) + 0.5
        d.replace(with: 0, where: x .< -3)
        d.replace(with: 1, where: x .> 3)
        return g * d
    }
}

/// g * act'(x) on one value.
@inline(__always)
func activationGradient(_ x: Float, _ g: Float, _ a: TrainActivation) -> Float {
    switch a {
    case .none: return g
    case .relu: return x > 0 ? g : 0
    case .hardswish: return x < -3 ? 0 : (x > 3 ? g : g * (x * (1 / 3 as Float) + 0.5))
    }
}

/// BatchNorm2d over the channels of a channels-last batch, fused with the following activation.
final class BatchNormAct {
    let channels: Int
    let eps: Double
    let momentum: Double
    let activation: TrainActivation
    /// gamma and beta (`<prefix>.weight`, `<prefix>.bias`).
    let weight: Parameter, bias: Parameter
    /// Running statistics (`<prefix>.running_mean`, `<prefix>.running_var`).
    let runningMean: FloatStorage, runningVar: FloatStorage
    /// Per-channel affine of the last forward (y = z * scale + shift), its batch mean and 1 / std.
    private let scale, shift, mean, invStd: FloatStorage
    /// Per-thread partial sums (threads x 2 x channels doubles).
    private var partials: UnsafeMutablePointer<Double>
    private let partialThreads: Int

    /// A BatchNorm for `prefix` (gamma 1, beta 0, running mean 0, running var 1, as PyTorch initialises it).
    init(_ prefix: String, channels: Int, eps: Double, momentum: Double = 0.01, activation: TrainActivation,
         threads: Int) {
        self.channels = channels
        self.eps = eps
        self.momentum = momentum
        self.activation = activation
        weight = Parameter(prefix + ".weight", [channels])
        bias = Parameter(prefix + ".bias", [channels])
        weight.value.load([Float](repeating: 1, count: channels))
        runningMean = FloatStorage(channels)
        runningVar = FloatStorage(copying: [Float](repeating: 1, count: channels))
        scale = FloatStorage(channels); shift = FloatStorage(channels)
        mean = FloatStorage(channels); invStd = FloatStorage(channels)
        partialThreads = max(1, threads)
        partials = .allocate(capacity: partialThreads * 2 * channels)
    }

    deinit { partials.deallocate() }

    /// Sums per channel over rows `range` of two [rows][C] maps into d0 (Σ f) and d1 (Σ g), in float blocks of 256
    /// rows added into doubles. `pass` 0: f = z - ref, g = (z - ref)^2. `pass` 1: f = gradient before the
    /// activation (from dOut and z), g = f * (z - mean).
    private func channelSums(pass: Int, z: UnsafePointer<Float>, dOut: UnsafePointer<Float>?,
                             rows: Range<Int>, d0: UnsafeMutablePointer<Double>,
                             d1: UnsafeMutablePointer<Double>) {
        let c = channels, c8 = c / 8 * 8
        let f0 = UnsafeMutablePointer<Float>.allocate(capacity: 2 * c)
        defer { f0.deallocate() }
        let f1 = f0 + c
        for i in 0..<c { d0[i] = 0; d1[i] = 0 }
        let sc = scale.pointer, sh = shift.pointer, mu = mean.pointer
        var r0 = rows.lowerBound
        while r0 < rows.upperBound {
            let r1 = min(rows.upperBound, r0 + 256)
            f0.update(repeating: 0, count: 2 * c)
            for r in r0..<r1 {
                let zr = z + r * c
                if pass == 0 {
                    var j = 0
                    while j < c8 {
                        let d = ld8(zr + j) - ld8(z + j)
                        st8(f0 + j, ld8(f0 + j) + d); st8(f1 + j, fma8(ld8(f1 + j), d, d))
                        j += 8
                    }
                    while j < c { let d = zr[j] - z[j]; f0[j] += d; f1[j] += d * d; j += 1 }
                } else {
                    let gr = dOut! + r * c
                    var j = 0
                    while j < c8 {
                        let zz = ld8(zr + j)
                        let y = fma8(ld8(sh + j), zz, ld8(sc + j))
                        let g = activationGradient(y, ld8(gr + j), activation)
                        st8(f0 + j, ld8(f0 + j) + g); st8(f1 + j, fma8(ld8(f1 + j), g, zz - ld8(mu + j)))
                        j += 8
                    }
                    while j < c {
                        let y = zr[j] * sc[j] + sh[j]
                        let g = activationGradient(y, gr[j], activation)
                        f0[j] += g; f1[j] += g * (zr[j] - mu[j])
                        j += 1
                    }
                }
            }
            for i in 0..<c { d0[i] += Double(f0[i]); d1[i] += Double(f1[i]) }
            r0 = r1
        }
    }

    /// Runs `channelSums` split over threads and adds the parts into part 0's slots.
    private func reduce(pass: Int, z: UnsafePointer<Float>, dOut: UnsafePointer<Float>?, pixels: Int,
                        parallel: Parallel)
        -> (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>) {
        let c = channels, p = partials
        let parts = max(1, min(partialThreads, parallel.threads, pixels / 256))
        Parallel(threads: parts).split(pixels) { part, range in
            channelSums(pass: pass, z: z, dOut: dOut, rows: range, d0: p + part * 2 * c,
                        d1: p + part * 2 * c + c)
        }
        for part in 1..<max(parts, 1) {
            for i in 0..<c {
                p[i] += p[part * 2 * c + i]
                p[c + i] += p[part * 2 * c + c + i]
            }
        }
        return (p, p + c)
    }

    /// y = act(BN(z)) over `pixels` rows. Training: batch statistics, running statistics updated.
    func forward(z: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, pixels: Int, training: Bool,
                 parallel: Parallel) {
        let c = channels
        let g = weight.value.pointer, b = bias.value.pointer
        if training {
            precondition(pixels > 1, "BatchNorm in training mode needs more than one value per channel")
            let (s0, s1) = reduce(pass: 0, z: z, dOut: nil, pixels: pixels, parallel: parallel)
            let n = Double(pixels), m = Double(momentum)
            for i in 0..<c {
                let d = s0[i] / n
                let mu = Double(z[i]) + d
                let v = max(0, s1[i] / n - d * d)
                let inv = 1 / (v + eps).squareRoot()
                mean.pointer[i] = Float(mu)
                invStd.pointer[i] = Float(inv)
                scale.pointer[i] = Float(Double(g[i]) * inv)
                shift.pointer[i] = Float(Double(b[i]) - mu * Double(g[i]) * inv)
                runningMean.pointer[i] = Float((1 - m) * Double(runningMean.pointer[i]) + m * mu)
                runningVar.pointer[i] = Float((1 - m) * Double(runningVar.pointer[i]) + m * v * n / (n - 1))
            }
        } else {
            for i in 0..<c {
                let inv = 1 / (Double(runningVar.pointer[i]) + eps).squareRoot()
                mean.pointer[i] = runningMean.pointer[i]
                invStd.pointer[i] = Float(inv)
                scale.pointer[i] = Float(Double(g[i]) * inv)
                shift.pointer[i] = Float(Double(b[i]) - Double(runningMean.pointer[i]) * Double(g[i]) * inv)
            }
        }
        let sc = scale.pointer, sh = shift.pointer, act = activation, c8 = c / 8 * 8
        parallel.split(pixels, minimum: 64) { _, rows in
            for r in rows {
                let zr = z + r * c, o = out + r * c
                var j = 0
                while j < c8 { st8(o + j, activate(fma8(ld8(sh + j), ld8(zr + j), ld8(sc + j)), act)); j += 8 }
                while j < c { o[j] = activate(zr[j] * sc[j] + sh[j], act); j += 1 }
            }
        }
    }

    /// dZ from dOut (gradient after the activation) and the forward input z; writes gamma/beta gradients.
    /// Two passes (sums, then dZ), each recomputing the activation gradient from z instead of storing it.
    /// dZ may be dOut itself. Must follow `forward` on the same z.
    func backward(z: UnsafePointer<Float>, dOut: UnsafePointer<Float>, dZ: UnsafeMutablePointer<Float>,
                  pixels: Int, training: Bool, parallel: Parallel) {
        let c = channels
        let (sg, sgx) = reduce(pass: 1, z: z, dOut: dOut, pixels: pixels, parallel: parallel)
        let k1 = FloatStorage(c), k2 = FloatStorage(c), k0 = FloatStorage(c)
        let n = Double(pixels)
        for i in 0..<c {
            let inv = Double(invStd.pointer[i]), sc = Double(scale.pointer[i]), mu = Double(mean.pointer[i])
            weight.grad.pointer[i] = Float(sgx[i] * inv)
            bias.grad.pointer[i] = Float(sg[i])
            if training {
                // dz = scale (g - mean(g) - xhat mean(g xhat)), xhat = (z - mu) inv.
                let a2 = -sc * inv * inv * sgx[i] / n
                k1.pointer[i] = Float(sc)
                k2.pointer[i] = Float(a2)
                k0.pointer[i] = Float(-sc * sg[i] / n - a2 * mu)
            } else {
                k1.pointer[i] = Float(sc); k2.pointer[i] = 0; k0.pointer[i] = 0
            }
        }
        let p1 = k1.pointer, p2 = k2.pointer, p0 = k0.pointer, c8 = c / 8 * 8
        let sc = scale.pointer, sh = shift.pointer, act = activation
        parallel.split(pixels, minimum: 64) { _, rows in
            for r in rows {
                let zr = z + r * c, gr = dOut + r * c, o = dZ + r * c
                var j = 0
                while j < c8 {
                    let zz = ld8(zr + j)
                    let g = activationGradient(fma8(ld8(sh + j), zz, ld8(sc + j)), ld8(gr + j), act)
                    st8(o + j, fma8(fma8(ld8(p0 + j), ld8(p2 + j), zz), ld8(p1 + j), g))
                    j += 8
                }
                while j < c {
                    let g = activationGradient(zr[j] * sc[j] + sh[j], gr[j], act)
                    o[j] = p0[j] + p2[j] * zr[j] + p1[j] * g
                    j += 1
                }
            }
        }
    }
}

/// A 1x1 convolution without bias as a matrix product over pixels: z[P][cout] = x[P][cin] W^T.
final class PointwiseConv {
    let cin: Int, cout: Int
    /// `<prefix>.weight`, PyTorch shape [cout, cin, 1, 1].
    let weight: Parameter
    /// W^T [cin][cout], refreshed by every forward.
    private let transposed: FloatStorage

    /// A 1x1 conv named `name`.
    init(_ name: String, cin: Int, cout: Int) {
        self.cin = cin
        self.cout = cout
        weight = Parameter(name, [cout, cin, 1, 1])
        transposed = FloatStorage(cin * cout)
    }

    /// z = x W^T over `pixels` rows.
    func forward(x: UnsafePointer<Float>, z: UnsafeMutablePointer<Float>, pixels: Int, gemm: GemmRunner) {
        let w = weight.value.pointer, t = transposed.pointer
        for o in 0..<cout { for i in 0..<cin { t[i * cout + o] = w[o * cin + i] } }
        gemm.rowsSplit(GemmOperands(m: pixels, n: cout, k: cin, a: x, am: cin, ak: 1, b: t, ldb: cout, c: z,
                                    ldc: cout), accumulate: false)
    }

    /// Weight gradient dW = dz^T x, and (when dX is given) dX (+)= dz W.
    func backward(x: UnsafePointer<Float>, dZ: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>?,
                  accumulate: Bool, pixels: Int, gemm: GemmRunner) {
        gemm.depthSplit(GemmOperands(m: cout, n: cin, k: pixels, a: dZ, am: 1, ak: cout, b: x, ldb: cin,
                                     c: weight.grad.pointer, ldc: cin), accumulate: false)
        if let dX {
            gemm.rowsSplit(GemmOperands(m: pixels, n: cin, k: cout, a: dZ, am: cout, ak: 1,
                                        b: weight.value.pointer, ldb: cin, c: dX, ldc: cin), accumulate: accumulate)
        }
    }
}

/// Geometry of a channels-last batch.
struct MapGeometry: Equatable {
    var batch: Int, rows: Int, cols: Int, channels: Int
    /// batch x rows x cols.
    var pixels: Int { batch * rows * cols }
    /// Number of floats.
    var count: Int { pixels * channels }
}

/// Kernel taps whose input index o * s - pad + t * d falls inside 0..<n.
@inline(__always)
func tapRange(_ o: Int, n: Int, kernel: Int, stride: Int, dilation: Int, pad: Int) -> Range<Int> {
    let lowNum = pad - o * stride
    let lo = lowNum <= 0 ? 0 : (lowNum + dilation - 1) / dilation
    let hiNum = n - 1 - o * stride + pad
    let hi = hiNum < 0 ? 0 : min(kernel, hiNum / dilation + 1)
    return lo..<max(lo, hi)
}

/// Depthwise k x k convolution (groups = channels, no bias), zero padding (k - 1) / 2 * dilation; channels must be
/// a multiple of 8 (EfficientAT's make_divisible guarantees it).
final class DepthwiseConv {
    let channels: Int, kernel: Int, stride: Int, dilation: Int
    /// `<prefix>.weight`, PyTorch shape [C, 1, k, k].
    let weight: Parameter
    /// Tap-major copy [k * k][C] refreshed by every forward.
    private let packed: FloatStorage
    /// Per-thread weight-gradient partials [threads][k * k][C].
    private let partials: FloatStorage
    private let threads: Int

    /// A depthwise conv named `name`.
    init(_ name: String, channels: Int, kernel: Int, stride: Int, dilation: Int, threads: Int) {
        precondition(channels % 8 == 0, "depthwise channels must be a multiple of 8")
        self.channels = channels; self.kernel = kernel; self.stride = stride; self.dilation = dilation
        self.threads = max(1, threads)
        weight = Parameter(name, [channels, 1, kernel, kernel])
        packed = FloatStorage(kernel * kernel * channels)
        partials = FloatStorage(self.threads * kernel * kernel * channels)
    }

    /// Output geometry for an input geometry.
    func output(_ g: MapGeometry) -> MapGeometry {
        MapGeometry(batch: g.batch, rows: f32_conv_out_size(g.rows, kernel: kernel, stride: stride, dilation: dilation),
                    cols: f32_conv_out_size(g.cols, kernel: kernel, stride: stride, dilation: dilation), channels: channels)
    }

    /// z = depthwise(x).
    func forward(x: UnsafePointer<Float>, input g: MapGeometry, z: UnsafeMutablePointer<Float>, parallel: Parallel) {
        let c = channels, k = kernel, s = stride, d = dilation, pad = (k - 1) / 2 * d
        let w = weight.value.pointer, pk = packed.pointer
        for ch in 0..<c { for t in 0..<(k * k) { pk[t * c + ch] = w[ch * k * k + t] } }
        let o = output(g)
        parallel.split(g.batch * o.rows) { _, items in
            for item in items {
                let b = item / o.rows, oy = item % o.rows
                let ty = tapRange(oy, n: g.rows, kernel: k, stride: s, dilation: d, pad: pad)
                let xb = x + b * g.rows * g.cols * c
                for ox in 0..<o.cols {
                    let tx = tapRange(ox, n: g.cols, kernel: k, stride: s, dilation: d, pad: pad)
                    let out = z + ((b * o.rows + oy) * o.cols + ox) * c
                    var j = 0
                    while j < c {
                        var acc = SIMD8<Float>()
                        for a in ty {
                            let row = xb + (oy * s - pad + a * d) * g.cols * c + j
                            let wr = pk + a * k * c + j
                            for t in tx { acc = fma8(acc, ld8(row + (ox * s - pad + t * d) * c), ld8(wr + t * c)) }
                        }
                        st8(out + j, acc)
                        j += 8
                    }
                }
            }
        }
    }

    /// Output index reached by tap `a` from input index `i`, or -1 (stride and padding as the forward).
    @inline(__always)
    private func reached(_ i: Int, tap a: Int, outputs n: Int) -> Int {
        let num = i + (kernel - 1) / 2 * dilation - a * dilation
        if num < 0 || num % stride != 0 { return -1 }
        let o = num / stride
        return o < n ? o : -1
    }

    /// Weight gradient and dX (overwritten) from dz.
    /// dX by gathering, for every input pixel, the output pixels whose taps reach it (one store per value);
    /// dW per output row and tap as register sums over the row, added once per row.
    func backward(x: UnsafePointer<Float>, input g: MapGeometry, dZ: UnsafePointer<Float>,
                  dX: UnsafeMutablePointer<Float>, parallel: Parallel) {
        backwardInput(input: g, dZ: dZ, dX: dX, parallel: parallel)
        backwardWeight(x: x, input: g, dZ: dZ, parallel: parallel)
    }

    /// dX alone (overwritten).
    func backwardInput(input g: MapGeometry, dZ: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>,
                       parallel: Parallel) {
        let c = channels, k = kernel
        let o = output(g), pk = packed.pointer
        // Column tables: for input column ix and tap t, the output column reached (or -1).
        let colTable = UnsafeMutablePointer<Int>.allocate(capacity: g.cols * k)
        defer { colTable.deallocate() }
        for ix in 0..<g.cols { for t in 0..<k { colTable[ix * k + t] = reached(ix, tap: t, outputs: o.cols) } }
        let table = UnsafePointer(colTable)
        // dX: rows of input pixels split across threads; per row the valid (tap row, output row) pairs, per
        // column the valid (tap column, output column) pairs, so the channel loop has no branches.
        parallel.split(g.batch * g.rows) { _, items in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: 4 * k) { lists in
                let rowTaps = lists.baseAddress!, rowOut = rowTaps + k, colTaps = rowOut + k, colOut = colTaps + k
                for item in items {
                    let b = item / g.rows, iy = item % g.rows
                    let dzb = dZ + b * o.rows * o.cols * c
                    var nr = 0
                    for a in 0..<k {
                        let oy = reached(iy, tap: a, outputs: o.rows)
                        if oy >= 0 { rowTaps[nr] = a; rowOut[nr] = oy; nr += 1 }
                    }
                    for ix in 0..<g.cols {
                        var nc = 0
                        for t in 0..<k where table[ix * k + t] >= 0 {
                            colTaps[nc] = t; colOut[nc] = table[ix * k + t]; nc += 1
                        }
                        let out = dX + ((b * g.rows + iy) * g.cols + ix) * c
                        var j = 0
                        while j < c {
                            var acc = SIMD8<Float>()
                            for r in 0..<nr {
                                let row = dzb + rowOut[r] * o.cols * c + j, wr = pk + rowTaps[r] * k * c + j
                                for q in 0..<nc { acc = fma8(acc, ld8(row + colOut[q] * c), ld8(wr + colTaps[q] * c)) }
                            }
                            st8(out + j, acc)
                            j += 8
                        }
                    }
                }
            }
        }
    }

    /// The weight gradient alone: per-thread partials over samples, one output row at a time (rows stay in L2).
    func backwardWeight(x: UnsafePointer<Float>, input g: MapGeometry, dZ: UnsafePointer<Float>, parallel: Parallel) {
        let c = channels, k = kernel, s = stride, d = dilation, pad = (k - 1) / 2 * d
        let o = output(g), taps = k * k
        let parts = min(threads, parallel.threads, g.batch)
        partials.zero()
        let pp = partials.pointer
        Parallel(threads: parts).split(g.batch) { part, samples in
            let dw = pp + part * taps * c
            for b in samples {
                let xb = x + b * g.rows * g.cols * c, dzb = dZ + b * o.rows * o.cols * c
                for oy in 0..<o.rows {
                    for a in tapRange(oy, n: g.rows, kernel: k, stride: s, dilation: d, pad: pad) {
                        let iy = oy * s - pad + a * d
                        for t in 0..<k {
                            let colsLo = max(0, (pad - t * d + s - 1) / s)
                            let colsHi = min(o.cols, (g.cols - 1 + pad - t * d) / s + 1)
                            if colsLo >= colsHi { continue }
                            var j = 0
                            while j < c {
                                var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
                                var gp = dzb + (oy * o.cols + colsLo) * c + j
                                var xp = xb + (iy * g.cols + colsLo * s - pad + t * d) * c + j
                                let xstep = s * c
                                var ox = colsLo
                                while ox + 2 <= colsHi {
                                    acc0 = fma8(acc0, ld8(gp), ld8(xp))
                                    acc1 = fma8(acc1, ld8(gp + c), ld8(xp + xstep))
                                    gp += 2 * c; xp += 2 * xstep
                                    ox += 2
                                }
                                if ox < colsHi { acc0 = fma8(acc0, ld8(gp), ld8(xp)) }
                                let dst = dw + (a * k + t) * c + j
                                st8(dst, ld8(dst) + acc0 + acc1)
                                j += 8
                            }
                        }
                    }
                }
            }
        }
        let gw = weight.grad.pointer
        for ch in 0..<c {
            for t in 0..<taps {
                var acc: Float = 0
                for part in 0..<max(1, parts) { acc += pp[part * taps * c + t * c + ch] }
                gw[ch * taps + t] = acc
            }
        }
    }
}

/// The stem: 3x3 stride-2 conv, padding 1, from the single mel plane [batch][mels][frames] to C channels
/// (no input gradient: the input is data).
final class StemConv {
    let channels: Int
    /// `features.0.0.weight`, shape [C, 1, 3, 3].
    let weight: Parameter
    private let packed: FloatStorage
    private let partials: FloatStorage
    private let threads: Int

    /// A stem with `channels` outputs (a multiple of 8).
    init(channels: Int, threads: Int) {
        precondition(channels % 8 == 0, "stem channels must be a multiple of 8")
        self.channels = channels
        self.threads = max(1, threads)
        weight = Parameter("features.0.0.weight", [channels, 1, 3, 3])
        packed = FloatStorage(9 * channels)
        partials = FloatStorage(self.threads * 9 * channels)
    }

    /// Output geometry for a batch of mels.
    func output(batch: Int, mels: Int, frames: Int) -> MapGeometry {
        MapGeometry(batch: batch, rows: (mels - 1) / 2 + 1, cols: (frames - 1) / 2 + 1, channels: channels)
    }

    /// z = conv(mel).
    func forward(mel: UnsafePointer<Float>, batch: Int, mels: Int, frames: Int, z: UnsafeMutablePointer<Float>,
                 parallel: Parallel) {
        let c = channels, w = weight.value.pointer, pk = packed.pointer
        for ch in 0..<c { for t in 0..<9 { pk[t * c + ch] = w[ch * 9 + t] } }
        let o = output(batch: batch, mels: mels, frames: frames)
        parallel.split(batch * o.rows) { _, items in
            for item in items {
                let b = item / o.rows, oy = item % o.rows
                let ty = tapRange(oy, n: mels, kernel: 3, stride: 2, dilation: 1, pad: 1)
                let mb = mel + b * mels * frames
                for ox in 0..<o.cols {
                    let tx = tapRange(ox, n: frames, kernel: 3, stride: 2, dilation: 1, pad: 1)
                    let out = z + ((b * o.rows + oy) * o.cols + ox) * c
                    var j = 0
                    while j < c {
                        var acc = SIMD8<Float>()
                        for a in ty {
                            let row = mb + (oy * 2 - 1 + a) * frames
                            for t in tx { acc = fma8(acc, SIMD8(repeating: row[ox * 2 - 1 + t]), ld8(pk + (a * 3 + t) * c + j)) }
                        }
                        st8(out + j, acc)
                        j += 8
                    }
                }
            }
        }
    }

    /// Weight gradient from dz.
    func backward(mel: UnsafePointer<Float>, batch: Int, mels: Int, frames: Int, dZ: UnsafePointer<Float>,
                  parallel: Parallel) {
        let c = channels, o = output(batch: batch, mels: mels, frames: frames)
        let parts = min(threads, parallel.threads, batch * o.rows)
        partials.zero()
        let pp = partials.pointer
        Parallel(threads: parts).split(batch * o.rows) { part, items in
            let dw = pp + part * 9 * c
            for item in items {
                let b = item / o.rows, oy = item % o.rows
                let ty = tapRange(oy, n: mels, kernel: 3, stride: 2, dilation: 1, pad: 1)
                let mb = mel + b * mels * frames
                for ox in 0..<o.cols {
                    let tx = tapRange(ox, n: frames, kernel: 3, stride: 2, dilation: 1, pad: 1)
                    let gz = dZ + ((b * o.rows + oy) * o.cols + ox) * c
                    for a in ty {
                        let row = mb + (oy * 2 - 1 + a) * frames
                        for t in tx {
                            let xv = SIMD8(repeating: row[ox * 2 - 1 + t]), dwr = dw + (a * 3 + t) * c
                            var j = 0
                            while j < c { st8(dwr + j, fma8(ld8(dwr + j), xv, ld8(gz + j))); j += 8 }
                        }
                    }
                }
            }
        }
        let gw = weight.grad.pointer
        for ch in 0..<c {
            for t in 0..<9 {
                var acc: Float = 0
                for part in 0..<max(1, parts) { acc += pp[part * 9 * c + t * c + ch] }
                gw[ch * 9 + t] = acc
            }
        }
    }
}

/// Dot product of two float rows.
@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>()
    var i = 0
    while i + 8 <= n { acc = fma8(acc, ld8(a + i), ld8(b + i)); i += 8 }
    var s = acc.sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// A dense layer y = x W^T + b on [batch][nin] rows (PyTorch Linear).
final class LinearLayer {
    let nin: Int, nout: Int
    let weight: Parameter, bias: Parameter

    /// A linear layer named `prefix` (`.weight` [nout, nin], `.bias` [nout]).
    init(_ prefix: String, nin: Int, nout: Int) {
        self.nin = nin
        self.nout = nout
        weight = Parameter(prefix + ".weight", [nout, nin])
        bias = Parameter(prefix + ".bias", [nout])
    }

    /// y = x W^T + b.
    func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Int) {
        let w = weight.value.pointer, b = bias.value.pointer
        for r in 0..<rows {
            for o in 0..<nout { y[r * nout + o] = b[o] + dot(w + o * nin, x + r * nin, nin) }
        }
    }

    /// Writes dW, db; dX = dY W when dX is given.
    func backward(x: UnsafePointer<Float>, dY: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>?, rows: Int) {
        let w = weight.value.pointer, gw = weight.grad.pointer, gb = bias.grad.pointer
        weight.grad.zero(); bias.grad.zero()
        for r in 0..<rows {
            let xr = x + r * nin
            for o in 0..<nout {
                let g = dY[r * nout + o]
                gb[o] += g
                if g == 0 { continue }
                let row = gw + o * nin
                var i = 0
                let gv = SIMD8(repeating: g)
                while i + 8 <= nin { st8(row + i, fma8(ld8(row + i), gv, ld8(xr + i))); i += 8 }
                while i < nin { row[i] += g * xr[i]; i += 1 }
            }
        }
        guard let dX else { return }
        dX.update(repeating: 0, count: rows * nin)
        for r in 0..<rows {
            let dr = dX + r * nin
            for o in 0..<nout {
                let g = dY[r * nout + o]
                if g == 0 { continue }
                let row = w + o * nin, gv = SIMD8(repeating: g)
                var i = 0
                while i + 8 <= nin { st8(dr + i, fma8(ld8(dr + i), gv, ld8(row + i))); i += 8 }
                while i < nin { dr[i] += g * row[i]; i += 1 }
            }
        }
    }
}

/// Channel squeeze-excitation: s = sigmoid(fc2(relu(fc1(mean over pixels)))), out = x * s per sample and channel.
/// ref: EfficientAT block_types.py SqueezeExcitation (dims 'c', sigmoid scale activation).
final class SqueezeExcite {
    let channels: Int, squeeze: Int
    let fc1: LinearLayer, fc2: LinearLayer
    /// Per-sample saved values of the last forward: mean [B][C], hidden after ReLU [B][S], scale [B][C].
    private var means = FloatStorage(0), hidden = FloatStorage(0), scales = FloatStorage(0)
    private var dMeans = FloatStorage(0), dHidden = FloatStorage(0), dScale = FloatStorage(0)

    /// An SE named `prefix` (`prefix.fc1`, `prefix.fc2`).
    init(_ prefix: String, channels: Int, squeeze: Int) {
        self.channels = channels
        self.squeeze = squeeze
        fc1 = LinearLayer(prefix + ".fc1", nin: channels, nout: squeeze)
        fc2 = LinearLayer(prefix + ".fc2", nin: squeeze, nout: channels)
    }

    /// Sizes the saved-value buffers for `batch` samples.
    private func ensure(_ batch: Int) {
        guard means.count != batch * channels else { return }
        means = FloatStorage(batch * channels); scales = FloatStorage(batch * channels)
        dMeans = FloatStorage(batch * channels); dScale = FloatStorage(batch * channels)
        hidden = FloatStorage(batch * squeeze); dHidden = FloatStorage(batch * squeeze)
    }

    /// out = x * s(x).
    func forward(x: UnsafePointer<Float>, geometry g: MapGeometry, out: UnsafeMutablePointer<Float>,
                 parallel: Parallel) {
        ensure(g.batch)
        let c = channels, hw = g.rows * g.cols
        let m = means.pointer
        parallel.split(g.batch) { _, samples in
            for b in samples { channelMean(x + b * hw * c, pixels: hw, channels: c, into: m + b * c) }
        }
        fc1.forward(x: m, y: hidden.pointer, rows: g.batch)
        for i in 0..<(g.batch * squeeze) { hidden.pointer[i] = max(0, hidden.pointer[i]) }
        fc2.forward(x: hidden.pointer, y: scales.pointer, rows: g.batch)
        for i in 0..<(g.batch * c) { scales.pointer[i] = 1 / (1 + Foundation.exp(-scales.pointer[i])) }
        let s = scales.pointer
        parallel.split(g.batch * hw, minimum: 64) { _, rows in
            for r in rows {
                let sb = s + (r / hw) * c, xr = x + r * c, o = out + r * c
                var j = 0
                while j < c { st8(o + j, ld8(xr + j) * ld8(sb + j)); j += 8 }
            }
        }
    }

    /// dX (may be dOut itself) from dOut; writes the fc gradients.
    func backward(x: UnsafePointer<Float>, geometry g: MapGeometry, dOut: UnsafePointer<Float>,
                  dX: UnsafeMutablePointer<Float>, parallel: Parallel) {
        let c = channels, hw = g.rows * g.cols, s = scales.pointer, ds = dScale.pointer
        parallel.split(g.batch) { _, samples in
            for b in samples {
                var acc = [SIMD8<Float>](repeating: SIMD8(), count: c / 8)
                for p in 0..<hw {
                    let r = (b * hw + p) * c
                    for j in 0..<(c / 8) { acc[j] = fma8(acc[j], ld8(dOut + r + 8 * j), ld8(x + r + 8 * j)) }
                }
                for j in 0..<(c / 8) {
                    for l in 0..<8 {
                        let sv = s[b * c + 8 * j + l]
                        ds[b * c + 8 * j + l] = acc[j][l] * sv * (1 - sv)
                    }
                }
            }
        }
        fc2.backward(x: hidden.pointer, dY: ds, dX: dHidden.pointer, rows: g.batch)
        for i in 0..<(g.batch * squeeze) where hidden.pointer[i] <= 0 { dHidden.pointer[i] = 0 }
        fc1.backward(x: means.pointer, dY: dHidden.pointer, dX: dMeans.pointer, rows: g.batch)
        let dm = dMeans.pointer, inv = 1 / Float(hw)
        parallel.split(g.batch * hw, minimum: 64) { _, rows in
            for r in rows {
                let b = r / hw, o = dX + r * c, gr = dOut + r * c
                var j = 0
                while j < c {
                    st8(o + j, fma8(ld8(dm + b * c + j) * inv, ld8(gr + j), ld8(s + b * c + j)))
                    j += 8
                }
            }
        }
    }
}

/// Mean over `pixels` rows of a [pixels][channels] map into `into` (channels a multiple of 8 on the fast path).
func channelMean(_ x: UnsafePointer<Float>, pixels: Int, channels c: Int, into: UnsafeMutablePointer<Float>) {
    var sums = [Double](repeating: 0, count: c)
    var block = [Float](repeating: 0, count: c)
    var p0 = 0
    while p0 < pixels {
        let p1 = min(pixels, p0 + 256)
        for j in 0..<c { block[j] = 0 }
        block.withUnsafeMutableBufferPointer { bl in
            let bp = bl.baseAddress!
            for p in p0..<p1 {
                let r = x + p * c
                var j = 0
                while j + 8 <= c { st8(bp + j, ld8(bp + j) + ld8(r + j)); j += 8 }
                while j < c { bp[j] += r[j]; j += 1 }
            }
        }
        for j in 0..<c { sums[j] += Double(block[j]) }
        p0 = p1
    }
    for j in 0..<c { into[j] = Float(sums[j] / Double(pixels)) }
}
