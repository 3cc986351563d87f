// Post-training quantization of a float MN model to the int8 scheme of docs/quantization.md: folds BatchNorm, runs a
// float calibration forward pass over calibration mels observing every tensor that needs a quantization range,
// chooses ranges (percentile or MSE-optimal, not raw min/max), and emits a QuantizedModel.
// ref: Jacob et al. 2018 "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
// Inference" (asymmetric activations, folded zero points); Nagel et al. 2021 "A White Paper on Neural Network
// Quantization" (per-channel weights, MSE range setting); EfficientAT models/mn/block_types.py (block order).
import EarTagKernels
import EarTagModel

/// One conv or linear layer with BatchNorm folded in: weights in PyTorch layout [cout][per-output], bias [cout].
struct FoldedLayer {
    var weights: [Float]
    var bias: [Float]
    var cout: Int
    /// Weights per output channel (cin for 1x1 and linear, k*k for depthwise, 9 for the stem).
    var per: Int
}

/// Float squeeze-excitation weights (PyTorch Linear layouts).
struct FoldedSE {
    var squeeze: Int
    var fc1: [Float], b1: [Float], fc2: [Float], b2: [Float]
}

/// The whole network with BatchNorm folded, keyed by the int8 layer names of `QuantizedModel.layers`.
struct FoldedNetwork {
    var layers: [String: FoldedLayer] = [:]
    var se: [String: FoldedSE] = [:]

    /// Folds `model` exactly as FloatEngine does (double-precision scale, same epsilons).
    init(_ model: FloatModel) throws {
        let arch = model.architecture
        for (name, shape) in arch.expectedTensorShapes().sorted(by: { $0.key < $1.key }) {
            guard let t = model.tensors[name] else { throw EngineError.missingTensor(name) }
            guard t.shape == shape else { throw EngineError.wrongShape(name: name, expected: shape, actual: t.shape) }
        }
        let tensors = model.tensors
        /// conv + BN folded.
        func folded(_ conv: String, _ bn: String, eps: Double = arch.batchNormEps) -> FoldedLayer {
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
            return FoldedLayer(weights: fw, bias: fb, cout: cout, per: per)
        }
        /// A plain Linear.
        func linear(_ p: String) -> FoldedLayer {
            let w = tensors[p + ".weight"]!
            return FoldedLayer(weights: w.data, bias: tensors[p + ".bias"]!.data, cout: w.shape[0], per: w.shape[1])
        }
        layers["features.0"] = folded("features.0.0", "features.0.1")
        for (i, spec) in arch.blocks.enumerated() {
            let base = "features.\(i + 1).block", p = "features.\(i + 1)"
            var j = 0
            if spec.hasExpand { layers[p + ".expand"] = folded("\(base).\(j).0", "\(base).\(j).1"); j += 1 }
            layers[p + ".depthwise"] = folded("\(base).\(j).0", "\(base).\(j).1"); j += 1
            if let s = spec.seChannels {
                let q = "\(base).\(j).conc_se_layers.0"
                se[p] = FoldedSE(squeeze: s, fc1: tensors[q + ".fc1.weight"]!.data, b1: tensors[q + ".fc1.bias"]!.data,
                                 fc2: tensors[q + ".fc2.weight"]!.data, b2: tensors[q + ".fc2.bias"]!.data)
                j += 1
            }
            layers[p + ".project"] = folded("\(base).\(j).0", "\(base).\(j).1")
        }
        let last = arch.blocks.count + 1
        layers["features.\(last)"] = folded("features.\(last).0", "features.\(last).1")
        switch arch.head {
        case .mlp:
            layers["classifier.hidden"] = linear("classifier.2")
            layers["classifier.out"] = linear("classifier.5")
        case .fullyConvolutional:
            var l = folded("classifier.0", "classifier.1", eps: FloatEngine.fullyConvolutionalHeadEps)
            l.per = arch.lastConvChannels
            layers["classifier.out"] = l
        }
    }
}

extension FoldedNetwork {
    /// Activation-range equalization for the ReLU blocks, exact in real arithmetic: ReLU, zero padding, the
    /// depthwise conv and the SE gate all commute with a positive per-channel scale. Each channel i of a ReLU
    /// block's expand (then depthwise) output is multiplied by s_i = min(limit, max_j peak_j / peak_i) (weights and
    /// bias of the producing conv times s_i, the consumer's input weights divided by s_i, SE fc1 columns too), so all
    /// channels use the per-tensor int8 range instead of the few widest ones. Producer weights are quantized per output
    /// channel, so the scale costs them nothing; the consumer's input columns shrink, which per-channel weight scales
    /// absorb far better than the activation grid would. ref: Nagel et al. 2019, "Data-Free Quantization Through Weight
    /// Equalization and Bias Correction" (cross-layer equalization, here driven by activation ranges).
    mutating func equalize(_ arch: Architecture, peaks: [String: [Float]], limit: Float) {
        /// The scales for observed tensor `key`.
        func scales(_ key: String) -> [Float]? {
            guard let p = peaks[key], let top = p.max(), top > 0 else { return nil }
            return p.map { $0 > 0 ? min(limit, top / $0) : 1 }
        }
        for (i, b) in arch.blocks.enumerated() where b.activation == .relu {
            let p = "features.\(i + 1)"
            if b.hasExpand, let s = scales(p + ".expand.out") {
                let e = layers[p + ".expand"]!, d = layers[p + ".depthwise"]!
                for c in 0..<e.cout {
                    for k in 0..<e.per { layers[p + ".expand"]!.weights[c * e.per + k] *= s[c] }
                    layers[p + ".expand"]!.bias[c] *= s[c]
                    for k in 0..<d.per { layers[p + ".depthwise"]!.weights[c * d.per + k] /= s[c] }
                }
            }
            if let s = scales(p + ".depthwise.out") {
                let d = layers[p + ".depthwise"]!, pr = layers[p + ".project"]!
                for c in 0..<d.cout {
                    for k in 0..<d.per { layers[p + ".depthwise"]!.weights[c * d.per + k] *= s[c] }
                    layers[p + ".depthwise"]!.bias[c] *= s[c]
                    for o in 0..<pr.cout { layers[p + ".project"]!.weights[o * pr.per + c] /= s[c] }
                    if let q = se[p] { for j in 0..<q.squeeze { se[p]!.fc1[j * d.cout + c] /= s[c] } }
                }
            }
        }
    }
}

/// How a quantization range is chosen from the observed values of a tensor.
public enum RangeMethod: Sendable, Equatable {
    /// The raw observed minimum and maximum.
    case minMax
    /// The given two-sided percentile (e.g. 99.99 clips the 0.01% tails on each side).
    case percentile(Double)
    /// The clipping range minimizing the quantize-dequantize mean squared error over the observed values,
    /// searched over a grid of tail fractions.
    case mse
}

/// Settings of `Quantizer`.
public struct QuantizerOptions: Sendable {
    /// Default MSE: with equalization and bias correction it measured best on mn04_as's 801 held-out recordings
    /// (p95 of max |dp| 0.088 vs 0.115 for min/max; docs/quantization.md).
    public var rangeMethod: RangeMethod = .mse
    /// Values kept per tensor and calibration input (a strided subsample; exact min/max are always kept).
    public var samplesPerInput = 1 << 17
    /// Values kept per tensor over all calibration inputs: with many inputs each keeps fewer (at least 1024), so
    /// that memory stops growing with the calibration set (a width-0.3 model on 197 inputs: peak RSS 4.2 GB at
    /// 2^17 per input, 1.3 GB with this bound). Held-out figures of mn04_as moved by at most 0.6 points of top-1
    /// (docs/quantization.md); a bound of 2^20 moved them by up to 1.6 points.
    public var samplesPerTensor = 1 << 22
    /// Observed tensors that always get their raw min/max range (the input mel by default: clipping its loudest
    /// bins costs more than the finer step gains).
    public var minMaxKeys: Set<String> = ["input"]
    /// Activation-range equalization of the ReLU blocks (see `FoldedNetwork.equalize`); 0 disables it, else the
    /// largest per-channel scale factor applied. On mn04_as (5 reference clips) it lowered the worst max |dp| of
    /// min/max ranges from 0.196 to 0.122.
    public var equalizationLimit: Float = 16
    /// Empirical bias correction (see `Quantizer.correctBiases`): rounds of per-layer corrections; 0 disables it.
    public var biasCorrectionRounds = 1
    /// Bits of the stem output `features.0.act`: 16 (default) where the engine has 16-bit kernels for the stem and
    /// block 1 (`QuantizedModel.supportsWideStemOutput`), else 8. Its range is then the raw min/max.
    public var stemOutputBits = 16

    public init(rangeMethod: RangeMethod = .mse, samplesPerInput: Int = 1 << 17, samplesPerTensor: Int = 1 << 22,
                minMaxKeys: Set<String> = ["input"], equalizationLimit: Float = 16, biasCorrectionRounds: Int = 1,
                stemOutputBits: Int = 16) {
        self.samplesPerTensor = samplesPerTensor
        self.stemOutputBits = stemOutputBits
        self.equalizationLimit = equalizationLimit
        self.biasCorrectionRounds = biasCorrectionRounds
        self.rangeMethod = rangeMethod
        self.samplesPerInput = samplesPerInput
        self.minMaxKeys = minMaxKeys
    }
}

/// Affine int8 quantization of a tensor: real = scale * (q - zeroPoint).
public struct ActivationQuant: Sendable, Equatable {
    public var scale: Double
    public var zeroPoint: Int32

    /// The int8 (or, with `bits` 16, int16) quantization covering [lo, hi] (widened to include 0 so that 0 is exact).
    public init(lo: Double, hi: Double, bits: Int = 8) {
        precondition(bits == 8 || bits == 16)
        let l = min(lo, 0), h = max(max(hi, 0), l + 1e-6)
        let qmin = bits == 8 ? -128.0 : -32768.0, qmax = -qmin - 1
        scale = (h - l) / (qmax - qmin)
        zeroPoint = Int32(min(max((qmin - l / scale).rounded(), qmin), qmax))
    }

    public init(scale: Double, zeroPoint: Int32) {
        self.scale = scale
        self.zeroPoint = zeroPoint
    }
}

/// Collects the values of each observed tensor over the calibration inputs.
struct Observer {
    var samples: [String: [Float]] = [:]
    var lows: [String: Float] = [:]
    var highs: [String: Float] = [:]
    var cap: Int

    /// Records `values` of tensor `key`: exact extremes, and a strided subsample of at most `cap` values.
    mutating func observe(_ key: String, _ values: UnsafeBufferPointer<Float>) {
        var lo = lows[key] ?? .infinity, hi = highs[key] ?? -.infinity
        for v in values { lo = min(lo, v); hi = max(hi, v) }
        lows[key] = lo; highs[key] = hi
        let stride = max(1, (values.count + cap - 1) / cap)
        // Appended in place: taking the array out of the dictionary and storing it back copied every sample
        // gathered so far on each call.
        let picked = Swift.stride(from: 0, to: values.count, by: stride).lazy.map { values[$0] }
        samples[key, default: []].append(contentsOf: picked)
    }

    /// The range chosen for `key` by `method`.
    func range(_ key: String, _ method: RangeMethod) -> (lo: Double, hi: Double) {
        guard let raw = samples[key], !raw.isEmpty else { preconditionFailure("tensor \(key) was never observed") }
        let lo = Double(lows[key]!), hi = Double(highs[key]!)
        switch method {
        case .minMax:
            return (lo, hi)
        case .percentile(let p):
            let s = Observer.radixSorted(raw)
            return (Double(quantile(s, (100 - p) / 100)), Double(quantile(s, p / 100)))
        case .mse:
            let s = Observer.radixSorted(raw)
            let tails = [0, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
            // Evaluate on a subsample of at most 65536 values (sorted order does not matter for the MSE).
            let step = max(1, s.count / 65536)
            var best = (lo, hi), bestErr = Double.infinity
            for tl in tails {
                let l = tl == 0 ? lo : Double(quantile(s, tl))
                for th in tails {
                    let h = th == 0 ? hi : Double(quantile(s, 1 - th))
                    let q = ActivationQuant(lo: l, hi: h)
                    var err = 0.0, i = 0
                    while i < s.count {
                        let x = Double(s[i])
                        let r = q.scale * (min(max((x / q.scale).rounded() + Double(q.zeroPoint), -128), 127) - Double(q.zeroPoint))
                        err += (r - x) * (r - x)
                        i += step
                    }
                    if err < bestErr { bestErr = err; best = (l, h) }
                }
            }
            return best
        }
    }

    /// The values in ascending order, as `sorted()` gives them for non-NaN values (equal values are
    /// indistinguishable, except that -0 comes before +0; NaNs go to the ends by sign). An LSD radix sort over the
    /// order-preserving 32-bit keys, three passes of 11 bits: a range reads tens of millions of samples per tensor,
    /// where the comparison sort took most of `eartag quantize`'s time.
    static func radixSorted(_ values: [Float]) -> [Float] {
        let n = values.count
        guard n > 1 else { return values }
        // Order-preserving key: flip every bit of a negative float, only the sign bit of a positive one.
        var keys = values.map { v -> UInt32 in
            let b = v.bitPattern
            return b & 0x8000_0000 != 0 ? ~b : b | 0x8000_0000
        }
        var other = [UInt32](repeating: 0, count: n)
        keys.withUnsafeMutableBufferPointer { a in
            other.withUnsafeMutableBufferPointer { b in
                var src = a, dst = b
                var counts = [Int](repeating: 0, count: 2048)
                for shift: UInt32 in [0, 11, 22] {
                    for i in counts.indices { counts[i] = 0 }
                    for k in src { counts[Int((k >> shift) & 2047)] += 1 }
                    var total = 0
                    for i in counts.indices { let c = counts[i]; counts[i] = total; total += c }
                    for k in src {
                        let d = Int((k >> shift) & 2047)
                        dst[counts[d]] = k
                        counts[d] += 1
                    }
                    swap(&src, &dst)
                }
                // Three passes: the sorted keys are in `b`'s storage; copy them back into `a`'s.
                _ = a.update(fromContentsOf: src)
            }
        }
        return keys.map { k in Float(bitPattern: k & 0x8000_0000 != 0 ? k & 0x7FFF_FFFF : ~k) }
    }

    /// Linear-interpolated quantile of sorted values, q in 0...1.
    func quantile(_ s: [Float], _ q: Double) -> Float {
        let x = q * Double(s.count - 1)
        let i = Int(x), f = Float(x - Double(i))
        return i + 1 < s.count ? s[i] * (1 - f) + s[i + 1] * f : s[s.count - 1]
    }
}

/// Per-channel means of observed tensors (layout [pixels][channels]), accumulated over calibration inputs.
struct ChannelMeans {
    var sums: [String: [Double]] = [:]
    var counts: [String: Int] = [:]

    /// The conv layer that writes tensor `key` ("<layer>.out", "<layer>.act", "<block>.add.out"), or nil.
    static func layer(ofKey key: String) -> String? {
        if key.hasSuffix(".add.out") { return String(key.dropLast(8)) + ".project" }
        if key.hasSuffix(".se.gated") { return nil }
        if key.hasSuffix(".out") || key.hasSuffix(".act") { return String(key.dropLast(4)) }
        return nil
    }

    /// Adds the values of one input (through `transform`).
    mutating func add(_ key: String, _ values: UnsafeBufferPointer<Float>, channels: Int,
                      _ transform: (Float) -> Float = { $0 }) {
        var s = [Double](repeating: 0, count: channels)
        for i in 0..<values.count { s[i % channels] += Double(transform(values[i])) }
        add(key, sums: s, pixels: values.count / channels)
    }

    /// Adds per-channel sums over `pixels` pixels.
    mutating func add(_ key: String, sums s: [Double], pixels: Int) {
        var t = sums[key] ?? [Double](repeating: 0, count: s.count)
        for c in s.indices { t[c] += s[c] }
        sums[key] = t
        counts[key, default: 0] += pixels
    }

    /// The per-channel mean of `key`, or nil if it was never seen.
    func mean(_ key: String) -> [Double]? {
        guard let s = sums[key], let n = counts[key], n > 0 else { return nil }
        return s.map { $0 / Double(n) }
    }
}

/// Builds a `QuantizedModel` from a float model and calibration mels.
public enum Quantizer {
    /// Quantizes `model`, calibrating on `mels` (each [melBins][frames] row-major with its frame count).
    /// Activation equalization and empirical bias correction are applied as `options` say.
    public static func quantize(_ model: FloatModel, calibration mels: [(mel: [Float], frames: Int)],
                                options: QuantizerOptions = QuantizerOptions()) throws -> QuantizedModel {
        precondition(!mels.isEmpty, "calibration needs at least one mel")
        let arch = model.architecture
        let net = try equalizedNetwork(model, calibration: mels, options: options)
        var observer = Observer(cap: max(1024, min(options.samplesPerInput, options.samplesPerTensor / mels.count)))
        var means = ChannelMeans()
        for m in mels {
            _ = calibrationForward(arch: arch, net: net, melBins: model.frontend.nMels, mel: m.mel, frames: m.frames) {
                observer.observe($0, UnsafeBufferPointer($1))
                guard let l = ChannelMeans.layer(ofKey: $0), let f = net.layers[l] else { return }
                means.add($0, UnsafeBufferPointer($1), channels: f.cout)
                // Mean slope of the activation per channel: hardswish' of the pre-activation ("<layer>.out" of a
                // hardswish layer) and, for ReLU outputs, the share of positive values.
                if $0.hasSuffix(".out") {
                    means.add($0 + ".relu'", UnsafeBufferPointer($1), channels: f.cout) { $0 > 0 ? 1 : 0 }
                    means.add(l + ".act.hardswish'", UnsafeBufferPointer($1), channels: f.cout) {
                        $0 <= -3 ? 0 : $0 >= 3 ? 1 : (2 * $0 + 3) / 6
                    }
                }
            }
        }
        /// The conv layers in engine order: the tensor each writes, its input scale and the key of its activation's
        /// mean slope per channel (nil: no activation).
        var order: [(layer: String, key: String, inputScale: Double, slope: String?)] = []
        var tensors: [String: SafetensorsTensor] = [:]
        let wideStem = options.stemOutputBits == 16 && QuantizedModel.supportsWideStemOutput(arch)
        /// Stores a scale and zero point.
        func put(_ prefix: String, _ q: ActivationQuant, scale: String = "scale", zero: String = "zero_point") {
            tensors["\(prefix).\(scale)"] = SafetensorsTensor(float32: Tensor(shape: [1], data: [Float(q.scale)]))
            tensors["\(prefix).\(zero)"] = SafetensorsTensor(int32: [q.zeroPoint], shape: [1])
        }
        /// The activation quantization of observed tensor `key`.
        func quant(_ key: String) -> ActivationQuant {
            let method = options.minMaxKeys.contains(key) ? .minMax : options.rangeMethod
            let r = observer.range(key, method)
            return ActivationQuant(lo: r.lo, hi: r.hi)
        }
        /// Quantizes layer `name` reading input quantization `input`; returns its output quantization.
        func layer(_ name: String, input: ActivationQuant, hardswish: Bool, tapMajor: Bool,
                   foldZeroPoint: Bool) -> ActivationQuant? {
            let f = net.layers[name]!
            if !name.hasPrefix("classifier") {
                let residual = String(name.dropLast(8)) + ".add.out"
                if hardswish { order.append((name, name + ".act", input.scale, name + ".act.hardswish'")) }
                else if name.hasSuffix(".project") {
                    order.append((name, observer.samples[residual] != nil ? residual : name + ".out", input.scale, nil))
                } else { order.append((name, name + ".out", input.scale, name + ".out.relu'")) }
            }
            let shape = tapMajor ? [f.per, f.cout] : [f.cout, f.per]
            let wide = QuantizedModel.hasWideWeights(name, weight: shape)
            let levels = Float(wide ? QuantizedModel.maxWeight12 : QuantizedModel.maxWeight8)
            var wq = [Int16](repeating: 0, count: f.weights.count)
            var scales = [Float](repeating: 1, count: f.cout), bias = [Int32](repeating: 0, count: f.cout)
            for c in 0..<f.cout {
                var m: Float = 0
                for i in 0..<f.per { m = max(m, abs(f.weights[c * f.per + i])) }
                let s = m > 0 ? m / levels : 1
                scales[c] = s
                var sum: Int64 = 0
                for i in 0..<f.per {
                    let q = Int16(min(max((f.weights[c * f.per + i] / s).rounded(), -levels), levels))
                    sum += Int64(q)
                    if tapMajor { wq[i * f.cout + c] = q } else { wq[c * f.per + i] = q }
                }
                var b = (Double(f.bias[c]) / (input.scale * Double(s))).rounded()
                if foldZeroPoint { b -= Double(input.zeroPoint) * Double(sum) }
                bias[c] = Int32(min(max(b, -1_073_741_824), 1_073_741_824))  // s8MaxBias
            }
            tensors[name + ".weight"] = wide ? SafetensorsTensor(int16: wq, shape: shape)
                                             : SafetensorsTensor(int8: wq.map { Int8($0) }, shape: shape)
            tensors[name + ".weight_scale"] = SafetensorsTensor(float32: Tensor(shape: [f.cout], data: scales))
            tensors[name + ".bias"] = SafetensorsTensor(int32: bias, shape: [f.cout])
            if name == "classifier.out" { return nil }
            let out = quant(name + ".out")
            put(name, out, scale: "out_scale", zero: "out_zero_point")
            guard hardswish else { return out }
            let act = name == "features.0" && wideStem
                ? ActivationQuant(lo: observer.range(name + ".act", .minMax).lo,
                                  hi: observer.range(name + ".act", .minMax).hi, bits: 16)
                : quant(name + ".act")
            put(name, act, scale: "act_scale", zero: "act_zero_point")
            return act
        }

        var x = quant("input")
        put("input", x)
        x = layer("features.0", input: x, hardswish: true, tapMajor: true, foldZeroPoint: false)!
        for (i, b) in arch.blocks.enumerated() {
            let p = "features.\(i + 1)", hs = b.activation == .hardswish
            let blockInput = x
            var y = x
            if b.hasExpand { y = layer(p + ".expand", input: y, hardswish: hs, tapMajor: false, foldZeroPoint: true)! }
            y = layer(p + ".depthwise", input: y, hardswish: hs, tapMajor: true, foldZeroPoint: false)!
            if let s = net.se[p] {
                let e = b.expandedChannels
                tensors[p + ".se.fc1.weight"] = SafetensorsTensor(float32: Tensor(shape: [s.squeeze, e], data: s.fc1))
                tensors[p + ".se.fc1.bias"] = SafetensorsTensor(float32: Tensor(shape: [s.squeeze], data: s.b1))
                tensors[p + ".se.fc2.weight"] = SafetensorsTensor(float32: Tensor(shape: [e, s.squeeze], data: s.fc2))
                tensors[p + ".se.fc2.bias"] = SafetensorsTensor(float32: Tensor(shape: [e], data: s.b2))
                // The gated map gets its own range (small gates would otherwise leave few levels of the depthwise
                // output's grid); the projection reads it.
                y = quant(p + ".se.gated")
                put(p + ".se", y, scale: "out_scale", zero: "out_zero_point")
            }
            y = layer(p + ".project", input: y, hardswish: false, tapMajor: false, foldZeroPoint: true)!
            if b.hasResidual {
                let o = quant(p + ".add.out")
                put(p + ".add", o, scale: "out_scale", zero: "out_zero_point")
                y = o
            }
            _ = blockInput
            x = y
        }
        x = layer("features.\(arch.blocks.count + 1)", input: x, hardswish: true, tapMajor: false, foldZeroPoint: true)!
        let pooled = quant("pool")
        put("pool", pooled)
        x = pooled
        if arch.head == .mlp {
            x = layer("classifier.hidden", input: x, hardswish: true, tapMajor: false, foldZeroPoint: true)!
        }
        _ = layer("classifier.out", input: x, hardswish: false, tapMajor: false, foldZeroPoint: true)
        var q = QuantizedModel(architecture: arch, frontend: model.frontend, labels: model.labels, name: model.name,
                               sourceSHA256: model.sourceSHA256, tensors: tensors,
                               int16Activations: wideStem ? [QuantizedModel.wideStemOutput] : [])
        try q.validate(path: "<quantized \(model.name)>")
        for _ in 0..<options.biasCorrectionRounds {
            try correctBiases(&q, order: order, floatMeans: means, calibration: mels)
        }
        return q
    }

    /// Empirical bias correction (Nagel et al. 2019, "Data-Free Quantization Through Weight Equalization and Bias
    /// Correction", section 4.2, empirical variant): layer by layer in network order, runs the int8 engine over the
    /// calibration mels, measures each output channel's mean error against the float network's mean of the same
    /// tensor, and subtracts it, divided by the activation's mean slope on that channel, from the channel's int32 bias
    /// (in accumulator units, s_in * s_w[c]). Quantization
    /// errors that do not average out over the pixels (rounding of small weights, clipped ranges, ReLU cutting noise
    /// into a positive offset) would otherwise pile up in the global pool, where they move every logit.
    static func correctBiases(_ q: inout QuantizedModel,
                              order: [(layer: String, key: String, inputScale: Double, slope: String?)],
                              floatMeans: ChannelMeans, calibration mels: [(mel: [Float], frames: Int)]) throws {
        let maxFrames = mels.map(\.frames).max()!
        for (layer, key, inputScale, slopeKey) in order {
            guard let target = floatMeans.mean(key) else { continue }
            let slope = slopeKey.flatMap { floatMeans.mean($0) } ?? [Double](repeating: 1, count: target.count)
            let engine = try Int8Engine(model: q, maxFrames: maxFrames, referenceKernels: false)
            var got = ChannelMeans()
            engine.debugCaptureNames = [key]
            engine.debugCapture = { _, t, n, scale, zp in
                let c = target.count
                var sums = [Double](repeating: 0, count: c)
                for i in 0..<n { sums[i % c] += Double(t[i]) - Double(zp) }
                got.add(key, sums: sums.map { $0 * scale }, pixels: n / c)
            }
            for m in mels { _ = engine.run(mel: m.mel, frames: m.frames) }
            guard let measured = got.mean(key) else { continue }
            let ws = q.float(layer + ".weight_scale")
            var bias = q.int32(layer + ".bias")
            for c in bias.indices {
                let step = inputScale * Double(ws[c])
                // The error is measured after the activation; dividing by its mean slope (at least 0.1) turns it
                // into the pre-activation shift that the bias makes (one Newton step).
                let b = Double(bias[c]) - ((measured[c] - target[c]) / (max(slope[c], 0.1) * step)).rounded()
                bias[c] = Int32(min(max(b, -1_073_741_824), 1_073_741_824))  // s8MaxBias
            }
            q.tensors[layer + ".bias"] = SafetensorsTensor(int32: bias, shape: [bias.count])
        }
        try q.validate(path: "<bias-corrected \(q.name)>")
    }

    /// The folded network with activation equalization applied (when `options.equalizationLimit` > 0): the float
    /// function the quantizer calibrates and the sensitivity analysis perturbs.
    static func equalizedNetwork(_ model: FloatModel, calibration mels: [(mel: [Float], frames: Int)],
                                 options: QuantizerOptions) throws -> FoldedNetwork {
        let arch = model.architecture
        var net = try FoldedNetwork(model)
        if options.equalizationLimit > 0 {
            // First pass: per-channel maxima of the ReLU blocks' expand and depthwise outputs.
            var peaks: [String: [Float]] = [:]
            for m in mels {
                _ = calibrationForward(arch: arch, net: net, melBins: model.frontend.nMels, mel: m.mel, frames: m.frames) {
                    key, values in
                    guard key.hasSuffix(".expand.out") || key.hasSuffix(".depthwise.out"),
                          let l = net.layers[String(key.dropLast(4))] else { return }
                    var p = peaks[key] ?? [Float](repeating: 0, count: l.cout)
                    for i in 0..<values.count { p[i % l.cout] = max(p[i % l.cout], abs(values[i])) }
                    peaks[key] = p
                }
            }
            net.equalize(arch, peaks: peaks, limit: options.equalizationLimit)
        }
        return net
    }

    /// Float forward pass with scalar reference kernels over folded weights, reporting every tensor that gets a
    /// quantization range (keys: "input", "<layer>.out" = conv output before hardswish or after ReLU, "<layer>.act"
    /// = after hardswish, "<block>.se.gated" = the depthwise output times the SE gate, "<block>.add.out", "pool") to `observe`. Returns the logits (tests compare them with
    /// FloatEngine's).
    static func calibrationForward(arch: Architecture, net: FoldedNetwork, melBins: Int, mel: [Float], frames: Int,
                                   observe: (String, UnsafeMutableBufferPointer<Float>) -> Void) -> [Float] {
        /// Reports an array; the observer may change it (the sensitivity analysis fake-quantizes tensors in place).
        func see(_ k: String, _ v: inout [Float]) { v.withUnsafeMutableBufferPointer { observe(k, $0) } }
        /// Applies the activation in place, reporting the pre-/post-activation tensors.
        func activate(_ name: String, _ v: inout [Float], _ act: Activation?) {
            switch act {
            case .relu?: for i in v.indices { v[i] = max(v[i], 0) }; see(name + ".out", &v)
            case .hardswish?: see(name + ".out", &v); for i in v.indices { v[i] = f32_hardswish(v[i]) }; see(name + ".act", &v)
            case nil: see(name + ".out", &v)
            }
        }
        /// 1x1 conv / linear over `pixels`.
        func conv1x1(_ name: String, _ input: [Float], pixels: Int) -> [Float] {
            let l = net.layers[name]!
            var out = [Float](repeating: 0, count: pixels * l.cout)
            input.withUnsafeBufferPointer { i in l.weights.withUnsafeBufferPointer { w in l.bias.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer { o in
                    f32_conv1x1_reference(input: i, pixels: pixels, cin: l.per, weights: w, bias: b, cout: l.cout,
                                          activation: .none, residual: nil, output: o)
                } } } }
            return out
        }
        var mel = mel
        see("input", &mel)
        var rows = (melBins - 1) / 2 + 1, cols = (frames - 1) / 2 + 1
        let stem = net.layers["features.0"]!
        var x = [Float](repeating: 0, count: rows * cols * stem.cout)
        mel.withUnsafeBufferPointer { m in stem.weights.withUnsafeBufferPointer { w in stem.bias.withUnsafeBufferPointer { b in
            x.withUnsafeMutableBufferPointer { o in
                f32_stem3x3s2_reference(input: m, height: melBins, width: frames, weights: w, bias: b, cout: stem.cout,
                                        activation: .none, output: o)
            } } } }
        activate("features.0", &x, .hardswish)
        for (i, spec) in arch.blocks.enumerated() {
            let p = "features.\(i + 1)"
            var y = x
            if spec.hasExpand { y = conv1x1(p + ".expand", x, pixels: rows * cols); activate(p + ".expand", &y, spec.activation) }
            let d = net.layers[p + ".depthwise"]!
            let stride = spec.dilation > 1 ? 1 : spec.stride
            let orows = f32_conv_out_size(rows, kernel: spec.kernel, stride: stride, dilation: spec.dilation)
            let ocols = f32_conv_out_size(cols, kernel: spec.kernel, stride: stride, dilation: spec.dilation)
            var z = [Float](repeating: 0, count: orows * ocols * d.cout)
            y.withUnsafeBufferPointer { inp in d.weights.withUnsafeBufferPointer { w in d.bias.withUnsafeBufferPointer { b in
                z.withUnsafeMutableBufferPointer { o in
                    f32_dwconv_reference(input: inp, height: rows, width: cols, channels: d.cout, weights: w, bias: b,
                                         kernel: spec.kernel, stride: stride, dilation: spec.dilation, activation: .none,
                                         output: o)
                } } } }
            activate(p + ".depthwise", &z, spec.activation)
            if let s = net.se[p] {
                // ref: block_types.py SqueezeExcitation: mean over (F, T), fc1, ReLU, fc2, sigmoid.
                let e = d.cout, n = orows * ocols
                var pooled = [Float](repeating: 0, count: e), hidden = [Float](repeating: 0, count: s.squeeze)
                var scale = [Float](repeating: 0, count: e)
                for px in 0..<n { for c in 0..<e { pooled[c] += z[px * e + c] } }
                for c in 0..<e { pooled[c] /= Float(n) }
                for j in 0..<s.squeeze {
                    var a = s.b1[j]
                    for c in 0..<e { a += s.fc1[j * e + c] * pooled[c] }
                    hidden[j] = max(a, 0)
                }
                for c in 0..<e {
                    var a = s.b2[c]
                    for j in 0..<s.squeeze { a += s.fc2[c * s.squeeze + j] * hidden[j] }
                    scale[c] = f32_sigmoid(a)
                }
                for px in 0..<(orows * ocols) { for c in 0..<d.cout { z[px * d.cout + c] *= scale[c] } }
                see(p + ".se.gated", &z)
            }
            var o = conv1x1(p + ".project", z, pixels: orows * ocols)
            activate(p + ".project", &o, nil)
            if spec.hasResidual {
                for k in o.indices { o[k] += x[k] }
                see(p + ".add.out", &o)
            }
            x = o
            rows = orows; cols = ocols
        }
        let lastName = "features.\(arch.blocks.count + 1)"
        var last = conv1x1(lastName, x, pixels: rows * cols)
        activate(lastName, &last, .hardswish)
        let c = net.layers[lastName]!.cout
        var pooled = [Float](repeating: 0, count: c)
        for px in 0..<(rows * cols) { for ch in 0..<c { pooled[ch] += last[px * c + ch] } }
        for ch in 0..<c { pooled[ch] /= Float(rows * cols) }
        see("pool", &pooled)
        var h = pooled
        if arch.head == .mlp {
            h = conv1x1("classifier.hidden", h, pixels: 1)
            activate("classifier.hidden", &h, .hardswish)
        }
        return conv1x1("classifier.out", h, pixels: 1)
    }
}
