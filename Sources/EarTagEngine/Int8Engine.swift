// The int8 inference engine: runs a QuantizedModel (docs/quantization.md) mel -> logits + embedding with int8
// activations, exact integer accumulation and fp32 requantization epilogues (activation, residual add fused), without
// allocating after init.
// ref: EfficientAT models/mn/model.py (MN._forward_impl) and block_types.py (InvertedResidual, SqueezeExcitation);
// the scheme follows gemmlowp doc/quantization.md, the TFLite int8 quantization spec and XNNPACK's fp32
// requantization.
import EarTagKernels
import EarTagKernelsNarrow
import EarTagModel
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One int8 conv/linear layer ready to run: weights, epilogue (bias, scales, activation, output quantization).
struct S8LayerPlan {
    var cin: Int
    var cout: Int
    var kernel: Int
    var weights: [Int16]
    var epilogue: S8Epilogue
    /// True when the vector kernels' float sums are exact for this layer (`s8_float_sums_exact`).
    var vectorExact: Bool
    var inputZeroPoint: Int32
    /// Weights as exact floats for the vector kernels (1x1: `s8_pack_conv1x1_16`; depthwise/stem: `s8_pack_dwconv`).
    var packed: [Float]
    /// 1x1 weights packed for the dot4 kernel (`s8_pack_conv1x1_dot4`) and its corrections; empty unless that kernel
    /// runs this layer (`s8Dot4IsNative`, 8-bit weights, not `reference`).
    var dot4: [Int8] = []
    var dot4Correction: [Int32] = []
    /// 1x1 weights packed for the dot2 kernel (`s8_pack_conv1x1_dot2`): 12-bit layers when `s8Dot4IsNative`.
    var dot2: [Int16] = []
    /// True when `s8_conv1x1_c8n_8x8_simd` runs this 1x1 layer (from `packed`; see `Int8Engine.narrowPointwise`).
    var narrow = false
    /// Depthwise weights as int32 lanes (`s16_pack_dwconv_i32`): block 1 reading the 16-bit stem output.
    var packedI32: [Int32] = []

    /// The plan keeping only the weights its runs read: `dot4`/`dot2` when a dot kernel runs it, `packed` when the
    /// float-lane vector kernels do (not `reference` and `vectorExact`), else the int16 `weights` (for mn04_as the
    /// other forms were 2 MB of int16 or 4 MB of floats).
    func keepingRunWeights(reference: Bool) -> S8LayerPlan {
        var p = self
        if !packedI32.isEmpty {
            p.weights = []; p.packed = []
        } else if !dot4.isEmpty || !dot2.isEmpty {
            p.weights = []; p.packed = []
        } else if !reference && vectorExact {
            p.weights = []
        } else {
            p.packed = []
        }
        return p
    }
}

/// One inverted residual block of the int8 engine.
struct S8BlockPlan {
    var expand: S8LayerPlan?
    var depthwise: S8LayerPlan
    var kernel: Int, stride: Int, dilation: Int
    /// Squeeze-excitation float weights, transposed from PyTorch's (fc1T [e][s], b1, fc2T [s][e], b2), the depthwise output's quantization
    /// (seScale, seZeroPoint) and the gated map's (seOutScale, seOutZeroPoint).
    var se: (squeeze: Int, fc1T: [Float], b1: [Float], fc2T: [Float], b2: [Float])?
    var seScale: Float, seZeroPoint: Int32
    var seOutScale: Float, seOutZeroPoint: Int32
    /// The projection; with a residual its epilogue adds the block input and outputs the add's quantization.
    var project: S8LayerPlan
    var residual: Bool
}

/// Int8 MN inference engine: construct once per quantized model, then call `run` per clip or window.
/// Not thread-safe (shared buffers); single-threaded (`threads` is accepted for API parity and ignored).
public final class Int8Engine {
    /// Output classes of the model.
    public let numClasses: Int
    /// Length of the embedding (channels of the last feature map).
    public let embeddingSize: Int
    /// Largest `frames` a run accepts.
    public let maxFrames: Int
    /// Mel bins per frame.
    public let melBins: Int
    /// The architecture this engine runs.
    public let architecture: Architecture

    private let inputScale: Float, inputZeroPoint: Int32
    private let stem: S8LayerPlan
    private let blocks: [S8BlockPlan]
    private let lastConv: S8LayerPlan
    private let lastScale: Float, lastZeroPoint: Int32
    private let poolScale: Double, poolZeroPoint: Int32
    private let hidden: S8LayerPlan?
    private let out: S8LayerPlan
    private let outBiasF: [Float], outScales: [Float]
    /// True when the stem output is 16-bit (`QuantizedModel.int16Activations`): the stem writes `wideMap`, block 1's
    /// depthwise conv reads it through int32 lanes and block 1's projection adds it as its residual.
    private let wideStem: Bool
    // Run-time buffers (allocated once).
    private let melQ, mapA, mapB, mapC, mapD: UnsafeMutableBufferPointer<Int8>
    /// The 16-bit stem output, and one centered int32 band of it (only with `wideStem`).
    private let wideMap: UnsafeMutableBufferPointer<Int16>
    private let centeredI32: UnsafeMutableBufferPointer<Int32>
    private let sums: UnsafeMutableBufferPointer<Int32>
    /// Per-channel SE requantization multipliers (gate * s_in / s_out).
    private let gate: UnsafeMutableBufferPointer<Float>
    /// Centered float copy of the stem's input plane and of each depthwise band's input rows (vector path).
    private let centered: UnsafeMutableBufferPointer<Float>
    /// Widened input rows of the 1x1 kernel (vector path).
    private let gemmScratch: UnsafeMutableBufferPointer<Float>
    /// Unsigned input rows of the dot4 1x1 kernel.
    private let dot4Scratch: UnsafeMutableBufferPointer<UInt8>
    /// Int16 input rows of the dot2 1x1 kernel.
    private let dot2Scratch: UnsafeMutableBufferPointer<Int16>
    private let floats: UnsafeMutableBufferPointer<Float>
    private let pooled, hiddenQ: UnsafeMutableBufferPointer<Int8>
    /// Names of the layers, for `debugCapture` (per block expand/depthwise/project-or-add; the last conv).
    private let names: [[String]]
    private let lastName: String
    /// Test and calibration hook: receives each quantized tensor (widened to int32; int8, or int16 for the 16-bit
    /// stem output) with its name (as the Quantizer's observation keys) and quantization (scale, zero point).
    var debugCapture: ((String, UnsafeBufferPointer<Int32>, Int, Double, Int32) -> Void)?
    /// When set, only these tensors are widened and handed to `debugCapture` (bias correction wants one per run:
    /// widening every tensor made `eartag quantize` spend most of its time copying).
    var debugCaptureNames: Set<String>?
    /// Output quantization (scale, zero point) of each captured tensor, by name.
    private var quants: [String: (Double, Int32)] = [:]

    /// True when the scalar reference kernels run instead of the vectorized ones (`EARTAG_KERNELS=reference`).
    public let usesReferenceKernels: Bool

    /// Prepares `model` (validated again here) with buffers for `maxFrames`.
    /// `referenceKernels` (default: environment `EARTAG_KERNELS=reference`) selects the scalar reference kernels.
    public init(model: QuantizedModel, maxFrames: Int, threads: Int = 1,
                referenceKernels: Bool = ProcessInfo.processInfo.environment["EARTAG_KERNELS"] == "reference") throws {
        usesReferenceKernels = referenceKernels
        precondition(maxFrames >= 1, "maxFrames must be at least 1")
        try model.validate(path: "<int8 model \(model.name)>")
        let arch = model.architecture
        architecture = arch
        let wide = model.int16Activations.contains(QuantizedModel.wideStemOutput)
        wideStem = wide
        self.maxFrames = maxFrames
        melBins = model.frontend.nMels
        numClasses = arch.numClasses
        embeddingSize = arch.lastConvChannels
        guard arch.inputChannels == 1 else { throw EngineError.unsupported("\(arch.inputChannels) input channels") }
        guard arch.seDims.allSatisfy({ $0 == "c" }) else { throw EngineError.unsupported("SE dims \(arch.seDims)") }
        /// Scalar float and zero point of a quantization pair.
        func q(_ p: String, _ scale: String = "scale", _ zero: String = "zero_point") -> (Double, Int32) {
            (Double(model.float("\(p).\(scale)")[0]), model.int32("\(p).\(zero)")[0])
        }
        /// Layer plan reading input quantization `input` with activation `act`; a hardswish layer outputs its
        /// post-activation quantization (`act_scale`), others `out_scale`, a residual projection the add's output.
        func layer(_ name: String, input: (Double, Int32), act: S8Activation,
                   residual: (out: (Double, Int32), input: (Double, Int32))? = nil) -> (S8LayerPlan, (Double, Int32)) {
            let w = model.weights(name + ".weight"), shape = model.tensors[name + ".weight"]!.shape
            let ws = model.float(name + ".weight_scale")
            let tapMajor = name == "features.0" || name.hasSuffix(".depthwise")
            let cout = tapMajor ? shape[1] : shape[0], cin = shape[1]
            let kernel = tapMajor ? Int(Double(shape[0]).squareRoot().rounded()) : 1
            let o = residual?.out ?? (act == .hardswish ? q(name, "act_scale", "act_zero_point") : q(name, "out_scale", "out_zero_point"))
            let epi = S8Epilogue(bias: model.int32(name + ".bias"), scale: ws.map { Float(input.0 * Double($0)) },
                                 activation: act, outputScale: Float(o.0), outputZeroPoint: o.1,
                                 residualScale: Float(residual?.input.0 ?? 0), residualZeroPoint: residual?.input.1 ?? 0)
            let maxW = Int(w.map { abs(Int32($0)) }.max() ?? 0)
            let exact = tapMajor ? s8_float_sums_exact(k: kernel * kernel, maxInput: 255, maxWeight: maxW)
                                 : s8_float_sums_exact(k: cin, maxInput: 128, maxWeight: maxW)
            // Block 1's depthwise conv reading the 16-bit stem output: exact int32 lanes (9 taps of
            // |x - zp| <= 65535 times |w| <= 2047 < 2^31, `QuantizedModel.supportsWideStemOutput`: 3x3).
            let wideInput = wide && name == "features.1.depthwise"
            var plan = S8LayerPlan(cin: cin, cout: cout, kernel: kernel, weights: w, epilogue: epi,
                                   vectorExact: wideInput || exact, inputZeroPoint: input.1, packed: [])
            // Pack only the form the run will read (`keepingRunWeights` then drops the int16 weights if unused).
            let narrow = !tapMajor && !referenceKernels && exact && Int8Engine.narrowPointwise(cin: cin, cout: cout)
            plan.narrow = narrow
            let dot = !tapMajor && s8Dot4IsNative && !referenceKernels && !narrow
            w.withUnsafeBufferPointer { wi in
                if wideInput {
                    if !referenceKernels {
                        plan.packedI32 = [Int32](repeating: 0, count: s16_pack_dwconv_i32_count(channels: cout, kernel: kernel))
                        plan.packedI32.withUnsafeMutableBufferPointer {
                            s16_pack_dwconv_i32(weights: wi, channels: cout, kernel: kernel, packed: $0)
                        }
                    }
                } else if tapMajor {
                    plan.packed = [Float](repeating: 0, count: shape[0] * s8_dw_pitch(cout))
                    plan.packed.withUnsafeMutableBufferPointer {
                        s8_pack_dwconv(weights: wi, channels: cout, kernel: kernel, packed: $0)
                    }
                } else if dot && maxW <= 127 {
                    plan.dot4 = [Int8](repeating: 0, count: s8_packed_conv1x1_dot4_count(cin: cin, cout: cout))
                    plan.dot4Correction = [Int32](repeating: 0, count: s8_conv1x1_dot4_correction_count(cout: cout))
                    plan.dot4.withUnsafeMutableBufferPointer { pk in
                        plan.dot4Correction.withUnsafeMutableBufferPointer {
                            s8_pack_conv1x1_dot4(weights: wi, cin: cin, cout: cout, packed: pk, correction: $0)
                        }
                    }
                } else if dot {
                    plan.dot2 = [Int16](repeating: 0, count: s8_packed_conv1x1_dot2_count(cin: cin, cout: cout))
                    plan.dot2.withUnsafeMutableBufferPointer { s8_pack_conv1x1_dot2(weights: wi, cin: cin, cout: cout, packed: $0) }
                } else {
                    plan.packed = [Float](repeating: 0, count: s8_packed_conv1x1_16_count(cin: cin, cout: cout))
                    plan.packed.withUnsafeMutableBufferPointer {
                        s8_pack_conv1x1_16(weights: wi, cin: cin, cout: cout, packed: $0)
                    }
                }
            }
            return (plan.keepingRunWeights(reference: referenceKernels), o)
        }
        /// The activation of a block (or the stem, which uses hardswish).
        func activation(_ a: Activation) -> S8Activation { a == .relu ? .relu : .hardswish }
        var quants: [String: (Double, Int32)] = [:]
        var names: [[String]] = []
        let inq = q("input")
        inputScale = Float(inq.0); inputZeroPoint = inq.1
        var (s, x) = layer("features.0", input: inq, act: .hardswish)
        stem = s
        quants["features.0.act"] = x
        var plans: [S8BlockPlan] = []
        for (i, b) in arch.blocks.enumerated() {
            let p = "features.\(i + 1)", act = activation(b.activation)
            let blockInput = x
            var expand: S8LayerPlan?
            let suffix = b.activation == .hardswish ? ".act" : ".out"
            if b.hasExpand { (s, x) = layer(p + ".expand", input: x, act: act); expand = s; quants[p + ".expand" + suffix] = x }
            let (dw, dq) = layer(p + ".depthwise", input: x, act: act)
            quants[p + ".depthwise" + suffix] = dq
            let projName = b.hasResidual ? p + ".add.out" : p + ".project.out"
            names.append([p + ".expand" + suffix, p + ".depthwise" + suffix, projName])
            var se: (Int, [Float], [Float], [Float], [Float])?
            var projIn = dq
            if let sq = b.seChannels {
                // Transposed so that the vector path reads 8 consecutive outputs per input (`squeezeExcite`).
                let e = b.expandedChannels, fc1 = model.float(p + ".se.fc1.weight"), fc2 = model.float(p + ".se.fc2.weight")
                let fc1T = (0..<(e * sq)).map { fc1[($0 % sq) * e + $0 / sq] }   // [e][sq] from [sq][e]
                let fc2T = (0..<(sq * e)).map { fc2[($0 % e) * sq + $0 / e] }   // [sq][e] from [e][sq]
                se = (sq, fc1T, model.float(p + ".se.fc1.bias"), fc2T, model.float(p + ".se.fc2.bias"))
                projIn = q(p + ".se", "out_scale", "out_zero_point")
                quants[p + ".se.gated"] = projIn
            }
            let res = b.hasResidual ? (out: q(p + ".add", "out_scale", "out_zero_point"), input: blockInput) : nil
            let (proj, pq) = layer(p + ".project", input: projIn, act: .none, residual: res)
            x = pq
            quants[projName] = pq
            plans.append(S8BlockPlan(expand: expand, depthwise: dw, kernel: b.kernel,
                                     stride: b.dilation > 1 ? 1 : b.stride, dilation: b.dilation,
                                     se: se, seScale: Float(dq.0), seZeroPoint: dq.1, seOutScale: Float(projIn.0),
                                     seOutZeroPoint: projIn.1, project: proj, residual: b.hasResidual))
        }
        blocks = plans
        let lastPlan = layer("features.\(arch.blocks.count + 1)", input: x, act: .hardswish)
        lastConv = lastPlan.0; x = lastPlan.1
        lastName = "features.\(arch.blocks.count + 1).act"
        quants[lastName] = x
        quants["pool"] = q("pool")
        self.quants = quants
        self.names = names
        lastScale = Float(x.0); lastZeroPoint = x.1
        let pq = q("pool")
        poolScale = pq.0; poolZeroPoint = pq.1
        x = pq
        if arch.head == .mlp {
            let (h, hq) = layer("classifier.hidden", input: x, act: .hardswish)
            hidden = h; x = hq
        } else {
            hidden = nil
        }
        let ow = model.weights("classifier.out.weight"), oshape = model.tensors["classifier.out.weight"]!.shape
        outBiasF = model.int32("classifier.out.bias").map { Float($0) }
        outScales = model.float("classifier.out.weight_scale").map { Float(x.0) * $0 }
        var outPacked = [Float](repeating: 0, count: s8_packed_conv1x1_16_count(cin: oshape[1], cout: oshape[0]))
        ow.withUnsafeBufferPointer { wi in
            outPacked.withUnsafeMutableBufferPointer { s8_pack_conv1x1_16(weights: wi, cin: oshape[1], cout: oshape[0], packed: $0) }
        }
        let maxOut = Int(ow.map { abs(Int32($0)) }.max() ?? 0)
        out = S8LayerPlan(cin: oshape[1], cout: oshape[0], kernel: 1, weights: ow,
                          epilogue: S8Epilogue(bias: [], scale: [], activation: .none, outputScale: 1, outputZeroPoint: 0),
                          vectorExact: s8_float_sums_exact(k: oshape[1], maxInput: 128, maxWeight: maxOut),
                          inputZeroPoint: x.1, packed: outPacked).keepingRunWeights(reference: referenceKernels)

        // Centered floats: the stem's plane, or one depthwise band (at most 65 536 floats, or the kernel's span of
        // rows when a single row is wider; see `run`).
        let span = arch.blocks.map { 1 + ($0.kernel - 1) * $0.dilation }.max() ?? 1
        var widest = 0, largestCentered = max(melBins * maxFrames, 65_536)
        for l in FloatEngine.layerShapes(arch, melBins: melBins, frames: maxFrames) {
            widest = max(widest, l.channels)
            largestCentered = max(largestCentered, span * l.cols * s8_dw_pitch(l.channels))
        }
        widest = max(widest, arch.lastConvChannels, arch.headHiddenChannels ?? 0, out.cin)
        /// A zeroed int8 buffer.
        func bytes(_ n: Int) -> UnsafeMutableBufferPointer<Int8> {
            let b = UnsafeMutableBufferPointer<Int8>.allocate(capacity: max(1, n)); b.initialize(repeating: 0); return b
        }
        /// A zeroed float buffer.
        func floatBuffer(_ n: Int) -> UnsafeMutableBufferPointer<Float> {
            let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, n)); b.initialize(repeating: 0); return b
        }
        melQ = bytes(melBins * maxFrames)
        let stemOut = ((melBins - 1) / 2 + 1) * ((maxFrames - 1) / 2 + 1) * arch.stemChannels
        wideMap = .allocate(capacity: wide ? stemOut : 1)
        wideMap.initialize(repeating: 0)
        centeredI32 = .allocate(capacity: wide ? min(stemOut, largestCentered) : 1)
        centeredI32.initialize(repeating: 0)
        centered = floatBuffer(largestCentered)
        gemmScratch = floatBuffer(s8_conv1x1_scratch_count(cin: widest))
        dot4Scratch = .allocate(capacity: s8_conv1x1_dot4_scratch_count(cin: widest))
        dot4Scratch.initialize(repeating: 0)
        dot2Scratch = .allocate(capacity: s8_conv1x1_dot2_scratch_count(cin: widest))
        dot2Scratch.initialize(repeating: 0)
        // Each map buffer sized for its role (as FloatEngine's): block inputs/outputs, expansions, depthwise outputs.
        let sizes = FloatEngine.bufferSizes(arch, melBins: melBins, frames: maxFrames,
                                            expands: plans.map { $0.expand != nil })
        mapA = bytes(sizes.blockIO); mapB = bytes(sizes.blockIO)
        mapC = bytes(sizes.expanded); mapD = bytes(sizes.depthwise)
        pooled = bytes(widest); hiddenQ = bytes(widest)
        sums = .allocate(capacity: widest); sums.initialize(repeating: 0)
        gate = floatBuffer(widest)
        floats = floatBuffer(3 * widest)
    }

    deinit {
        for b in [melQ, mapA, mapB, mapC, mapD, pooled, hiddenQ] { b.deallocate() }
        sums.deallocate(); gate.deallocate(); floats.deallocate(); centered.deallocate(); gemmScratch.deallocate()
        dot4Scratch.deallocate(); dot2Scratch.deallocate(); wideMap.deallocate(); centeredI32.deallocate()
    }

    /// Multiply-accumulates of one run over `frames` frames (same count as FloatEngine's).
    public func multiplyAccumulates(frames: Int) -> Int {
        var r = (melBins - 1) / 2 + 1, c = (frames - 1) / 2 + 1
        var macs = r * c * stem.cout * 9
        for b in blocks {
            if let e = b.expand { macs += r * c * e.cin * e.cout }
            r = f32_conv_out_size(r, kernel: b.kernel, stride: b.stride, dilation: b.dilation)
            c = f32_conv_out_size(c, kernel: b.kernel, stride: b.stride, dilation: b.dilation)
            macs += r * c * b.depthwise.cout * b.kernel * b.kernel
            if let s = b.se { macs += 2 * s.squeeze * b.depthwise.cout }
            macs += r * c * b.project.cin * b.project.cout
        }
        macs += r * c * lastConv.cin * lastConv.cout
        if let h = hidden { macs += h.cin * h.cout }
        return macs + out.cin * out.cout
    }

    /// True when a depthwise layer of `c` channels runs `s8_dwconv_c8n_8x8_simd` (8-lane groups, dense centered
    /// input) instead of `s8_dwconv_4x16_simd`: every multiple of 8. Measured faster on mn04_as for all its depthwise
    /// layers, the 16-multiples included (docs/quantization.md "Speed").
    private func narrowDepthwise(_ c: Int) -> Bool { c % 8 == 0 }

    /// True when a 1x1 layer (with exact float sums) runs `s8_conv1x1_c8n_8x8_simd` (8-lane groups, float lanes)
    /// instead of the 16-lane dot or float kernels: at most 8 inputs and a multiple of 8 outputs. Measured on mn04_as
    /// (docs/quantization.md "Speed"): features.1.project 0.21 -> 0.13 ms, features.2.expand 0.37 -> 0.25 ms; the
    /// 16-input expands were no faster, so they keep the dot kernels.
    static func narrowPointwise(cin: Int, cout: Int) -> Bool { cout % 8 == 0 && cin <= 8 }

    /// True when layer `l` runs the vector kernels (their float-lane sums must be exact for it).
    @inline(__always)
    private func vector(_ l: S8LayerPlan) -> Bool { !usesReferenceKernels && l.vectorExact }

    /// Runs a 1x1 conv layer over `pixels` (with the residual map added in its epilogue when given).
    @inline(__always)
    private func pointwise(_ l: S8LayerPlan, input: UnsafeMutableBufferPointer<Int8>, pixels: Int,
                           residual: UnsafeMutableBufferPointer<Int8>? = nil, output: UnsafeMutableBufferPointer<Int8>) {
        let r = residual.map { UnsafeBufferPointer($0) }
        if l.narrow {
            l.packed.withUnsafeBufferPointer { w in
                s8_conv1x1_c8n_8x8_simd(input: UnsafeBufferPointer(input), pixels: pixels, cin: l.cin, packed: w,
                                        cout: l.cout, epilogue: l.epilogue, residual: r, scratch: gemmScratch,
                                        output: output)
            }
        } else if !l.dot4.isEmpty {
            l.dot4.withUnsafeBufferPointer { w in
                l.dot4Correction.withUnsafeBufferPointer { k in
                    s8_conv1x1_8x16_dot4(input: UnsafeBufferPointer(input), pixels: pixels, cin: l.cin, packed: w,
                                         correction: k, cout: l.cout, epilogue: l.epilogue, residual: r,
                                         scratch: dot4Scratch, output: output)
                }
            }
        } else if !l.dot2.isEmpty {
            l.dot2.withUnsafeBufferPointer { w in
                s8_conv1x1_8x16_dot2(input: UnsafeBufferPointer(input), pixels: pixels, cin: l.cin, packed: w,
                                     cout: l.cout, epilogue: l.epilogue, residual: r, scratch: dot2Scratch, output: output)
            }
        } else if vector(l) {
            l.packed.withUnsafeBufferPointer { w in
                s8_conv1x1_8x16_simd(input: UnsafeBufferPointer(input), pixels: pixels, cin: l.cin, packed: w, cout: l.cout,
                                     epilogue: l.epilogue, residual: r, scratch: gemmScratch, output: output)
            }
        } else {
            l.weights.withUnsafeBufferPointer { w in
                s8_conv1x1_reference(input: UnsafeBufferPointer(input), pixels: pixels, cin: l.cin, weights: w,
                                     cout: l.cout, epilogue: l.epilogue, residual: r, output: output)
            }
        }
    }

    /// Runs the network on a mel [melBins][frames] (row-major), writing `numClasses` logits and `embeddingSize`
    /// embedding values (the dequantized global average of the last feature map). Allocates nothing.
    public func run(mel: UnsafeBufferPointer<Float>, frames: Int, logits: UnsafeMutableBufferPointer<Float>,
                    embedding: UnsafeMutableBufferPointer<Float>) {
        precondition(frames >= 1 && frames <= maxFrames, "frames \(frames) outside 1...\(maxFrames)")
        precondition(mel.count >= melBins * frames && logits.count >= numClasses && embedding.count >= embeddingSize)
        let ref = usesReferenceKernels
        if ref {
            s8_quantize_reference(input: mel, count: melBins * frames, scale: inputScale, zeroPoint: inputZeroPoint, output: melQ)
        } else {
            s8_quantize_16_simd(input: mel, count: melBins * frames, scale: inputScale, zeroPoint: inputZeroPoint, output: melQ)
        }
        var rows = (melBins - 1) / 2 + 1, cols = (frames - 1) / 2 + 1
        var x = mapA, y = mapB
        if wideStem {
            wideStemAndFirstBlock(frames: frames, output: y)
            rows = f32_conv_out_size(rows, kernel: blocks[0].kernel, stride: blocks[0].stride, dilation: blocks[0].dilation)
            cols = f32_conv_out_size(cols, kernel: blocks[0].kernel, stride: blocks[0].stride, dilation: blocks[0].dilation)
            swap(&x, &y)
        } else if !vector(stem) {
            stem.weights.withUnsafeBufferPointer { w in
                s8_stem3x3s2_reference(input: UnsafeBufferPointer(melQ), height: melBins, width: frames,
                                       inputZeroPoint: stem.inputZeroPoint, weights: w, cout: stem.cout,
                                       epilogue: stem.epilogue, output: x)
            }
        } else {
            s8_center_plane_f32(input: UnsafeBufferPointer(melQ), count: melBins * frames, zeroPoint: stem.inputZeroPoint,
                                centered: centered)
            stem.packed.withUnsafeBufferPointer { w in
                if stem.cout == 8 {
                    s8_stem3x3s2_c8_simd(centered: UnsafeBufferPointer(centered), height: melBins, width: frames, packed: w,
                                         epilogue: stem.epilogue, output: x)
                } else {
                    s8_stem3x3s2_16_simd(centered: UnsafeBufferPointer(centered), height: melBins, width: frames, packed: w,
                                         cout: stem.cout, epilogue: stem.epilogue, output: x)
                }
            }
        }
        if !wideStem { debug("features.0.act", x, rows * cols * stem.cout) }
        for (bi, b) in blocks.enumerated() where !(wideStem && bi == 0) {
            var dwIn = x
            if let e = b.expand {
                pointwise(e, input: x, pixels: rows * cols, output: mapC); dwIn = mapC
                debug(names[bi][0], mapC, rows * cols * e.cout)
            }
            let d = b.depthwise
            let orows = f32_conv_out_size(rows, kernel: b.kernel, stride: b.stride, dilation: b.dilation)
            let ocols = f32_conv_out_size(cols, kernel: b.kernel, stride: b.stride, dilation: b.dilation)
            if !vector(d) {
                d.weights.withUnsafeBufferPointer { w in
                    s8_dwconv_reference(input: UnsafeBufferPointer(dwIn), height: rows, width: cols, channels: d.cout,
                                        inputZeroPoint: d.inputZeroPoint, weights: w, kernel: b.kernel, stride: b.stride,
                                        dilation: b.dilation, epilogue: d.epilogue, output: mapD, rows: 0..<orows)
                }
            } else {
                // Bands of output rows whose centered input rows fit in 256 KB (in L2), instead of a centered copy
                // of the whole map (4 MB at mn04's second block). Layers with a multiple of 8 channels run the 8-lane
                // kernel on a dense centered copy (pitch c).
                let c8 = narrowDepthwise(d.cout)
                let rowFloats = cols * (c8 ? d.cout : s8_dw_pitch(d.cout)), span = (b.kernel - 1) * b.dilation
                let bandRows = max(1, (max(1, 65_536 / rowFloats) - span) / b.stride)
                var r0 = 0
                while r0 < orows {
                    let band = r0..<min(orows, r0 + bandRows)
                    let inRows = s8_dw_input_rows(band, height: rows, kernel: b.kernel, stride: b.stride, dilation: b.dilation)
                    let bandIn = UnsafeBufferPointer(rebasing: dwIn[(inRows.lowerBound * cols * d.cout)...])
                    if c8 {
                        s8_center_plane_f32(input: bandIn, count: inRows.count * cols * d.cout,
                                            zeroPoint: d.inputZeroPoint, centered: centered)
                    } else {
                        s8_center_f32(input: bandIn, pixels: inRows.count * cols, channels: d.cout,
                                      zeroPoint: d.inputZeroPoint, centered: centered)
                    }
                    d.packed.withUnsafeBufferPointer { w in
                        if c8 {
                            s8_dwconv_c8n_8x8_simd(centered: UnsafeBufferPointer(centered), height: rows, width: cols,
                                                   channels: d.cout, packed: w, kernel: b.kernel, stride: b.stride,
                                                   dilation: b.dilation, epilogue: d.epilogue, output: mapD, rows: band,
                                                   centeredFirstRow: inRows.lowerBound)
                        } else {
                            s8_dwconv_4x16_simd(centered: UnsafeBufferPointer(centered), height: rows, width: cols,
                                                channels: d.cout, packed: w, kernel: b.kernel, stride: b.stride,
                                                dilation: b.dilation, epilogue: d.epilogue, output: mapD, rows: band,
                                                centeredFirstRow: inRows.lowerBound)
                        }
                    }
                    r0 = band.upperBound
                }
            }
            let n = orows * ocols
            debug(names[bi][1], mapD, n * d.cout)
            if let se = b.se {
                squeezeExcite(se, map: mapD, pixels: n, channels: d.cout, scale: b.seScale, zeroPoint: b.seZeroPoint,
                              outScale: b.seOutScale, outZeroPoint: b.seOutZeroPoint)
            }
            pointwise(b.project, input: mapD, pixels: n, residual: b.residual ? x : nil, output: y)
            debug(names[bi][2], y, n * b.project.cout)
            rows = orows; cols = ocols
            swap(&x, &y)
        }
        let n = rows * cols, c = lastConv.cout
        pointwise(lastConv, input: x, pixels: n, output: y)
        debug(lastName, y, n * c)
        // Global average pool: int32 sums; the embedding is their dequantized mean, the head input their requantization.
        if ref {
            s8_channel_sums_reference(input: UnsafeBufferPointer(y), pixels: n, channels: c, sums: sums)
        } else {
            s8_channel_sums_16_simd(input: UnsafeBufferPointer(y), pixels: n, channels: c, sums: sums)
        }
        s8_pool_requantize(sums: UnsafeBufferPointer(sums), pixels: n, channels: c, inputZeroPoint: lastZeroPoint,
                           multiplier: Float(Double(lastScale) / (Double(n) * poolScale)), outputZeroPoint: poolZeroPoint,
                           output: pooled)
        debug("pool", pooled, c)
        let inv = lastScale / Float(n)
        for ch in 0..<c { embedding[ch] = Float(sums[ch] - Int32(n) * lastZeroPoint) * inv }
        var headIn = pooled
        if let h = hidden { pointwise(h, input: pooled, pixels: 1, output: hiddenQ); headIn = hiddenQ }
        outScales.withUnsafeBufferPointer { s in
            if vector(out) {
                out.packed.withUnsafeBufferPointer { w in
                    outBiasF.withUnsafeBufferPointer { b in
                        s8_linear_dequantize_16_simd(input: UnsafeBufferPointer(headIn), nin: out.cin, packed: w, biasF: b,
                                                     nout: out.cout, scales: s, scratch: gemmScratch, output: logits)
                    }
                }
            } else {
                out.weights.withUnsafeBufferPointer { w in
                    outBiasF.withUnsafeBufferPointer { b in
                        s8_linear_dequantize_reference(input: UnsafeBufferPointer(headIn), nin: out.cin, weights: w, biasF: b,
                                                       nout: out.cout, scales: s, output: logits)
                    }
                }
            }
        }
    }

    /// Hands a tensor to `debugCapture` when set.
    @inline(__always)
    private func debug<T: FixedWidthInteger>(_ name: String, _ t: UnsafeMutableBufferPointer<T>, _ count: Int) {
        guard let cap = debugCapture, debugCaptureNames?.contains(name) ?? true, let q = quants[name] else { return }
        // Widened copy: allocates, but only while a test or the quantizer's bias correction has set the hook.
        let wide = (0..<count).map { Int32(t[$0]) }
        wide.withUnsafeBufferPointer { cap(name, $0, count, q.0, q.1) }
    }

    /// The stem with its 16-bit output into `wideMap`, then block 1 (depthwise conv over the 16-bit map through int32
    /// lanes, banded like `run`'s; projection with the 16-bit map as residual) into `output`; the mel is quantized.
    private func wideStemAndFirstBlock(frames: Int, output: UnsafeMutableBufferPointer<Int8>) {
        let rows = (melBins - 1) / 2 + 1, cols = (frames - 1) / 2 + 1, b = blocks[0], d = b.depthwise
        if usesReferenceKernels {
            stem.weights.withUnsafeBufferPointer { w in
                s16_stem3x3s2_reference(input: UnsafeBufferPointer(melQ), height: melBins, width: frames,
                                        inputZeroPoint: stem.inputZeroPoint, weights: w, cout: stem.cout,
                                        epilogue: stem.epilogue, output: wideMap)
            }
        } else {
            s8_center_plane_f32(input: UnsafeBufferPointer(melQ), count: melBins * frames, zeroPoint: stem.inputZeroPoint,
                                centered: centered)
            stem.packed.withUnsafeBufferPointer { w in
                s16_stem3x3s2_c8_simd(centered: UnsafeBufferPointer(centered), height: melBins, width: frames, packed: w,
                                      epilogue: stem.epilogue, output: wideMap)
            }
        }
        debug("features.0.act", wideMap, rows * cols * stem.cout)
        let orows = f32_conv_out_size(rows, kernel: b.kernel, stride: b.stride, dilation: b.dilation)
        let ocols = f32_conv_out_size(cols, kernel: b.kernel, stride: b.stride, dilation: b.dilation)
        if usesReferenceKernels {
            d.weights.withUnsafeBufferPointer { w in
                s16_dwconv_reference(input: UnsafeBufferPointer(wideMap), height: rows, width: cols, channels: d.cout,
                                     inputZeroPoint: d.inputZeroPoint, weights: w, kernel: b.kernel, stride: b.stride,
                                     dilation: b.dilation, epilogue: d.epilogue, output: mapD, rows: 0..<orows)
            }
        } else {
            let rowValues = cols * d.cout, span = (b.kernel - 1) * b.dilation
            let bandRows = max(1, (max(1, 65_536 / rowValues) - span) / b.stride)
            var r0 = 0
            while r0 < orows {
                let band = r0..<min(orows, r0 + bandRows)
                let inRows = s8_dw_input_rows(band, height: rows, kernel: b.kernel, stride: b.stride, dilation: b.dilation)
                s16_center_i32(input: UnsafeBufferPointer(rebasing: wideMap[(inRows.lowerBound * rowValues)...]),
                               count: inRows.count * rowValues, zeroPoint: d.inputZeroPoint, centered: centeredI32)
                d.packedI32.withUnsafeBufferPointer { w in
                    s16_dwconv_c8n_8x8_i32(centered: UnsafeBufferPointer(centeredI32), height: rows, width: cols,
                                           channels: d.cout, packed: w, kernel: b.kernel, stride: b.stride,
                                           dilation: b.dilation, epilogue: d.epilogue, output: mapD, rows: band,
                                           centeredFirstRow: inRows.lowerBound)
                }
                r0 = band.upperBound
            }
        }
        let n = orows * ocols, l = b.project
        debug(names[0][1], mapD, n * d.cout)
        if !b.residual {
            pointwise(l, input: mapD, pixels: n, output: output)
        } else if usesReferenceKernels {
            l.weights.withUnsafeBufferPointer { w in
                s8_conv1x1_res16_reference(input: UnsafeBufferPointer(mapD), pixels: n, cin: l.cin, weights: w,
                                           cout: l.cout, epilogue: l.epilogue, residual: UnsafeBufferPointer(wideMap),
                                           output: output)
            }
        } else {
            l.packed.withUnsafeBufferPointer { w in
                s8_conv1x1_c8n_8x8_res16_simd(input: UnsafeBufferPointer(mapD), pixels: n, cin: l.cin, packed: w,
                                              cout: l.cout, epilogue: l.epilogue,
                                              residual: UnsafeBufferPointer(wideMap), scratch: gemmScratch,
                                              output: output)
            }
        }
        debug(names[0][2], output, n * l.cout)
    }

    /// Squeeze-excitation: float pooled mean of the dequantized map, fc1, ReLU, fc2, sigmoid; the gated map is
    /// requantized in place to its own quantization (s8_gate_reference or its vector form).
    private func squeezeExcite(_ se: (squeeze: Int, fc1T: [Float], b1: [Float], fc2T: [Float], b2: [Float]),
                               map: UnsafeMutableBufferPointer<Int8>, pixels: Int, channels e: Int,
                               scale: Float, zeroPoint: Int32, outScale: Float, outZeroPoint: Int32) {
        if usesReferenceKernels {
            s8_channel_sums_reference(input: UnsafeBufferPointer(map), pixels: pixels, channels: e, sums: sums)
        } else {
            s8_channel_sums_16_simd(input: UnsafeBufferPointer(map), pixels: pixels, channels: e, sums: sums)
        }
        let pooledF = floats, hiddenF = UnsafeMutableBufferPointer(rebasing: floats[e...])
        let inv = scale / Float(pixels)
        for c in 0..<e { pooledF[c] = Float(sums[c] - Int32(pixels) * zeroPoint) * inv }
        se.fc1T.withUnsafeBufferPointer { w1 in
            se.b1.withUnsafeBufferPointer { b1 in
                se.fc2T.withUnsafeBufferPointer { w2 in
                    se.b2.withUnsafeBufferPointer { b2 in
                        Int8Engine.seMultipliers(pooled: UnsafePointer(pooledF.baseAddress!), channels: e,
                                                 squeeze: se.squeeze, fc1T: w1.baseAddress!, b1: b1.baseAddress!,
                                                 fc2T: w2.baseAddress!, b2: b2.baseAddress!, factor: scale / outScale,
                                                 vector: !usesReferenceKernels, hidden: hiddenF.baseAddress!,
                                                 gate: gate.baseAddress!)
                    }
                }
            }
        }
        if usesReferenceKernels {
            s8_gate_reference(map: map, pixels: pixels, channels: e, inputZeroPoint: zeroPoint,
                              multiplier: UnsafeBufferPointer(gate), outputZeroPoint: outZeroPoint)
        } else {
            s8_gate_16_simd(map: map, pixels: pixels, channels: e, inputZeroPoint: zeroPoint,
                            multiplier: UnsafeBufferPointer(gate), outputZeroPoint: outZeroPoint)
        }
    }

    /// The SE block's requantization multipliers from the pooled means `pooled` [e]: hidden = ReLU(b1 + fc1 pooled),
    /// gate[c] = sigmoid(b2 + fc2 hidden)[c] * factor, with fc1T [e][sq] and fc2T [sq][e] the transposed PyTorch
    /// weights. Each output adds its products in input order, multiply then add (no fused multiply-add); `vector`
    /// computes 8 outputs per vector with those same operations lane by lane (bit-exact with the scalar loops,
    /// `Int8SqueezeExciteTests`), scalar tails.
    static func seMultipliers(pooled: UnsafePointer<Float>, channels e: Int, squeeze sq: Int,
                              fc1T: UnsafePointer<Float>, b1: UnsafePointer<Float>,
                              fc2T: UnsafePointer<Float>, b2: UnsafePointer<Float>, factor: Float, vector: Bool,
                              hidden: UnsafeMutablePointer<Float>, gate: UnsafeMutablePointer<Float>) {
        let lanes = vector ? 8 : Int.max
        var j = 0
        while lanes <= sq - j {
            var a = f32_load8(b1 + j)
            for c in 0..<e { a = a + f32_load8(fc1T + c * sq + j) * pooled[c] }
            for l in 0..<8 { hidden[j + l] = max(a[l], 0) }
            j += 8
        }
        while j < sq {
            var a = b1[j]
            for c in 0..<e { a += fc1T[c * sq + j] * pooled[c] }
            hidden[j] = max(a, 0)
            j += 1
        }
        var c = 0
        while lanes <= e - c {
            var a = f32_load8(b2 + c)
            for j in 0..<sq { a = a + f32_load8(fc2T + j * e + c) * hidden[j] }
            for l in 0..<8 { gate[c + l] = f32_sigmoid(a[l]) * factor }
            c += 8
        }
        while c < e {
            var a = b2[c]
            for j in 0..<sq { a += fc2T[j * e + c] * hidden[j] }
            gate[c] = f32_sigmoid(a) * factor
            c += 1
        }
    }

    /// Convenience form of `run` returning fresh arrays.
    public func run(mel: [Float], frames: Int) -> (logits: [Float], embedding: [Float]) {
        var logits = [Float](repeating: 0, count: numClasses)
        var embedding = [Float](repeating: 0, count: embeddingSize)
        mel.withUnsafeBufferPointer { m in
            logits.withUnsafeMutableBufferPointer { l in
                embedding.withUnsafeMutableBufferPointer { e in run(mel: m, frames: frames, logits: l, embedding: e) }
            }
        }
        return (logits, embedding)
    }
}

/// Loads 8 consecutive floats (a lane loop into a fresh vector, which the compiler turns into one vector load).
@inline(__always)
private func f32_load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    var v = SIMD8<Float>()
    for l in 0..<8 { v[l] = p[l] }
    return v
}
