// Int8 1x1 convs with integer dot products: four unsigned-by-signed byte products summed into each int32 lane per
// instruction for 8-bit weights (x86 AVX-512 VNNI `vpdpbusd`: 64 multiply-adds per instruction, four times the
// float-lane FMA kernel), two int16 products per lane for 12-bit weights (`vpdpwssd`: 32 per instruction).
// Swift exposes no such intrinsic and LLVM does not form `vpdpbusd` from Swift SIMD code (docs/quantization.md,
// "Kernels"), so `s8_dot4_16` and `s8_dot2_16` call the LLVM intrinsics through the compiler's `Builtin` module
// (`-enable-builtin-module`, the way the standard library reaches LLVM) on a `SIMD16<Int32>`'s storage. The build
// turns it on with `-D EARTAG_AVX512_VNNI` (the Makefile does when the target CPU is the build machine and it has
// avx512_vnni); without it both are portable lane loops with the same results, which only the tests run
// (`s8Dot4IsNative` tells the engine whether to pick these kernels).
// ref: Intel SDM, VPDPBUSD ("Multiply and Add Unsigned and Signed Bytes": each dword lane adds the four products of
// unsigned bytes of the first source and signed bytes of the second, wrapping, no saturation) and VPDPWSSD (two
// signed word products per dword lane, wrapping); LLVM IntrinsicsX86.td `int_x86_avx512_vpdpbusd_512`,
// `int_x86_avx512_vpdpwssd_512`; XNNPACK's qs8 GEMM microkernels with the same [k/4][16][4] packing.
#if EARTAG_AVX512_VNNI
import Builtin
#endif

/// True when `s8_dot4_16` is one `vpdpbusd` instruction (built with `-D EARTAG_AVX512_VNNI`); false when it is the
/// portable lane loop, too slow for the engine to pick.
#if EARTAG_AVX512_VNNI
public let s8Dot4IsNative = true
#else
public let s8Dot4IsNative = false
#endif

/// acc[l] + sum over j < 4 of UInt8(byte j of a[l]) * Int8(byte j of b[l]), with wrapping int32 adds (`vpdpbusd`).
@_transparent
func s8_dot4_16(_ acc: SIMD16<Int32>, _ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> SIMD16<Int32> {
#if EARTAG_AVX512_VNNI
    var r = SIMD16<Int32>()
    r._storage._value = Builtin.int_x86_avx512_vpdpbusd_512(acc._storage._value, a._storage._value, b._storage._value)
    return r
#else
    var r = acc
    for l in 0..<16 {
        var s: Int32 = 0
        for j in 0..<4 {
            let u = Int32(UInt8(truncatingIfNeeded: a[l] >> (8 * j)))
            let v = Int32(Int8(truncatingIfNeeded: b[l] >> (8 * j)))
            s &+= u &* v
        }
        r[l] &+= s
    }
    return r
#endif
}

/// acc[l] + sum over j < 2 of Int16(half j of a[l]) * Int16(half j of b[l]), with wrapping int32 adds (`vpdpwssd`).
@_transparent
func s8_dot2_16(_ acc: SIMD16<Int32>, _ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> SIMD16<Int32> {
#if EARTAG_AVX512_VNNI
    var r = SIMD16<Int32>()
    r._storage._value = Builtin.int_x86_avx512_vpdpwssd_512(acc._storage._value, a._storage._value, b._storage._value)
    return r
#else
    var r = acc
    for l in 0..<16 {
        let lo = Int32(Int16(truncatingIfNeeded: a[l])) &* Int32(Int16(truncatingIfNeeded: b[l]))
        let hi = Int32(Int16(truncatingIfNeeded: a[l] >> 16)) &* Int32(Int16(truncatingIfNeeded: b[l] >> 16))
        r[l] &+= lo &+ hi
    }
    return r
#endif
}

/// Input channels rounded up to a multiple of 4 (one dot4 group).
public func s8_dot4_groups(_ cin: Int) -> Int { (cin + 3) / 4 }

/// Bytes `s8_pack_conv1x1_dot4` writes: [ceil(cout / 16)][ceil(cin / 4)][16][4].
public func s8_packed_conv1x1_dot4_count(cin: Int, cout: Int) -> Int { (cout + 15) / 16 * s8_dot4_groups(cin) * 64 }

/// Int32 corrections `s8_pack_conv1x1_dot4` writes: cout rounded up to 16.
public func s8_conv1x1_dot4_correction_count(cout: Int) -> Int { (cout + 15) / 16 * 16 }

/// Bytes of scratch `s8_conv1x1_8x16_dot4` needs: 8 rows of ceil(cin / 4) * 4 unsigned inputs.
public func s8_conv1x1_dot4_scratch_count(cin: Int) -> Int { 8 * s8_dot4_groups(cin) * 4 }

/// Packs [cout][cin] 8-bit weights (|w| <= 127) for `s8_conv1x1_8x16_dot4`: blocks of 16 output channels, each
/// [ceil(cin / 4)][16 channels][4 consecutive input channels], zero past cout and cin; and per output channel the
/// correction 128 * sum_ci w[co][ci] (the kernel feeds x + 128 as unsigned bytes; see there).
public func s8_pack_conv1x1_dot4(weights: UnsafeBufferPointer<Int16>, cin: Int, cout: Int,
                                 packed: UnsafeMutableBufferPointer<Int8>,
                                 correction: UnsafeMutableBufferPointer<Int32>) {
    let groups = s8_dot4_groups(cin)
    precondition(weights.count >= cin * cout && packed.count >= s8_packed_conv1x1_dot4_count(cin: cin, cout: cout))
    precondition(correction.count >= s8_conv1x1_dot4_correction_count(cout: cout))
    for b in 0..<((cout + 15) / 16) {
        for g in 0..<groups {
            for l in 0..<16 {
                for j in 0..<4 {
                    let co = b * 16 + l, ci = g * 4 + j
                    let w = co < cout && ci < cin ? weights[co * cin + ci] : 0
                    precondition(abs(w) <= 127, "dot4 kernels take 8-bit weights")
                    packed[((b * groups + g) * 16 + l) * 4 + j] = Int8(w)
                }
            }
        }
    }
    for co in 0..<s8_conv1x1_dot4_correction_count(cout: cout) {
        var s: Int32 = 0
        if co < cout { for ci in 0..<cin { s += Int32(weights[co * cin + ci]) } }
        correction[co] = 128 * s
    }
}

/// Int8 1x1 conv with dot4 instructions, bit-exact with `s8_conv1x1_reference` for 8-bit weights (packed by
/// `s8_pack_conv1x1_dot4`). Tiles of 8 pixels x 16 output channels: the 8 input rows are stored once per tile in
/// `scratch` as unsigned bytes u = x + 128 (x xor 0x80), rows padded to a multiple of 4 (the padding bytes, whatever
/// they hold, meet zero weights); each group of 4 input
/// channels then costs one weight vector load, 8 broadcasts of 4 input bytes and 8 dot4s.
/// Invariant: the dot4 sum is sum u * w = sum x * w + 128 * sum w, so subtracting the packed correction
/// (128 * sum w) gives the reference's int32 sum exactly. No int32 overflow: |u * w| <= 255 * 127 and the model's cin
/// is at most 960 (the loader's bound on channels is far below 2^31 / 32385 = 66 311), and the correction is an exact
/// int32 (|128 * 127 * cin| < 2^31). The sum is then converted to float as the reference does and goes through the
/// same epilogue (`s8_emit16`).
public func s8_conv1x1_8x16_dot4(
    input: UnsafeBufferPointer<Int8>, pixels: Int, cin: Int,
    packed: UnsafeBufferPointer<Int8>, correction: UnsafeBufferPointer<Int32>, cout: Int, epilogue: S8Epilogue,
    residual: UnsafeBufferPointer<Int8>? = nil, scratch: UnsafeMutableBufferPointer<UInt8>,
    output: UnsafeMutableBufferPointer<Int8>
) {
    precondition(cin < 66_000, "cin \(cin) beyond the int32 range of the dot4 sums")
    precondition(packed.count >= s8_packed_conv1x1_dot4_count(cin: cin, cout: cout))
    precondition(correction.count >= s8_conv1x1_dot4_correction_count(cout: cout))
    precondition(scratch.count >= s8_conv1x1_dot4_scratch_count(cin: cin))
    s8_conv1x1_8x16_dotTiles(words: false, input: input, pixels: pixels, cin: cin, packed: UnsafeRawPointer(packed.baseAddress!),
                             correction: correction.baseAddress, cout: cout, epilogue: epilogue, residual: residual,
                             scratch: UnsafeMutableRawPointer(scratch.baseAddress!),
                             output: output)
}

/// Int16 pairs `s8_pack_conv1x1_dot2` writes: [ceil(cout / 16)][ceil(cin / 2)][16][2].
public func s8_packed_conv1x1_dot2_count(cin: Int, cout: Int) -> Int { (cout + 15) / 16 * ((cin + 1) / 2) * 32 }

/// Int16 values of scratch `s8_conv1x1_8x16_dot2` needs: 8 rows of cin rounded up to even.
public func s8_conv1x1_dot2_scratch_count(cin: Int) -> Int { 8 * ((cin + 1) / 2 * 2) }

/// Packs [cout][cin] weights (|w| <= 2047, the 12-bit layers; 8-bit ones work too) for `s8_conv1x1_8x16_dot2`:
/// blocks of 16 output channels, each [ceil(cin / 2)][16 channels][2 consecutive input channels], zero past cout and cin.
public func s8_pack_conv1x1_dot2(weights: UnsafeBufferPointer<Int16>, cin: Int, cout: Int,
                                 packed: UnsafeMutableBufferPointer<Int16>) {
    let pairs = (cin + 1) / 2
    precondition(weights.count >= cin * cout && packed.count >= s8_packed_conv1x1_dot2_count(cin: cin, cout: cout))
    for b in 0..<((cout + 15) / 16) {
        for g in 0..<pairs {
            for l in 0..<16 {
                for j in 0..<2 {
                    let co = b * 16 + l, ci = g * 2 + j
                    let w = co < cout && ci < cin ? weights[co * cin + ci] : 0
                    precondition(abs(w) <= 2047, "dot2 kernels take weights of at most 12 bits")
                    packed[((b * pairs + g) * 16 + l) * 2 + j] = w
                }
            }
        }
    }
}

/// Int8 1x1 conv with dot2 (int16 pair) instructions, bit-exact with `s8_conv1x1_reference` for weights of up to 12
/// bits (packed by `s8_pack_conv1x1_dot2`). The same 8 x 16 tiles as `s8_conv1x1_8x16_dot4`, the input rows widened
/// to int16 in `scratch`, one dot2 per pair of input channels and pixel. Invariant: |x * w| <= 128 * 2047 < 2^18, so
/// the int32 sum of a cin below 8192 (the model's is at most 960) cannot overflow and equals the reference's exactly.
public func s8_conv1x1_8x16_dot2(
    input: UnsafeBufferPointer<Int8>, pixels: Int, cin: Int,
    packed: UnsafeBufferPointer<Int16>, cout: Int, epilogue: S8Epilogue,
    residual: UnsafeBufferPointer<Int8>? = nil, scratch: UnsafeMutableBufferPointer<Int16>,
    output: UnsafeMutableBufferPointer<Int8>
) {
    precondition(cin < 8192, "cin \(cin) beyond the int32 range of the dot2 sums")
    precondition(packed.count >= s8_packed_conv1x1_dot2_count(cin: cin, cout: cout))
    precondition(scratch.count >= s8_conv1x1_dot2_scratch_count(cin: cin))
    s8_conv1x1_8x16_dotTiles(words: true, input: input, pixels: pixels, cin: cin, packed: UnsafeRawPointer(packed.baseAddress!),
                             correction: nil, cout: cout, epilogue: epilogue, residual: residual,
                             scratch: UnsafeMutableRawPointer(scratch.baseAddress!),
                             output: output)
}

/// The tile loop of the dot4 (`words` false: unsigned bytes, 4 input channels per lane) and dot2 (`words` true:
/// int16, 2 per lane) 1x1 kernels. Both read 4 bytes of each of 8 input rows per step (broadcast to 16 lanes) against
/// 64 bytes of packed weights, then subtract the dot4 correction, convert to float and run the reference's epilogue.
@inline(__always)
func s8_conv1x1_8x16_dotTiles(
    words: Bool, input: UnsafeBufferPointer<Int8>, pixels: Int, cin: Int, packed w: UnsafeRawPointer,
    correction: UnsafePointer<Int32>?, cout: Int, epilogue: S8Epilogue, residual: UnsafeBufferPointer<Int8>?,
    scratch: UnsafeMutableRawPointer, output: UnsafeMutableBufferPointer<Int8>
) {
    precondition(input.count >= pixels * cin && output.count >= pixels * cout && epilogue.channels == cout)
    precondition(residual == nil || residual!.count >= pixels * cout)
    guard pixels > 0, cout > 0, cin > 0 else { return }
    // Input channels per 4-byte step, steps per row, bytes per scratch row.
    let perStep = words ? 2 : 4, steps = (cin + perStep - 1) / perStep, pitch = steps * 4
    let x = input.baseAddress!, o = output.baseAddress!
    let res = residual?.baseAddress
    epilogue.scale.withUnsafeBufferPointer { scale in
        epilogue.biasF.withUnsafeBufferPointer { biasF in
            let sp = scale.baseAddress!, bp = biasF.baseAddress!
            /// All tiles with the layer's activation as a constant (one specialized copy per activation).
            @inline(__always) func tiles(_ act: S8Activation) {
                var p = 0
                while p < pixels {
                    let n = pixels - p < 8 ? pixels - p : 8
                    for i in 0..<n {
                        if words {
                            s8_widen_int16(x + (p + i) * cin, count: cin, to: (scratch + i * pitch).assumingMemoryBound(to: Int16.self))
                        } else {
                            s8_offset_bytes(x + (p + i) * cin, count: cin, to: (scratch + i * pitch).assumingMemoryBound(to: UInt8.self))
                        }
                    }
                    // Rows past the tail repeat the last pixel (computed, not stored).
                    let r = UnsafeRawPointer(scratch)
                    /// Scratch row i, or the last one past the tail.
                    @_transparent func row(_ i: Int) -> UnsafeRawPointer { r + (i < n ? i : n - 1) * pitch }
                    let r0 = r, r1 = row(1), r2 = row(2), r3 = row(3), r4 = row(4), r5 = row(5), r6 = row(6), r7 = row(7)
                    for b in 0..<((cout + 15) / 16) {
                        var a0 = SIMD16<Int32>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
                        var wp = w + b * steps * 64
                        var off = 0
                        /// One step of one row: the row's 4 bytes at `off` broadcast, times the weight vector.
                        @_transparent func dot(_ acc: SIMD16<Int32>, _ row: UnsafeRawPointer, _ wv: SIMD16<Int32>) -> SIMD16<Int32> {
                            let v = SIMD16<Int32>(repeating: row.loadUnaligned(fromByteOffset: off, as: Int32.self))
                            return words ? s8_dot2_16(acc, v, wv) : s8_dot4_16(acc, v, wv)
                        }
                        for _ in 0..<steps {
                            let wv = wp.loadUnaligned(as: SIMD16<Int32>.self)
                            a0 = dot(a0, r0, wv); a1 = dot(a1, r1, wv); a2 = dot(a2, r2, wv); a3 = dot(a3, r3, wv)
                            a4 = dot(a4, r4, wv); a5 = dot(a5, r5, wv); a6 = dot(a6, r6, wv); a7 = dot(a7, r7, wv)
                            wp += 64; off += 4
                        }
                        let c0 = b * 16, lanes = cout - c0 < 16 ? cout - c0 : 16
                        let k = correction.map { UnsafeRawPointer($0 + c0).loadUnaligned(as: SIMD16<Int32>.self) } ?? SIMD16()
                        var at = p * cout + c0
                        /// Requantizes and stores one row of the tile at `at`.
                        @_transparent func emit(_ a: SIMD16<Int32>) {
                            s8_emit16(s8_float16(a &- k), epilogue, scale: sp, biasF: bp, c0: c0, residual: res.map { $0 + at },
                                      lanes: lanes, output: o + at, activation: act)
                        }
                        emit(a0)
                        if n > 1 { at += cout; emit(a1) }
                        if n > 2 { at += cout; emit(a2) }
                        if n > 3 { at += cout; emit(a3) }
                        if n > 4 { at += cout; emit(a4) }
                        if n > 5 { at += cout; emit(a5) }
                        if n > 6 { at += cout; emit(a6) }
                        if n > 7 { at += cout; emit(a7) }
                    }
                    p += n
                }
            }
            switch epilogue.activation {
            case .none: tiles(.none)
            case .relu: tiles(.relu)
            case .hardswish: tiles(.hardswish)
            }
        }
    }
}

/// Writes `count` int8 values widened to int16: 16 at a time (vpmovsxbw / sxtl), then 8, then a scalar tail (the
/// early high-resolution layers have 8 or 24 input channels).
@_transparent
func s8_widen_int16(_ x: UnsafePointer<Int8>, count: Int, to u: UnsafeMutablePointer<Int16>) {
    var i = 0
    while i + 16 <= count {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Int8>.self)
        for l in 0..<16 { u[i + l] = Int16(v[l]) }
        i += 16
    }
    if i + 8 <= count {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Int8>.self)
        for l in 0..<8 { u[i + l] = Int16(v[l]) }
        i += 8
    }
    while i < count { u[i] = Int16(x[i]); i += 1 }
}

/// Writes x + 128 (x xor 0x80) of `count` int8 values as unsigned bytes: 16 at a time, then 8, then a tail.
@_transparent
func s8_offset_bytes(_ x: UnsafePointer<Int8>, count: Int, to u: UnsafeMutablePointer<UInt8>) {
    let src = UnsafeRawPointer(x), dst = UnsafeMutableRawPointer(u)
    var i = 0
    while i + 16 <= count {
        dst.storeBytes(of: src.loadUnaligned(fromByteOffset: i, as: SIMD16<UInt8>.self) ^ 0x80, toByteOffset: i,
                       as: SIMD16<UInt8>.self)
        i += 16
    }
    if i + 8 <= count {
        dst.storeBytes(of: src.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ 0x8080_8080_8080_8080, toByteOffset: i,
                       as: UInt64.self)
        i += 8
    }
    while i < count { u[i] = UInt8(bitPattern: x[i]) ^ 0x80; i += 1 }
}

/// The 16 int32 lanes as floats, rounded as `Float(Int32)` (a lane loop LLVM turns into one vcvtdq2ps / scvtf).
@_transparent
func s8_float16(_ v: SIMD16<Int32>) -> SIMD16<Float> {
    var f = SIMD16<Float>()
    for l in 0..<16 { f[l] = Float(v[l]) }
    return f
}
