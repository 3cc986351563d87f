// Vectorised natural logarithm for 8 floats at once (range reduction to [sqrt(1/2), sqrt(2)) plus a
// degree-9 minimax polynomial, the classic Cephes logf scheme); max relative error about 2e-7 for normal inputs.

/// Natural logarithm of each lane; positive normal inputs are accurate to ~1-2 ulp, +inf and NaN pass through.
/// Zero, negative and subnormal inputs are outside the frontend's domain (it always adds a positive offset).
@inline(__always)
func fastLog(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let bits = unsafeBitCast(x, to: SIMD8<UInt32>.self)
    // Exponent e and mantissa m in [0.5, 1): x = m * 2^e.
    var e = SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: bits &>> 23) &- 126)
    var m = unsafeBitCast((bits & 0x007F_FFFF) | 0x3F00_0000, to: SIMD8<Float>.self)
    // Move m into [sqrt(1/2), sqrt(2)) and subtract 1.
    let small = m .< 0.707106781186547524
    e = e.replacing(with: e - 1, where: small)
    m = m.replacing(with: m + m, where: small) - 1
    let z = m * m
    var p: SIMD8<Float> = SIMD8(repeating: 7.0376836292e-2)
    p = p * m + -1.1514610310e-1
    p = p * m + 1.1676998740e-1
    p = p * m + -1.2420140846e-1
    p = p * m + 1.4249322787e-1
    p = p * m + -1.6668057665e-1
    p = p * m + 2.0000714765e-1
    p = p * m + -2.4999993993e-1
    p = p * m + 3.3333331174e-1
    var y = p * m * z
    y += e * -2.12194440e-4
    y += -0.5 * z
    var r = m + y
    r += e * 0.693359375
    // +inf and NaN: log(x) = x.
    return r.replacing(with: x, where: .!(x .<= Float.greatestFiniteMagnitude))
}
