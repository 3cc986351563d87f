// Matrix products for the trainer's 1x1 convolutions and linear layers, forward and backward:
// C[m][n] (+)= sum_k A(m, k) * B[k][n], with A read through strides so that A or A^T come without a copy.
// Plain reference plus a register-tiled SIMD8 version (4 x 32 tiles, k blocked so panels stay in L2).
// Numeric invariant: both sum over k in increasing order within a k block; they differ only by float rounding of
// fused multiply-adds (<= a few ulp per term).

/// Loads eight consecutive floats (no alignment requirement).
@inline(__always)
func ld8(_ p: UnsafePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }

/// Loads eight consecutive floats (no alignment requirement).
@inline(__always)
func ld8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }

/// Stores eight consecutive floats (no alignment requirement).
@inline(__always)
func st8(_ p: UnsafeMutablePointer<Float>, _ v: SIMD8<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// acc + a * b as one fused multiply-add (the trainer is built with -target-cpu native, which has FMA).
@inline(__always)
func fma8(_ acc: SIMD8<Float>, _ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> { acc.addingProduct(a, b) }

/// Operands of one matrix product: A(m, k) = a[m * am + k * ak]; B and C row-major with leading dimensions.
struct GemmOperands {
    var m: Int, n: Int, k: Int
    var a: UnsafePointer<Float>, am: Int, ak: Int
    var b: UnsafePointer<Float>, ldb: Int
    var c: UnsafeMutablePointer<Float>, ldc: Int
}

/// Scalar reference: C = (accumulate ? C : 0) + A B, summing k in increasing order.
func gemmReference(_ g: GemmOperands, accumulate: Bool) {
    for i in 0..<g.m {
        for j in 0..<g.n {
            var acc: Float = accumulate ? g.c[i * g.ldc + j] : 0
            for p in 0..<g.k { acc += g.a[i * g.am + p * g.ak] * g.b[p * g.ldb + j] }
            g.c[i * g.ldc + j] = acc
        }
    }
}

/// Depth of one k block: A and B panels of this many rows stay in L2 for every tile.
let gemmKBlock = 256

/// Register-tiled SIMD product over rows `rows` of C (callers split rows across threads).
func gemmSIMD(_ g: GemmOperands, rows: Range<Int>, accumulate: Bool) {
    var k0 = 0
    while k0 < g.k || (k0 == 0 && g.k == 0) {
        let kc = min(gemmKBlock, g.k - k0)
        let load = accumulate || k0 > 0
        let a = g.a + k0 * g.ak, b = g.b + k0 * g.ldb
        var i = rows.lowerBound
        while i + 4 <= rows.upperBound {
            var j = 0
            while j + 32 <= g.n {
                tile4x32(kc, a + i * g.am, g.am, g.ak, b + j, g.ldb, g.c + i * g.ldc + j, g.ldc, load)
                j += 32
            }
            while j + 8 <= g.n {
                tile4x8(kc, a + i * g.am, g.am, g.ak, b + j, g.ldb, g.c + i * g.ldc + j, g.ldc, load)
                j += 8
            }
            for r in i..<(i + 4) where j < g.n {
                tileScalar(kc, a + r * g.am, g.ak, b, g.ldb, g.c + r * g.ldc, j..<g.n, load)
            }
            i += 4
        }
        while i < rows.upperBound {
            var j = 0
            while j + 8 <= g.n {
                tile1x8(kc, a + i * g.am, g.ak, b + j, g.ldb, g.c + i * g.ldc + j, load)
                j += 8
            }
            if j < g.n { tileScalar(kc, a + i * g.am, g.ak, b, g.ldb, g.c + i * g.ldc, j..<g.n, load) }
            i += 1
        }
        if g.k == 0 { break }
        k0 += kc
    }
}

/// 4 rows x 32 columns of C over kc steps of k (16 accumulators).
@inline(__always)
func tile4x32(_ kc: Int, _ a: UnsafePointer<Float>, _ am: Int, _ ak: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
              _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ load: Bool) {
    let z = SIMD8<Float>()
    var c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z
    var c20 = z, c21 = z, c22 = z, c23 = z, c30 = z, c31 = z, c32 = z, c33 = z
    let r1 = c + ldc, r2 = c + 2 * ldc, r3 = c + 3 * ldc
    if load {
        c00 = ld8(c); c01 = ld8(c + 8); c02 = ld8(c + 16); c03 = ld8(c + 24)
        c10 = ld8(r1); c11 = ld8(r1 + 8); c12 = ld8(r1 + 16); c13 = ld8(r1 + 24)
        c20 = ld8(r2); c21 = ld8(r2 + 8); c22 = ld8(r2 + 16); c23 = ld8(r2 + 24)
        c30 = ld8(r3); c31 = ld8(r3 + 8); c32 = ld8(r3 + 16); c33 = ld8(r3 + 24)
    }
    var ap = a, bp = b
    for _ in 0..<kc {
        let b0 = ld8(bp), b1 = ld8(bp + 8), b2 = ld8(bp + 16), b3 = ld8(bp + 24)
        let a0 = SIMD8(repeating: ap[0]), a1 = SIMD8(repeating: ap[am])
        let a2 = SIMD8(repeating: ap[2 * am]), a3 = SIMD8(repeating: ap[3 * am])
        c00 = fma8(c00, a0, b0); c01 = fma8(c01, a0, b1); c02 = fma8(c02, a0, b2); c03 = fma8(c03, a0, b3)
        c10 = fma8(c10, a1, b0); c11 = fma8(c11, a1, b1); c12 = fma8(c12, a1, b2); c13 = fma8(c13, a1, b3)
        c20 = fma8(c20, a2, b0); c21 = fma8(c21, a2, b1); c22 = fma8(c22, a2, b2); c23 = fma8(c23, a2, b3)
        c30 = fma8(c30, a3, b0); c31 = fma8(c31, a3, b1); c32 = fma8(c32, a3, b2); c33 = fma8(c33, a3, b3)
        ap += ak; bp += ldb
    }
    st8(c, c00); st8(c + 8, c01); st8(c + 16, c02); st8(c + 24, c03)
    st8(r1, c10); st8(r1 + 8, c11); st8(r1 + 16, c12); st8(r1 + 24, c13)
    st8(r2, c20); st8(r2 + 8, c21); st8(r2 + 16, c22); st8(r2 + 24, c23)
    st8(r3, c30); st8(r3 + 8, c31); st8(r3 + 16, c32); st8(r3 + 24, c33)
}

/// 4 rows x 8 columns of C over kc steps of k.
@inline(__always)
func tile4x8(_ kc: Int, _ a: UnsafePointer<Float>, _ am: Int, _ ak: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
             _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ load: Bool) {
    let z = SIMD8<Float>()
    var c0 = z, c1 = z, c2 = z, c3 = z
    if load { c0 = ld8(c); c1 = ld8(c + ldc); c2 = ld8(c + 2 * ldc); c3 = ld8(c + 3 * ldc) }
    var ap = a, bp = b
    for _ in 0..<kc {
        let b0 = ld8(bp)
        c0 = fma8(c0, SIMD8(repeating: ap[0]), b0)
        c1 = fma8(c1, SIMD8(repeating: ap[am]), b0)
        c2 = fma8(c2, SIMD8(repeating: ap[2 * am]), b0)
        c3 = fma8(c3, SIMD8(repeating: ap[3 * am]), b0)
        ap += ak; bp += ldb
    }
    st8(c, c0); st8(c + ldc, c1); st8(c + 2 * ldc, c2); st8(c + 3 * ldc, c3)
}

/// 1 row x 8 columns of C over kc steps of k.
@inline(__always)
func tile1x8(_ kc: Int, _ a: UnsafePointer<Float>, _ ak: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
             _ c: UnsafeMutablePointer<Float>, _ load: Bool) {
    var c0 = load ? ld8(c) : SIMD8<Float>()
    var ap = a, bp = b
    for _ in 0..<kc {
        c0 = fma8(c0, SIMD8(repeating: ap[0]), ld8(bp))
        ap += ak; bp += ldb
    }
    st8(c, c0)
}

/// One row of C, columns `cols`, scalar (tails narrower than eight).
@inline(__always)
func tileScalar(_ kc: Int, _ a: UnsafePointer<Float>, _ ak: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                _ c: UnsafeMutablePointer<Float>, _ cols: Range<Int>, _ load: Bool) {
    for j in cols {
        var acc: Float = load ? c[j] : 0
        for p in 0..<kc { acc = acc.addingProduct(a[p * ak], b[p * ldb + j]) }
        c[j] = acc
    }
}

/// Matrix products split across threads: rows of C when C is tall, else k with per-thread partial sums.
final class GemmRunner {
    /// The thread split.
    let parallel: Parallel
    /// Partial results of k-split products ((threads - 1) x the largest C seen).
    private var scratch = FloatStorage(0)

    /// A runner using `parallel`.
    init(parallel: Parallel) { self.parallel = parallel }

    /// C = (accumulate ? C : 0) + A B with the rows of C split across threads.
    func rowsSplit(_ g: GemmOperands, accumulate: Bool) {
        parallel.split(g.m, align: 4, minimum: 16) { _, r in gemmSIMD(g, rows: r, accumulate: accumulate) }
    }

    /// C = (accumulate ? C : 0) + A B with k split across threads (for short, wide C and very deep k: weight
    /// gradients summed over every pixel of the batch).
    func depthSplit(_ g: GemmOperands, accumulate: Bool) {
        let parts = min(parallel.threads, max(1, g.k / 512))
        if parts <= 1 { gemmSIMD(g, rows: 0..<g.m, accumulate: accumulate); return }
        precondition(g.ldc == g.n, "depth-split products need a dense C")
        let size = g.m * g.n
        if scratch.count < size * (parts - 1) { scratch = FloatStorage(size * (parts - 1)) }
        let s = scratch.pointer
        parallel.run(parts) { p in
            let lo = g.k * p / parts, hi = g.k * (p + 1) / parts
            var part = g
            part.k = hi - lo
            part.a = g.a + lo * g.ak
            part.b = g.b + lo * g.ldb
            if p > 0 { part.c = s + (p - 1) * size }
            gemmSIMD(part, rows: 0..<g.m, accumulate: p == 0 ? accumulate : false)
        }
        for p in 1..<parts {
            let src = s + (p - 1) * size
            for i in 0..<size { g.c[i] += src[i] }
        }
    }
}
