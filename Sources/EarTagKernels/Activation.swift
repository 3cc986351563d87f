// Shared pieces of the float32 kernels: fused activations and unaligned SIMD loads/stores.
// Every kernel in this module works on raw buffers the caller owns and never allocates.

/// The activation a kernel applies after adding its bias.
public enum KernelActivation: Sendable, Equatable {
    /// Identity.
    case none
    /// max(x, 0).
    case relu
    /// x * min(max(x + 3, 0), 6) / 6 (PyTorch `Hardswish`).
    case hardswish
}

/// Scalar hardswish, written exactly as PyTorch defines it: x * min(max(x + 3, 0), 6) / 6.
@inline(__always)
public func f32_hardswish(_ x: Float) -> Float {
    x * min(max(x + 3, 0), 6) / 6
}

/// Applies `activation` to one scalar (reference path).
@inline(__always)
public func f32_activate_reference(_ x: Float, _ activation: KernelActivation) -> Float {
    switch activation {
    case .none: return x
    case .relu: return max(x, 0)
    case .hardswish: return f32_hardswish(x)
    }
}

/// Vector hardswish; multiplies by 1/6 instead of dividing (differs from the scalar form by <= 1 ulp).
@inline(__always)
public func f32_hardswish_simd8(_ x: SIMD8<Float>) -> SIMD8<Float> {
    var t = x + 3
    t.replace(with: 0, where: t .< 0)
    t.replace(with: 6, where: t .> 6)
    return x * t * (1 / 6 as Float)
}

/// Applies `activation` to eight lanes.
@inline(__always)
func activate8(_ x: SIMD8<Float>, _ activation: KernelActivation) -> SIMD8<Float> {
    switch activation {
    case .none: return x
    case .relu:
        var y = x
        y.replace(with: 0, where: y .< 0)
        return y
    case .hardswish: return f32_hardswish_simd8(x)
    }
}

/// Applies `activation` to one scalar on the vector paths' tails (same formula as `f32_hardswish_simd8`).
@inline(__always)
func activate1(_ x: Float, _ activation: KernelActivation) -> Float {
    switch activation {
    case .none: return x
    case .relu: return max(x, 0)
    case .hardswish: return x * min(max(x + 3, 0), 6) * (1 / 6 as Float)
    }
}

/// Applies hardswish in place (vector body, scalar tail). Layout-free: any contiguous run of floats.
public func f32_hardswish_inplace_simd8(_ data: UnsafeMutableBufferPointer<Float>) {
    guard let p = data.baseAddress else { return }
    let n = data.count
    var i = 0
    while i + 8 <= n {
        store8(p + i, f32_hardswish_simd8(load8(p + i)))
        i += 8
    }
    while i < n {
        p[i] = activate1(p[i], .hardswish)
        i += 1
    }
}

/// Applies hardswish in place, one scalar at a time (reference for `f32_hardswish_inplace_simd8`).
public func f32_hardswish_inplace_reference(_ data: UnsafeMutableBufferPointer<Float>) {
    for i in data.indices { data[i] = f32_hardswish(data[i]) }
}

/// Loads eight consecutive floats (no alignment requirement).
@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

/// Loads eight consecutive floats (no alignment requirement).
@inline(__always)
func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

/// Loads four consecutive floats (no alignment requirement).
@inline(__always)
func load4(_ p: UnsafePointer<Float>) -> SIMD4<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Float>.self)
}

/// Lane `l` of `x` repeated eight times.
@inline(__always)
func splat8(_ x: SIMD4<Float>, _ l: Int) -> SIMD8<Float> {
    SIMD8(repeating: x[l])
}

/// Stores eight consecutive floats (no alignment requirement).
@inline(__always)
func store8(_ p: UnsafeMutablePointer<Float>, _ v: SIMD8<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// acc + a * b: a fused multiply-add where the hardware surely has one (arm64), a separate mul/add elsewhere
/// (an x86-64 baseline build would otherwise call the `fmaf` library routine per lane).
@inline(__always)
func madd(_ acc: SIMD8<Float>, _ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
    #if arch(arm64)
    return acc.addingProduct(a, b)
    #else
    return acc + a * b
    #endif
}

/// Scalar counterpart of `madd` for tails.
@inline(__always)
func madd1(_ acc: Float, _ a: Float, _ b: Float) -> Float {
    #if arch(arm64)
    return acc.addingProduct(a, b)
    #else
    return acc + a * b
    #endif
}

/// Number of 8-wide blocks needed to cover `n` lanes.
@inline(__always)
public func f32_blocks8(_ n: Int) -> Int { (n + 7) / 8 }

/// An activation as a type, so kernels specialise their inner loops per activation instead of switching per store.
protocol ActivationOp {
    /// Eight lanes.
    static func apply(_ x: SIMD8<Float>) -> SIMD8<Float>
    /// One lane (tails), same formula.
    static func apply1(_ x: Float) -> Float
}

/// Identity.
enum IdentityOp: ActivationOp {
    /// Eight lanes.
    @inline(__always) static func apply(_ x: SIMD8<Float>) -> SIMD8<Float> { x }
    /// One lane.
    @inline(__always) static func apply1(_ x: Float) -> Float { x }
}

/// max(x, 0).
enum ReluOp: ActivationOp {
    /// Eight lanes.
    @inline(__always) static func apply(_ x: SIMD8<Float>) -> SIMD8<Float> {
        var y = x
        y.replace(with: 0, where: y .< 0)
        return y
    }
    /// One lane.
    @inline(__always) static func apply1(_ x: Float) -> Float { max(x, 0) }
}

/// Hardswish (vector form, multiply by 1/6).
enum HardswishOp: ActivationOp {
    /// Eight lanes.
    @inline(__always) static func apply(_ x: SIMD8<Float>) -> SIMD8<Float> { f32_hardswish_simd8(x) }
    /// One lane.
    @inline(__always) static func apply1(_ x: Float) -> Float { activate1(x, .hardswish) }
}
