// The float32 inference engine for EfficientAT MN models: prepares (validates, folds BatchNorm, packs) once,
// then runs mel -> logits + embedding without allocating.
// ref: EfficientAT models/mn/model.py (MN._forward_impl: features, adaptive avg pool, classifier) and
// models/mn/block_types.py (InvertedResidual, ConcurrentSEBlock, SqueezeExcitation).
import EarTagKernels
import EarTagModel

/// Why a model could not be prepared.
public enum EngineError: Error, CustomStringConvertible, Equatable {
    /// A tensor the architecture needs is not in the state dict.
    case missingTensor(String)
    /// A tensor has a different shape than the architecture implies.
    case wrongShape(name: String, expected: [Int], actual: [Int])
    /// The architecture uses something this engine does not implement.
    case unsupported(String)

    /// A message naming the tensor or feature at fault.
    public var description: String {
        switch self {
        case .missingTensor(let n): return "missing tensor '\(n)'"
        case .wrongShape(let n, let e, let a): return "tensor '\(n)' has shape \(a), expected \(e)"
        case .unsupported(let m): return "unsupported model: \(m)"
        }
    }
}

/// A 1x1 conv with BatchNorm folded in and weights packed for its kernel: `f32_conv1x1_simd16x2` when cout is a
/// multiple of 16 (`wide`), else `f32_conv1x1_simd8x4`.
struct PointwisePlan {
    var cin: Int
    var cout: Int
    var activation: KernelActivation
    var wide: Bool
    var packed: UnsafeBufferPointer<Float>
    var bias: UnsafeBufferPointer<Float>
}

/// A depthwise conv with BatchNorm folded in, packed tap-major, and the kernel variant chosen for it.
struct DepthwisePlan {
    var channels: Int
    var kernel: Int
    var stride: Int
    var dilation: Int
    var activation: KernelActivation
    var packed: UnsafeBufferPointer<Float>
    var bias: UnsafeBufferPointer<Float>
    var run: F32DepthwiseKernel
}

/// Channel squeeze-excitation weights (PyTorch Linear layouts).
struct SqueezePlan {
    var channels: Int
    var squeeze: Int
    var fc1: UnsafeBufferPointer<Float>
    var b1: UnsafeBufferPointer<Float>
    var fc2: UnsafeBufferPointer<Float>
    var b2: UnsafeBufferPointer<Float>
}

/// One inverted residual block, ready to run.
struct BlockPlan {
    var expand: PointwisePlan?
    var depthwise: DepthwisePlan
    var squeeze: SqueezePlan?
    var project: PointwisePlan
    var residual: Bool
}

/// A dense layer (PyTorch Linear layout [nout][nin]).
struct LinearPlan {
    var nin: Int
    var nout: Int
    var activation: KernelActivation
    var weights: UnsafeBufferPointer<Float>
    var bias: UnsafeBufferPointer<Float>
}

/// One layer's kernel call, as handed to the worker pool (items: output rows, or pixels for pointwise).
enum ParallelJob {
    case none
    case stem(mel: UnsafeBufferPointer<Float>, frames: Int, output: UnsafeMutableBufferPointer<Float>)
    case pointwise(PointwisePlan, packed: UnsafeBufferPointer<Float>, input: UnsafeMutableBufferPointer<Float>,
                   residual: UnsafeMutableBufferPointer<Float>?, output: UnsafeMutableBufferPointer<Float>)
    case depthwise(DepthwisePlan, input: UnsafeBufferPointer<Float>, rows: Int, cols: Int,
                   output: UnsafeMutableBufferPointer<Float>, outputRows: Range<Int>)
}

/// Owns every buffer the engine allocates at prepare time; freed with the engine.
final class Arena {
    private var blocks: [UnsafeMutableBufferPointer<Float>] = []

    /// A zeroed buffer of `count` floats (at least one, so base addresses are never nil).
    func buffer(_ count: Int) -> UnsafeMutableBufferPointer<Float> {
        let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, count))
        b.initialize(repeating: 0)
        blocks.append(b)
        return b
    }

    /// A copy of `values`.
    func copy(_ values: [Float]) -> UnsafeBufferPointer<Float> {
        let b = buffer(values.count)
        for i in values.indices { b[i] = values[i] }
        return UnsafeBufferPointer(b)
    }

    deinit { for b in blocks { b.deallocate() } }
}

/// Float32 MN inference engine: construct once per model, then call `run` per clip or window.
/// Not thread-safe: the buffers are shared by every run, so call `run` from one thread at a time.
public final class FloatEngine {
    /// Output classes of the model.
    public let numClasses: Int
    /// Length of the embedding (channels of the last feature map).
    public let embeddingSize: Int
    /// Largest `frames` a run accepts (buffers are sized for it).
    public let maxFrames: Int
    /// Mel bins per frame (the input's row count).
    public let melBins: Int
    /// The architecture this engine runs.
    public let architecture: Architecture

    private let arena = Arena()
    private let pool: WorkerPool?
    private let stemPacked: UnsafeBufferPointer<Float>
    private let stemBias: UnsafeBufferPointer<Float>
    private let stemChannels: Int
    private let blocks: [BlockPlan]
    private let lastConv: PointwisePlan
    private let head: [LinearPlan]
    // Run-time buffers, sized for maxFrames.
    private let mapA, mapB, mapC, mapD: UnsafeMutableBufferPointer<Float>
    private let scaledWeights: UnsafeMutableBufferPointer<Float>
    private let seScale, seScratch, headScratch: UnsafeMutableBufferPointer<Float>
    // The job the worker pool is running (only touched when threads > 1).
    private var currentJob: ParallelJob = .none
    private var currentCount = 0

    /// Prepares `model`: validates every tensor, folds BatchNorm, packs weights, and sizes buffers for `maxFrames`.
    /// `threads` > 1 starts a small worker pool used to split the big convolutions by rows.
    public init(model: FloatModel, maxFrames: Int, threads: Int = 1) throws {
        precondition(maxFrames >= 1, "maxFrames must be at least 1")
        let arch = model.architecture
        architecture = arch
        self.maxFrames = maxFrames
        melBins = model.frontend.nMels
        numClasses = arch.numClasses
        embeddingSize = arch.lastConvChannels
        guard arch.family == "mn" else { throw EngineError.unsupported("family \(arch.family)") }
        guard arch.inputChannels == 1 else { throw EngineError.unsupported("\(arch.inputChannels) input channels") }
        guard arch.seDims.allSatisfy({ $0 == "c" }) else {
            throw EngineError.unsupported("squeeze-excitation dims \(arch.seDims) (only channel SE 'c' exists)")
        }
        let shapes = arch.expectedTensorShapes()  // single source of truth (EarTagModel)
        for (name, shape) in shapes.sorted(by: { $0.key < $1.key }) {
            guard let t = model.tensors[name] else { throw EngineError.missingTensor(name) }
            guard t.shape == shape else { throw EngineError.wrongShape(name: name, expected: shape, actual: t.shape) }
        }
        let eps = arch.batchNormEps
        let tensors = model.tensors
        let arena = self.arena

        // Folds conv weights [cout][...] with BN `bn` into (weights, bias).
        func folded(_ conv: String, _ bn: String, eps: Double = eps) -> (w: [Float], b: [Float]) {
            let w = tensors[conv + ".weight"]!
            let g = tensors[bn + ".weight"]!.data, beta = tensors[bn + ".bias"]!.data
            let mean = tensors[bn + ".running_mean"]!.data, v = tensors[bn + ".running_var"]!.data
            let cout = w.shape[0], per = w.count / cout
            var fw = w.data, fb = [Float](repeating: 0, count: cout)
            for co in 0..<cout {
                let s = Double(g[co]) / (Double(v[co]) + eps).squareRoot()
                for i in 0..<per { fw[co * per + i] = Float(Double(w.data[co * per + i]) * s) }
                fb[co] = Float(Double(beta[co]) - Double(mean[co]) * s)
            }
            return (fw, fb)
        }
        // Folds and packs the 1x1 conv `prefix.0` with BatchNorm `prefix.1`.
        func pointwise(_ prefix: String, _ act: KernelActivation) -> PointwisePlan {
            let (w, b) = folded(prefix + ".0", prefix + ".1")
            let cout = b.count, cin = w.count / cout
            let wide = cout % 16 == 0
            let packed = arena.buffer(wide ? f32_packed_conv1x1_16_count(cin: cin, cout: cout)
                                           : f32_packed_conv1x1_count(cin: cin, cout: cout))
            w.withUnsafeBufferPointer {
                if wide {
                    f32_pack_conv1x1_16(weights: $0, cin: cin, cout: cout, packed: packed)
                } else {
                    f32_pack_conv1x1(weights: $0, cin: cin, cout: cout, packed: packed)
                }
            }
            return PointwisePlan(cin: cin, cout: cout, activation: act, wide: wide, packed: UnsafeBufferPointer(packed),
                                 bias: arena.copy(b))
        }

        // Stem.
        let stem = folded("features.0.0", "features.0.1")
        let sc = arch.stemChannels
        stemChannels = sc
        let sp = arena.buffer(sc * 9)
        stem.w.withUnsafeBufferPointer { f32_pack_dwconv(weights: $0, channels: sc, kernel: 3, packed: sp) }
        stemPacked = UnsafeBufferPointer(sp)
        stemBias = arena.copy(stem.b)

        // Blocks.
        var plans: [BlockPlan] = []
        for (index, spec) in arch.blocks.enumerated() {
            let base = "features.\(index + 1).block"
            var j = 0
            let act: KernelActivation = spec.activation == .relu ? .relu : .hardswish
            var expand: PointwisePlan?
            if spec.hasExpand { expand = pointwise("\(base).\(j)", act); j += 1 }
            let (dw, db) = folded("\(base).\(j).0", "\(base).\(j).1")
            j += 1
            let e = spec.expandedChannels, k = spec.kernel
            let dp = arena.buffer(e * k * k)
            dw.withUnsafeBufferPointer { f32_pack_dwconv(weights: $0, channels: e, kernel: k, packed: dp) }
            // ref: block_types.py InvertedResidual: the depthwise stride is 1 when dilated.
            let stride = spec.dilation > 1 ? 1 : spec.stride
            guard let variant = f32_dwconv_variants.first(where: { $0.supports(k, stride, spec.dilation) }) else {
                throw EngineError.unsupported("depthwise k\(k) s\(stride) d\(spec.dilation)")
            }
            let depthwise = DepthwisePlan(channels: e, kernel: k, stride: stride, dilation: spec.dilation,
                                          activation: act, packed: UnsafeBufferPointer(dp), bias: arena.copy(db),
                                          run: variant.run)
            var squeeze: SqueezePlan?
            if let s = spec.seChannels {
                let p = "\(base).\(j).conc_se_layers.0"
                squeeze = SqueezePlan(channels: e, squeeze: s, fc1: arena.copy(tensors[p + ".fc1.weight"]!.data),
                                      b1: arena.copy(tensors[p + ".fc1.bias"]!.data),
                                      fc2: arena.copy(tensors[p + ".fc2.weight"]!.data),
                                      b2: arena.copy(tensors[p + ".fc2.bias"]!.data))
                j += 1
            }
            let project = pointwise("\(base).\(j)", .none)
            plans.append(BlockPlan(expand: expand, depthwise: depthwise, squeeze: squeeze, project: project,
                                   residual: spec.hasResidual))
        }
        blocks = plans
        let lastIndex = arch.blocks.count + 1
        lastConv = pointwise("features.\(lastIndex)", .hardswish)

        // Head.
        switch arch.head {
        case .mlp:
            let h = arch.headHiddenChannels!
            head = [
                LinearPlan(nin: embeddingSize, nout: h, activation: .hardswish,
                           weights: arena.copy(tensors["classifier.2.weight"]!.data),
                           bias: arena.copy(tensors["classifier.2.bias"]!.data)),
                LinearPlan(nin: h, nout: numClasses, activation: .none,
                           weights: arena.copy(tensors["classifier.5.weight"]!.data),
                           bias: arena.copy(tensors["classifier.5.bias"]!.data)),
            ]
        case .fullyConvolutional:
            // conv (no bias) + BN, then the mean over pixels: linear, so it equals the folded conv on the embedding.
            // ref: model.py MN.__init__ fully_convolutional head: a plain nn.BatchNorm2d(num_classes), so PyTorch's
            // default eps 1e-5 applies there, not the 0.001 of the features' norm_layer.
            let (w, b) = folded("classifier.0", "classifier.1", eps: FloatEngine.fullyConvolutionalHeadEps)
            head = [LinearPlan(nin: embeddingSize, nout: numClasses, activation: .none, weights: arena.copy(w),
                               bias: arena.copy(b))]
        }

        // Buffers, each sized at maxFrames for the largest map of its role in `forward` (for mn04_as at 1000
        // frames: expansions 3.1 MB, depthwise outputs 1.0 MB, the block maps less; sized alike, four of 3.1 MB):
        // mapA/mapB the stem's, every block's and the last conv's outputs (x and y swap per block), mapC the
        // expansions (input resolution, expanded channels), mapD the depthwise outputs (output resolution).
        let sizes = FloatEngine.bufferSizes(arch, melBins: melBins, frames: maxFrames,
                                            expands: plans.map { $0.expand != nil })
        var largestPacked = 0, largestSE = 0
        for (b, spec) in zip(plans, arch.blocks) {
            largestPacked = max(largestPacked, b.project.packed.count)
            largestSE = max(largestSE, spec.expandedChannels + (spec.seChannels ?? 0))
        }
        mapA = arena.buffer(sizes.blockIO); mapB = arena.buffer(sizes.blockIO)
        mapC = arena.buffer(sizes.expanded); mapD = arena.buffer(sizes.depthwise)
        scaledWeights = arena.buffer(largestPacked)
        seScale = arena.buffer(largestSE)
        seScratch = arena.buffer(largestSE)
        headScratch = arena.buffer((arch.headHiddenChannels ?? 0) + embeddingSize)
        pool = threads > 1 ? WorkerPool(width: threads) : nil
    }

    deinit { pool?.shutdown() }

    /// BatchNorm epsilon of the fully convolutional head's BatchNorm (PyTorch's default; the features use 0.001).
    public static let fullyConvolutionalHeadEps = 1e-5

    /// Size of one map (rows = frequency, cols = time, channels).
    struct MapShape { var rows: Int; var cols: Int; var channels: Int; var elements: Int { rows * cols * channels } }

    /// Shapes of every intermediate map, in run order (stem, then per block expand/depthwise/output, then last).
    static func layerShapes(_ a: Architecture, melBins: Int, frames: Int) -> [MapShape] {
        var r = (melBins - 1) / 2 + 1, c = (frames - 1) / 2 + 1
        var out = [MapShape(rows: r, cols: c, channels: a.stemChannels)]
        for b in a.blocks {
            out.append(MapShape(rows: r, cols: c, channels: b.expandedChannels))
            let s = b.dilation > 1 ? 1 : b.stride
            r = f32_conv_out_size(r, kernel: b.kernel, stride: s, dilation: b.dilation)
            c = f32_conv_out_size(c, kernel: b.kernel, stride: s, dilation: b.dilation)
            out.append(MapShape(rows: r, cols: c, channels: b.expandedChannels))
            out.append(MapShape(rows: r, cols: c, channels: b.outputChannels))
        }
        out.append(MapShape(rows: r, cols: c, channels: a.lastConvChannels))
        return out
    }

    /// Elements each run-time map buffer needs: block inputs/outputs (stem, block outputs, last conv), expansion
    /// outputs (only blocks that expand), depthwise outputs; from `layerShapes`' order (stem, then expand/depthwise/
    /// output per block, then the last conv).
    static func bufferSizes(_ a: Architecture, melBins: Int, frames: Int, expands: [Bool])
        -> (blockIO: Int, expanded: Int, depthwise: Int) {
        let shapes = layerShapes(a, melBins: melBins, frames: frames)
        precondition(expands.count == a.blocks.count && shapes.count == 3 * a.blocks.count + 2)
        var io = max(shapes[0].elements, shapes[shapes.count - 1].elements), expanded = 0, depthwise = 0
        for k in a.blocks.indices {
            if expands[k] { expanded = max(expanded, shapes[1 + 3 * k].elements) }
            depthwise = max(depthwise, shapes[2 + 3 * k].elements)
            io = max(io, shapes[3 + 3 * k].elements)
        }
        return (io, max(1, expanded), depthwise)
    }

    /// Multiply-accumulates of one run over `frames` frames (convolutions, SE and head; pooling adds not counted).
    public func multiplyAccumulates(frames: Int) -> Int {
        var r = (melBins - 1) / 2 + 1, c = (frames - 1) / 2 + 1
        var macs = r * c * stemChannels * 9
        for (b, spec) in zip(blocks, architecture.blocks) {
            if let e = b.expand { macs += r * c * e.cin * e.cout }
            let d = b.depthwise
            r = f32_conv_out_size(r, kernel: d.kernel, stride: d.stride, dilation: d.dilation)
            c = f32_conv_out_size(c, kernel: d.kernel, stride: d.stride, dilation: d.dilation)
            macs += r * c * d.channels * d.kernel * d.kernel
            if let s = spec.seChannels { macs += 2 * s * spec.expandedChannels }
            macs += r * c * b.project.cin * b.project.cout
        }
        macs += r * c * lastConv.cin * lastConv.cout
        for h in head { macs += h.nin * h.nout }
        return macs
    }

    /// Runs one kernel call for the items `range` of `job` (stem/depthwise: output rows; pointwise: pixels).
    @inline(__always)
    private func execute(_ job: ParallelJob, _ range: Range<Int>) {
        switch job {
        case .none:
            break
        case .stem(let mel, let frames, let output):
            f32_stem3x3s2_simd8(input: mel, height: melBins, width: frames, packed: stemPacked, bias: stemBias,
                                cout: stemChannels, activation: .hardswish, output: output, rows: range)
        case .pointwise(let p, let packed, let input, let residual, let output):
            let inp = UnsafeBufferPointer(rebasing: input[(range.lowerBound * p.cin)..<(range.upperBound * p.cin)])
            let o = range.lowerBound * p.cout, e = range.upperBound * p.cout
            let res = residual.map { UnsafeBufferPointer(rebasing: $0[o..<e]) }
            let out = UnsafeMutableBufferPointer(rebasing: output[o..<e])
            if p.wide {
                f32_conv1x1_simd16x2(input: inp, pixels: range.count, cin: p.cin, packed: packed, bias: p.bias,
                                     cout: p.cout, activation: p.activation, residual: res, output: out)
            } else {
                f32_conv1x1_simd8x4(input: inp, pixels: range.count, cin: p.cin, packed: packed, bias: p.bias,
                                    cout: p.cout, activation: p.activation, residual: res, output: out)
            }
        case .depthwise(let d, let input, let rows, let cols, let output, let outputRows):
            let r = (outputRows.lowerBound + range.lowerBound)..<(outputRows.lowerBound + range.upperBound)
            d.run(input, rows, cols, d.channels, d.packed, d.bias, d.kernel, d.stride, d.dilation, d.activation,
                  output, r)
        }
    }

    /// Runs `job` over `count` items: inline without a pool, else split into contiguous ranges over the pool.
    /// Allocation-free: the job sits in a stored property and workers reach it through a C function pointer.
    private func dispatch(_ job: ParallelJob, count: Int, minimumPerPart: Int = 1) {
        guard let pool, count >= 2 * minimumPerPart else { execute(job, 0..<count); return }
        currentJob = job
        currentCount = count
        pool.parallel(parts: min(pool.width, count / minimumPerPart), task: FloatEngine.runPart,
                      context: Unmanaged.passUnretained(self).toOpaque())
        currentJob = .none
    }

    /// Pool entry point: part `part` of `parts` of the engine's current job.
    private static let runPart: WorkerPool.Task = { context, part, parts in
        let engine = Unmanaged<FloatEngine>.fromOpaque(context).takeUnretainedValue()
        let n = engine.currentCount
        engine.execute(engine.currentJob, (n * part / parts)..<(n * (part + 1) / parts))
    }

    /// Runs a 1x1 conv over the pixels `range` of channels-last maps (split over the pool when there is one).
    private func pointwise(_ p: PointwisePlan, packed: UnsafeBufferPointer<Float>, input: UnsafeMutableBufferPointer<Float>,
                           pixels range: Range<Int>, residual: UnsafeMutableBufferPointer<Float>?,
                           output: UnsafeMutableBufferPointer<Float>) {
        let lo = range.lowerBound
        let inp = UnsafeMutableBufferPointer(rebasing: input[(lo * p.cin)...])
        let res = residual.map { UnsafeMutableBufferPointer(rebasing: $0[(lo * p.cout)...]) }
        let out = UnsafeMutableBufferPointer(rebasing: output[(lo * p.cout)...])
        dispatch(.pointwise(p, packed: packed, input: inp, residual: res, output: out), count: range.count,
                 minimumPerPart: 64)
    }

    /// Bytes of expanded map a block processes per band, so expand -> depthwise -> project stay in L2
    /// (no measurable effect on this x86 machine with its large L3; meant for small-cache ARM boards).
    /// Internal so tests can force one-row bands.
    var bandBytes = 192 * 1024

    /// The forward pass; calls `capture(layer, map, rows, cols, channels)` after each of the features layers.
    @inline(__always)
    private func forward(mel: UnsafeBufferPointer<Float>, frames: Int, logits: UnsafeMutableBufferPointer<Float>,
                         embedding: UnsafeMutableBufferPointer<Float>,
                         capture: ((Int, UnsafeMutableBufferPointer<Float>, Int, Int, Int) -> Void)?) {
        precondition(frames >= 1 && frames <= maxFrames, "frames \(frames) outside 1...\(maxFrames)")
        precondition(mel.count >= melBins * frames, "mel holds \(mel.count) values, need \(melBins * frames)")
        precondition(logits.count >= numClasses && embedding.count >= embeddingSize)
        var rows = (melBins - 1) / 2 + 1, cols = (frames - 1) / 2 + 1
        var x = mapA, y = mapB
        let e0 = mapC, d0 = mapD
        // Stem. ref: model.py MN.__init__ first layer (3x3 s2 conv, BN, hardswish).
        dispatch(.stem(mel: mel, frames: frames, output: x), count: rows)
        capture?(0, x, rows, cols, stemChannels)
        for (i, b) in blocks.enumerated() {
            // ref: block_types.py InvertedResidual.forward: block(x) (+ x).
            // Bands of output rows: expand only the input rows the band's depthwise taps reach, then the depthwise,
            // then (without SE, whose scale needs the whole map first) the projection of the band.
            let d = b.depthwise
            let orows = f32_conv_out_size(rows, kernel: d.kernel, stride: d.stride, dilation: d.dilation)
            let ocols = f32_conv_out_size(cols, kernel: d.kernel, stride: d.stride, dilation: d.dilation)
            let pad = (d.kernel - 1) / 2 * d.dilation
            let band = max(1, bandBytes / max(1, cols * d.channels * 4 * d.stride))
            let expanded = b.expand == nil ? x : e0
            let dwIn = UnsafeBufferPointer(expanded)
            var expandedRows = 0
            var oy0 = 0
            while oy0 < orows {
                let oy1 = min(orows, oy0 + band)
                if let e = b.expand {
                    let needed = min(rows, (oy1 - 1) * d.stride - pad + (d.kernel - 1) * d.dilation + 1)
                    if needed > expandedRows {
                        pointwise(e, packed: e.packed, input: x, pixels: (expandedRows * cols)..<(needed * cols),
                                  residual: nil, output: e0)
                        expandedRows = needed
                    }
                }
                dispatch(.depthwise(d, input: dwIn, rows: rows, cols: cols, output: d0, outputRows: oy0..<oy1),
                         count: oy1 - oy0)
                if b.squeeze == nil {
                    pointwise(b.project, packed: b.project.packed, input: d0,
                              pixels: (oy0 * ocols)..<(oy1 * ocols), residual: b.residual ? x : nil, output: y)
                }
                oy0 = oy1
            }
            if let s = b.squeeze {
                // ref: block_types.py SqueezeExcitation: the scale multiplies the depthwise output's channels;
                // folded here into the projection's input-channel weights instead.
                f32_se_scale_simd8(map: UnsafeBufferPointer(d0), pixels: orows * ocols, channels: s.channels,
                                   fc1: s.fc1, b1: s.b1, fc2: s.fc2, b2: s.b2, squeeze: s.squeeze,
                                   scratch: seScratch, scale: seScale)
                f32_scale_packed_conv1x1_simd8(packed: b.project.packed, cin: b.project.cin, cout: b.project.cout,
                                               scale: UnsafeBufferPointer(seScale), scaled: scaledWeights,
                                               blockWidth: b.project.wide ? 16 : 8)
                pointwise(b.project, packed: UnsafeBufferPointer(scaledWeights), input: d0,
                          pixels: 0..<(orows * ocols), residual: b.residual ? x : nil, output: y)
            }
            rows = orows; cols = ocols
            swap(&x, &y)
            capture?(i + 1, x, rows, cols, b.project.cout)
        }
        // Last conv, BN, hardswish; embedding = its global average. ref: model.py MN (features[-1], avgpool).
        pointwise(lastConv, packed: lastConv.packed, input: x, pixels: 0..<(rows * cols), residual: nil, output: y)
        capture?(blocks.count + 1, y, rows, cols, lastConv.cout)
        f32_global_average_pool_simd8(input: UnsafeBufferPointer(y), pixels: rows * cols, channels: lastConv.cout,
                                      output: embedding)
        // Head. ref: model.py MN classifier.
        var source = UnsafeBufferPointer(rebasing: embedding[0..<embeddingSize])
        for (n, h) in head.enumerated() {
            let target = n == head.count - 1 ? logits : UnsafeMutableBufferPointer(rebasing: headScratch[0..<h.nout])
            f32_linear_simd8(input: source, nin: h.nin, weights: h.weights, bias: h.bias, nout: h.nout,
                             activation: h.activation, output: target)
            source = UnsafeBufferPointer(target)
        }
    }

    /// Runs the network on a mel [melBins][frames] (row-major, as the golden `*.mel.npy`), writing `numClasses`
    /// logits and `embeddingSize` embedding values. Allocates nothing; frames must be in 1...maxFrames.
    public func run(mel: UnsafeBufferPointer<Float>, frames: Int, logits: UnsafeMutableBufferPointer<Float>,
                    embedding: UnsafeMutableBufferPointer<Float>) {
        forward(mel: mel, frames: frames, logits: logits, embedding: embedding, capture: nil)
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

    /// Runs the network and returns each `features` layer's output (stem, blocks, last conv) in C x F x T order.
    public func runCapturingFeatures(mel: [Float], frames: Int) -> [[Float]] {
        var captured: [[Float]] = []
        var logits = [Float](repeating: 0, count: numClasses)
        var embedding = [Float](repeating: 0, count: embeddingSize)
        mel.withUnsafeBufferPointer { m in
            logits.withUnsafeMutableBufferPointer { l in
                embedding.withUnsafeMutableBufferPointer { e in
                    forward(mel: m, frames: frames, logits: l, embedding: e) { _, map, rows, cols, channels in
                        var chw = [Float](repeating: 0, count: rows * cols * channels)
                        for p in 0..<(rows * cols) {
                            for c in 0..<channels { chw[c * rows * cols + p] = map[p * channels + c] }
                        }
                        captured.append(chw)
                    }
                }
            }
        }
        return captured
    }
}
