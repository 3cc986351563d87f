// The trainable student: any EfficientAT MN configuration, parameters under the state-dict names, forward in
// training or eval mode, backward to every parameter gradient, import from and export to a FloatModel.
// ref: EfficientAT models/mn/model.py (MN.__init__ weight init, _forward_impl), block_types.py InvertedResidual.
import EarTagModel
import Foundation

/// Why a student could not be built or loaded.
public enum StudentError: Error, CustomStringConvertible, Equatable {
    /// The architecture uses something the trainer does not implement.
    case unsupported(String)
    /// A tensor of the model is missing or has the wrong shape.
    case tensor(String)
    /// A batch has the wrong size.
    case input(String)

    /// One-line message naming the culprit.
    public var description: String {
        switch self {
        case .unsupported(let m): return "unsupported student: \(m)"
        case .tensor(let m): return "model tensors: \(m)"
        case .input(let m): return "training input: \(m)"
        }
    }
}

/// One inverted residual block: layers and the buffers of the last forward/backward.
final class StudentBlock {
    let spec: BlockSpec
    let expand: PointwiseConv?, expandNorm: BatchNormAct?
    let depthwise: DepthwiseConv, depthwiseNorm: BatchNormAct
    let se: SqueezeExcite?
    let project: PointwiseConv, projectNorm: BatchNormAct
    var input = MapGeometry(batch: 0, rows: 0, cols: 0, channels: 0)
    var output = MapGeometry(batch: 0, rows: 0, cols: 0, channels: 0)
    /// Forward values: expand z/a, depthwise z/a, SE output, project z, block output.
    var ze = FloatStorage(0), ae = FloatStorage(0), zd = FloatStorage(0), ad = FloatStorage(0)
    var so = FloatStorage(0), zp = FloatStorage(0), out = FloatStorage(0)
    /// Gradients: w.r.t. the expanded map, the depthwise output, the projection z and the block input.
    var ge = FloatStorage(0), gd = FloatStorage(0), gp = FloatStorage(0), gradIn = FloatStorage(0)

    /// The block `index` (1-based features index) of `spec`.
    init(index: Int, spec: BlockSpec, eps: Double, threads: Int) {
        self.spec = spec
        let base = "features.\(index).block"
        var j = 0
        let act: TrainActivation = spec.activation == .relu ? .relu : .hardswish
        if spec.hasExpand {
            expand = PointwiseConv("\(base).\(j).0.weight", cin: spec.inputChannels, cout: spec.expandedChannels)
            expandNorm = BatchNormAct("\(base).\(j).1", channels: spec.expandedChannels, eps: eps,
                                      activation: act, threads: threads)
            j += 1
        } else {
            expand = nil; expandNorm = nil
        }
        let stride = spec.dilation > 1 ? 1 : spec.stride
        depthwise = DepthwiseConv("\(base).\(j).0.weight", channels: spec.expandedChannels, kernel: spec.kernel,
                                  stride: stride, dilation: spec.dilation, threads: threads)
        depthwiseNorm = BatchNormAct("\(base).\(j).1", channels: spec.expandedChannels, eps: eps, activation: act,
                                     threads: threads)
        j += 1
        if let s = spec.seChannels {
            se = SqueezeExcite("\(base).\(j).conc_se_layers.0", channels: spec.expandedChannels, squeeze: s)
            j += 1
        } else {
            se = nil
        }
        project = PointwiseConv("\(base).\(j).0.weight", cin: spec.expandedChannels, cout: spec.outputChannels)
        projectNorm = BatchNormAct("\(base).\(j).1", channels: spec.outputChannels, eps: eps, activation: .none,
                                   threads: threads)
    }

    /// Sizes the buffers for an input geometry (no-op when unchanged).
    func prepare(_ g: MapGeometry) {
        guard g != input else { return }
        input = g
        var e = g
        e.channels = spec.expandedChannels
        let d = depthwise.output(e)
        output = MapGeometry(batch: d.batch, rows: d.rows, cols: d.cols, channels: spec.outputChannels)
        if expand != nil { ze = FloatStorage(e.count); ae = FloatStorage(e.count); ge = FloatStorage(e.count) }
        zd = FloatStorage(d.count); ad = FloatStorage(d.count); gd = FloatStorage(d.count)
        if se != nil { so = FloatStorage(d.count) }
        zp = FloatStorage(output.count); out = FloatStorage(output.count); gp = FloatStorage(output.count)
        gradIn = FloatStorage(g.count)
    }

    /// Every parameter in state-dict order.
    var parameters: [Parameter] {
        var p: [Parameter] = []
        if let expand, let expandNorm { p += [expand.weight, expandNorm.weight, expandNorm.bias] }
        p += [depthwise.weight, depthwiseNorm.weight, depthwiseNorm.bias]
        if let se { p += [se.fc1.weight, se.fc1.bias, se.fc2.weight, se.fc2.bias] }
        p += [project.weight, projectNorm.weight, projectNorm.bias]
        return p
    }

    /// Every BatchNorm with its state-dict prefix.
    var norms: [BatchNormAct] { [expandNorm, depthwiseNorm, projectNorm].compactMap { $0 } }

    /// Expanded-map geometry.
    var expandedGeometry: MapGeometry { var e = input; e.channels = spec.expandedChannels; return e }

    /// Forward from `x` (input geometry as prepared) into `out`.
    func forward(_ x: UnsafePointer<Float>, training: Bool, parallel: Parallel, gemm: GemmRunner, timer: LayerTimer) {
        let pin = input.pixels, pout = output.pixels
        var e = x
        if let expand, let expandNorm {
            timer.measure("expand 1x1") { expand.forward(x: x, z: ze.pointer, pixels: pin, gemm: gemm) }
            timer.measure("batchnorm") {
                expandNorm.forward(z: ze.pointer, out: ae.pointer, pixels: pin, training: training, parallel: parallel)
            }
            e = UnsafePointer(ae.pointer)
        }
        timer.measure("depthwise") { depthwise.forward(x: e, input: expandedGeometry, z: zd.pointer, parallel: parallel) }
        timer.measure("batchnorm") {
            depthwiseNorm.forward(z: zd.pointer, out: ad.pointer, pixels: pout, training: training, parallel: parallel)
        }
        var p = UnsafePointer(ad.pointer)
        if let se {
            timer.measure("squeeze-excitation") {
                var g = output
                g.channels = spec.expandedChannels
                se.forward(x: ad.pointer, geometry: g, out: so.pointer, parallel: parallel)
            }
            p = UnsafePointer(so.pointer)
        }
        timer.measure("project 1x1") { project.forward(x: p, z: zp.pointer, pixels: pout, gemm: gemm) }
        timer.measure("batchnorm") {
            projectNorm.forward(z: zp.pointer, out: out.pointer, pixels: pout, training: training, parallel: parallel)
        }
        if spec.hasResidual {
            timer.measure("residual") { addInPlace(out.pointer, x, count: output.count, parallel: parallel) }
        }
    }

    /// Backward from dOut (gradient w.r.t. `out`) to every parameter and `gradIn`.
    func backward(_ x: UnsafePointer<Float>, dOut: UnsafePointer<Float>, training: Bool, parallel: Parallel,
                  gemm: GemmRunner, timer: LayerTimer) {
        let pin = input.pixels, pout = output.pixels
        timer.measure("batchnorm") {
            projectNorm.backward(z: zp.pointer, dOut: dOut, dZ: gp.pointer, pixels: pout, training: training,
                                 parallel: parallel)
        }
        let p = se != nil ? UnsafePointer(so.pointer) : UnsafePointer(ad.pointer)
        timer.measure("project 1x1") {
            project.backward(x: p, dZ: gp.pointer, dX: gd.pointer, accumulate: false, pixels: pout, gemm: gemm)
        }
        if let se {
            timer.measure("squeeze-excitation") {
                var g = output
                g.channels = spec.expandedChannels
                se.backward(x: ad.pointer, geometry: g, dOut: gd.pointer, dX: gd.pointer, parallel: parallel)
            }
        }
        timer.measure("batchnorm") {
            depthwiseNorm.backward(z: zd.pointer, dOut: gd.pointer, dZ: gd.pointer, pixels: pout, training: training,
                                   parallel: parallel)
        }
        let e = expand != nil ? UnsafePointer(ae.pointer) : x
        let dE = expand != nil ? ge.pointer : gradIn.pointer
        timer.measure("depthwise dX") {
            depthwise.backwardInput(input: expandedGeometry, dZ: gd.pointer, dX: dE, parallel: parallel)
        }
        timer.measure("depthwise dW") {
            depthwise.backwardWeight(x: e, input: expandedGeometry, dZ: gd.pointer, parallel: parallel)
        }
        if let expand, let expandNorm {
            timer.measure("batchnorm") {
                expandNorm.backward(z: ze.pointer, dOut: ge.pointer, dZ: ge.pointer, pixels: pin, training: training,
                                    parallel: parallel)
            }
            timer.measure("expand 1x1") {
                expand.backward(x: x, dZ: ge.pointer, dX: gradIn.pointer, accumulate: false, pixels: pin, gemm: gemm)
            }
        }
        if spec.hasResidual {
            timer.measure("residual") { addInPlace(gradIn.pointer, dOut, count: input.count, parallel: parallel) }
        }
    }
}

/// a += b elementwise.
func addInPlace(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int, parallel: Parallel) {
    parallel.split(count, align: 8, minimum: 4096) { _, r in
        var i = r.lowerBound
        while i + 8 <= r.upperBound { st8(a + i, ld8(a + i) + ld8(b + i)); i += 8 }
        while i < r.upperBound { a[i] += b[i]; i += 1 }
    }
}

/// A trainable EfficientAT MN network.
public final class Student {
    /// The network's configuration.
    public let architecture: Architecture
    /// Every trainable parameter in state-dict order.
    public let parameters: [Parameter]
    /// True: BatchNorm uses batch statistics and updates running statistics, dropout is active.
    public var training = true
    /// Dropout probability of the mlp head (EfficientAT's default 0.2).
    public var dropout: Float = 0.2
    /// Per-layer wall time of forward and backward, when enabled.
    public let timer = LayerTimer()
    /// The thread split used by every layer.
    public let parallel: Parallel

    let stem: StemConv, stemNorm: BatchNormAct
    let blocks: [StudentBlock]
    let last: PointwiseConv, lastNorm: BatchNormAct
    /// mlp head layers (nil for the fully convolutional head).
    let hidden: LinearLayer?, classifier: LinearLayer?
    /// Fully convolutional head layers (nil for the mlp head).
    let headConv: PointwiseConv?, headNorm: BatchNormAct?
    let gemm: GemmRunner
    /// Every BatchNorm with its state-dict prefix.
    let norms: [(String, BatchNormAct)]
    private var dropoutRandom: TrainingRandom

    // Buffers of the last forward.
    private(set) var batch = 0, mels = 0, frames = 0
    private var melInput = FloatStorage(0)
    var stemGeometry = MapGeometry(batch: 0, rows: 0, cols: 0, channels: 0)
    private var zs = FloatStorage(0), gs = FloatStorage(0)
    var stemOut = FloatStorage(0)
    private var zl = FloatStorage(0), al = FloatStorage(0), gl = FloatStorage(0)
    private var embedding = FloatStorage(0), dEmbedding = FloatStorage(0)
    private var h1 = FloatStorage(0), a1 = FloatStorage(0), mask = FloatStorage(0), dA1 = FloatStorage(0)
    private var zc = FloatStorage(0), yc = FloatStorage(0)
    /// Logits of the last forward [batch][classes].
    private(set) var logitStorage = FloatStorage(0)

    /// A student of `architecture` initialised like EfficientAT (kaiming normal fan_out convs, N(0, 0.01) linears,
    /// BatchNorm 1/0), deterministic given `seed`.
    public init(architecture a: Architecture, seed: UInt64 = 0, threads: Int = 1) throws {
        guard a.family == "mn" else { throw StudentError.unsupported("family \(a.family)") }
        guard a.inputChannels == 1 else { throw StudentError.unsupported("\(a.inputChannels) input channels") }
        guard a.seDims.allSatisfy({ $0 == "c" }) else {
            throw StudentError.unsupported("squeeze-excitation dims \(a.seDims) (only channel SE 'c' exists)")
        }
        guard a.stemChannels % 8 == 0, a.blocks.allSatisfy({ $0.expandedChannels % 8 == 0 }) else {
            throw StudentError.unsupported("channel counts must be multiples of 8 (EfficientAT's make_divisible)")
        }
        architecture = a
        parallel = Parallel(threads: threads)
        gemm = GemmRunner(parallel: parallel)
        let eps = a.batchNormEps, t = parallel.threads
        stem = StemConv(channels: a.stemChannels, threads: t)
        stemNorm = BatchNormAct("features.0.1", channels: a.stemChannels, eps: eps, activation: .hardswish, threads: t)
        blocks = a.blocks.enumerated().map { StudentBlock(index: $0.offset + 1, spec: $0.element, eps: eps, threads: t) }
        let li = a.blocks.count + 1
        let lastIn = a.blocks.last?.outputChannels ?? a.stemChannels
        last = PointwiseConv("features.\(li).0.weight", cin: lastIn, cout: a.lastConvChannels)
        lastNorm = BatchNormAct("features.\(li).1", channels: a.lastConvChannels, eps: eps, activation: .hardswish,
                                threads: t)
        var params: [Parameter] = [stem.weight, stemNorm.weight, stemNorm.bias]
        var norms: [(String, BatchNormAct)] = [("features.0.1", stemNorm)]
        for b in blocks {
            params += b.parameters
            for n in b.norms { norms.append((String(n.weight.name.dropLast(".weight".count)), n)) }
        }
        params += [last.weight, lastNorm.weight, lastNorm.bias]
        norms.append(("features.\(li).1", lastNorm))
        switch a.head {
        case .mlp:
            guard let h = a.headHiddenChannels else { throw StudentError.unsupported("mlp head without a hidden width") }
            hidden = LinearLayer("classifier.2", nin: a.lastConvChannels, nout: h)
            classifier = LinearLayer("classifier.5", nin: h, nout: a.numClasses)
            headConv = nil; headNorm = nil
            params += [hidden!.weight, hidden!.bias, classifier!.weight, classifier!.bias]
        case .fullyConvolutional:
            // ref: model.py: a plain nn.BatchNorm2d(num_classes) in the head, PyTorch's default eps 1e-5.
            headConv = PointwiseConv("classifier.0.weight", cin: a.lastConvChannels, cout: a.numClasses)
            headNorm = BatchNormAct("classifier.1", channels: a.numClasses, eps: 1e-5, activation: .none, threads: t)
            hidden = nil; classifier = nil
            params += [headConv!.weight, headNorm!.weight, headNorm!.bias]
            norms.append(("classifier.1", headNorm!))
        }
        parameters = params
        self.norms = norms
        dropoutRandom = TrainingRandom(seed: seed ^ 0xD50_D50)
        initialise(seed: seed)
    }

    /// A student holding `model`'s weights and BatchNorm statistics.
    public convenience init(model: FloatModel, seed: UInt64 = 0, threads: Int = 1) throws {
        try self.init(architecture: model.architecture, seed: seed, threads: threads)
        try load(model.tensors)
    }

    /// EfficientAT's initialisation. ref: model.py MN.__init__ ("weight initialization" loop): Conv2d kaiming
    /// normal mode fan_out (std sqrt(2 / (out_channels * k * k))), Linear N(0, 0.01) with zero bias, norms 1 / 0.
    public func initialise(seed: UInt64) {
        var rng = TrainingRandom(seed: seed)
        for p in parameters {
            var v = [Float](repeating: 0, count: p.count)
            if p.shape.count == 4 {
                let std = (2.0 / Double(p.shape[0] * p.shape[2] * p.shape[3])).squareRoot()
                for i in v.indices { v[i] = Float(rng.normal() * std) }
            } else if p.shape.count == 2 {
                for i in v.indices { v[i] = Float(rng.normal() * 0.01) }
            } else if p.name.hasSuffix(".weight") && !p.name.contains(".fc") {
                v = [Float](repeating: 1, count: p.count)  // BatchNorm gamma
            }
            p.setValues(v)
        }
        for (_, n) in norms {
            n.runningMean.zero()
            n.runningVar.load([Float](repeating: 1, count: n.channels))
        }
    }

    /// Restarts the dropout masks' random sequence (the trainer reseeds per epoch so a resumed run repeats them).
    public func reseedDropout(_ seed: UInt64) { dropoutRandom = TrainingRandom(seed: seed) }

    /// Replaces every parameter and running statistic from state-dict tensors (extra tensors are ignored).
    public func load(_ tensors: [String: Tensor]) throws {
        for p in parameters {
            guard let t = tensors[p.name] else { throw StudentError.tensor("missing '\(p.name)'") }
            guard t.shape == p.shape else {
                throw StudentError.tensor("'\(p.name)' has shape \(t.shape), expected \(p.shape)")
            }
            p.setValues(t.data)
        }
        for (prefix, n) in norms {
            for (suffix, storage) in [("running_mean", n.runningMean), ("running_var", n.runningVar)] {
                let name = "\(prefix).\(suffix)"
                guard let t = tensors[name], t.shape == [n.channels] else {
                    throw StudentError.tensor("missing or misshapen '\(name)'")
                }
                storage.load(t.data)
            }
        }
    }

    /// The full state dict (parameters and running statistics) under EfficientAT names.
    public func stateDict() -> [String: Tensor] {
        var t: [String: Tensor] = [:]
        for p in parameters { t[p.name] = Tensor(shape: p.shape, data: p.values) }
        for (prefix, n) in norms {
            t[prefix + ".running_mean"] = Tensor(shape: [n.channels], data: n.runningMean.array)
            t[prefix + ".running_var"] = Tensor(shape: [n.channels], data: n.runningVar.array)
        }
        return t
    }

    /// The gradient of every parameter from the last backward, by name.
    public func gradients() -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, $0.gradient) })
    }

    /// The model in inference form (unfolded BatchNorm) that `eartag tag` loads.
    public func exportModel(name: String, labels: [Label], frontend: FrontendSettings = .efficientAT) -> FloatModel {
        FloatModel(architecture: architecture, frontend: frontend, labels: labels, tensors: stateDict(),
                   sourceSHA256: nil, name: name)
    }

    /// Sizes every buffer for a batch shape (no-op when unchanged).
    private func prepare(batch b: Int, mels m: Int, frames f: Int) {
        guard b != batch || m != mels || f != frames else { return }
        batch = b; mels = m; frames = f
        melInput = FloatStorage(b * m * f)
        stemGeometry = stem.output(batch: b, mels: m, frames: f)
        zs = FloatStorage(stemGeometry.count); stemOut = FloatStorage(stemGeometry.count)
        gs = FloatStorage(stemGeometry.count)
        var g = stemGeometry
        for blk in blocks { blk.prepare(g); g = blk.output }
        var lg = g
        lg.channels = architecture.lastConvChannels
        zl = FloatStorage(lg.count); al = FloatStorage(lg.count); gl = FloatStorage(lg.count)
        embedding = FloatStorage(b * lg.channels); dEmbedding = FloatStorage(b * lg.channels)
        let h = architecture.headHiddenChannels ?? 0
        h1 = FloatStorage(b * h); a1 = FloatStorage(b * h); mask = FloatStorage(b * h); dA1 = FloatStorage(b * h)
        if architecture.head == .fullyConvolutional {
            zc = FloatStorage(lg.pixels * architecture.numClasses); yc = FloatStorage(lg.pixels * architecture.numClasses)
        }
        logitStorage = FloatStorage(b * architecture.numClasses)
    }

    /// Geometry of the last feature map.
    var lastGeometry: MapGeometry {
        var g = blocks.last?.output ?? stemGeometry
        g.channels = architecture.lastConvChannels
        return g
    }

    /// Forward over a batch of mels [batch][mels][frames]; returns the logits [batch][classes].
    @discardableResult
    public func forward(mels input: [Float], batch b: Int, mels m: Int, frames f: Int) throws -> [Float] {
        guard b >= 1, m >= 1, f >= 1, input.count == b * m * f else {
            throw StudentError.input("\(input.count) mel values for batch \(b) x \(m) mels x \(f) frames")
        }
        guard !training || b * ((m - 1) / 2 + 1) * ((f - 1) / 2 + 1) > 1 else {
            throw StudentError.input("training mode needs more than one value per channel")
        }
        prepare(batch: b, mels: m, frames: f)
        melInput.load(input)
        runForward()
        return logitStorage.array
    }

    /// The forward pass on `melInput`.
    private func runForward() {
        let tr = training, par = parallel
        timer.measure("stem") {
            stem.forward(mel: melInput.pointer, batch: batch, mels: mels, frames: frames, z: zs.pointer, parallel: par)
        }
        timer.measure("batchnorm") {
            stemNorm.forward(z: zs.pointer, out: stemOut.pointer, pixels: stemGeometry.pixels, training: tr, parallel: par)
        }
        var x = UnsafePointer(stemOut.pointer)
        for blk in blocks {
            blk.forward(x, training: tr, parallel: par, gemm: gemm, timer: timer)
            x = UnsafePointer(blk.out.pointer)
        }
        let lg = lastGeometry, hw = lg.rows * lg.cols
        timer.measure("last 1x1") { last.forward(x: x, z: zl.pointer, pixels: lg.pixels, gemm: gemm) }
        timer.measure("batchnorm") {
            lastNorm.forward(z: zl.pointer, out: al.pointer, pixels: lg.pixels, training: tr, parallel: par)
        }
        timer.measure("head") {
            if let hidden, let classifier {
                for s in 0..<batch {
                    channelMean(al.pointer + s * hw * lg.channels, pixels: hw, channels: lg.channels,
                                into: embedding.pointer + s * lg.channels)
                }
                hidden.forward(x: embedding.pointer, y: h1.pointer, rows: batch)
                let n = batch * hidden.nout, keep = 1 - dropout
                for i in 0..<n {
                    var mk: Float = 1
                    if tr && dropout > 0 { mk = Float(dropoutRandom.uniform()) < keep ? 1 / keep : 0 }
                    mask.pointer[i] = mk
                    a1.pointer[i] = activate(h1.pointer[i], .hardswish) * mk
                }
                classifier.forward(x: a1.pointer, y: logitStorage.pointer, rows: batch)
            } else if let headConv, let headNorm {
                let k = architecture.numClasses
                headConv.forward(x: al.pointer, z: zc.pointer, pixels: lg.pixels, gemm: gemm)
                headNorm.forward(z: zc.pointer, out: yc.pointer, pixels: lg.pixels, training: tr, parallel: par)
                for s in 0..<batch {
                    channelMean(yc.pointer + s * hw * k, pixels: hw, channels: k, into: logitStorage.pointer + s * k)
                }
            }
        }
    }

    /// Backward from dLoss/dlogits [batch][classes] of the last forward; fills every parameter's gradient.
    public func backward(logitGradient: [Float]) throws {
        let k = architecture.numClasses
        guard batch > 0, logitGradient.count == batch * k else {
            throw StudentError.input("\(logitGradient.count) logit gradients for a batch of \(batch) x \(k)")
        }
        let lg = lastGeometry, hw = lg.rows * lg.cols, c = lg.channels, tr = training, par = parallel
        timer.suffix = " (backward)"
        defer { timer.suffix = "" }
        logitGradient.withUnsafeBufferPointer { dl in
            let dLogits = dl.baseAddress!
            timer.measure("head") {
                if let hidden, let classifier {
                    classifier.backward(x: a1.pointer, dY: dLogits, dX: dA1.pointer, rows: batch)
                    for i in 0..<(batch * hidden.nout) {
                        dA1.pointer[i] = activationGradient(h1.pointer[i], dA1.pointer[i] * mask.pointer[i], .hardswish)
                    }
                    hidden.backward(x: embedding.pointer, dY: dA1.pointer, dX: dEmbedding.pointer, rows: batch)
                    let inv = 1 / Float(hw)
                    for s in 0..<batch {
                        for p in 0..<hw {
                            let o = gl.pointer + (s * hw + p) * c, d = dEmbedding.pointer + s * c
                            for j in 0..<c { o[j] = d[j] * inv }
                        }
                    }
                } else if let headConv, let headNorm {
                    let inv = 1 / Float(hw)
                    for s in 0..<batch {
                        for p in 0..<hw {
                            let o = yc.pointer + (s * hw + p) * k
                            for j in 0..<k { o[j] = dLogits[s * k + j] * inv }
                        }
                    }
                    headNorm.backward(z: zc.pointer, dOut: yc.pointer, dZ: yc.pointer, pixels: lg.pixels, training: tr,
                                      parallel: par)
                    headConv.backward(x: al.pointer, dZ: yc.pointer, dX: gl.pointer, accumulate: false,
                                      pixels: lg.pixels, gemm: gemm)
                }
            }
        }
        timer.measure("batchnorm") {
            lastNorm.backward(z: zl.pointer, dOut: gl.pointer, dZ: gl.pointer, pixels: lg.pixels, training: tr,
                              parallel: par)
        }
        let lastInput = UnsafePointer(blocks.last?.out.pointer ?? stemOut.pointer)
        // The last conv's input gradient: the last block's output gradient (or the stem's without blocks).
        let dOutLast = blocks.last.map { gradientScratch($0.output.count) } ?? gs.pointer
        timer.measure("last 1x1") {
            last.backward(x: lastInput, dZ: gl.pointer, dX: dOutLast, accumulate: false, pixels: lg.pixels, gemm: gemm)
        }
        var dOut = dOutLast
        for (i, blk) in blocks.enumerated().reversed() {
            let x = i == 0 ? UnsafePointer(stemOut.pointer) : UnsafePointer(blocks[i - 1].out.pointer)
            blk.backward(x, dOut: dOut, training: tr, parallel: par, gemm: gemm, timer: timer)
            dOut = blk.gradIn.pointer
        }
        let dStem = dOut
        timer.measure("batchnorm") {
            stemNorm.backward(z: zs.pointer, dOut: dStem, dZ: gs.pointer, pixels: stemGeometry.pixels, training: tr,
                              parallel: par)
        }
        timer.measure("stem") {
            stem.backward(mel: melInput.pointer, batch: batch, mels: mels, frames: frames, dZ: gs.pointer, parallel: par)
        }
    }

    private var scratch = FloatStorage(0)
    /// A gradient buffer of at least `count` floats owned by the student.
    private func gradientScratch(_ count: Int) -> UnsafeMutablePointer<Float> {
        if scratch.count < count { scratch = FloatStorage(count) }
        return scratch.pointer
    }
}
