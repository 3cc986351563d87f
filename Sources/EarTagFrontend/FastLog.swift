// Vectorised natural logarithm for 8 floats at once, mask-free so it stays in SIMD registers: integer range
// reduction of the bit pattern to z in [sqrt(1/2), sqrt(2)), then the classic Cephes logf polynomial on z - 1.
// Max relative error about 2e-7 for positive normal inputs.

/// Natural logarithm of each lane for positive, finite, normal inputs (~1-2 ulp); NaN for +inf or NaN input.
/// Zero, negative and subnormal inputs are outside the domain (the frontend always adds a positive offset).
@inline(__always)
func fastLog(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let bits = unsafeBitCast(x, to: SIMD8<Int32>.self)
    // x = 2^k * z with z in [sqrt(1/2), sqrt(2)): offset the bits by those of sqrt(1/2), split off the exponent.
    let shifted = bits &- 0x3F35_04F3
    let k = shifted &>> 23  // arithmetic shift: k may be negative
    let zBits = bits &- (shifted & Int32(bitPattern: 0xFF80_0000))
    let m = unsafeBitCast(zBits, to: SIMD8<Float>.self) - 1
    // Int32 to Float without a per-lane conversion: bits of 1.5 * 2^23 + k, minus 1.5 * 2^23 (exact for small k).
    let e = unsafeBitCast(k &+ 0x4B40_0000, to: SIMD8<Float>.self) - 12_582_912
    let z = m * m
    var p = SIMD8<Float>(repeating: 7.0376836292e-2)
    p = p * m + SIMD8(repeating: -1.1514610310e-1)
    p = p * m + SIMD8(repeating: 1.1676998740e-1)
    p = p * m + SIMD8(repeating: -1.2420140846e-1)
    p = p * m + SIMD8(repeating: 1.4249322787e-1)
    p = p * m + SIMD8(repeating: -1.6668057665e-1)
    p = p * m + SIMD8(repeating: 2.0000714765e-1)
    p = p * m + SIMD8(repeating: -2.4999993993e-1)
    p = p * m + SIMD8(repeating: 3.3333331174e-1)
    var y = p * m * z
    y += e * SIMD8(repeating: -2.12194440e-4)
    y += SIMD8(repeating: -0.5) * z
    var r = m + y
    r += e * SIMD8(repeating: 0.693359375)
    // x - x is 0 for finite x and NaN for inf/NaN, so bad input shows up as NaN instead of a plausible value.
    return r + (x - x)
}
