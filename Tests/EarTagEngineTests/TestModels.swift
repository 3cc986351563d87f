// Hand-built MN architectures with random weights and an independent, naive CHW forward pass for engine tests.
import Foundation
import EarTagModel
import EarTagTestSupport

/// The MN architecture EfficientAT's get_model builds for these arguments (via EarTagModel).
func makeArchitecture(width: Double, head: HeadType = .mlp, se: Bool = true, strides: [Int] = [2, 2, 2, 2],
                      numClasses: Int = 527, dilated: Bool = false) -> Architecture {
    try! Architecture.efficientAT(widthMult: width, head: head, numClasses: numClasses, channelSE: se,
                                  strides: strides, dilated: dilated)
}

/// A FloatModel for `arch` with random conv weights (He-like scale) and randomised BatchNorm statistics.
func randomModel(_ arch: Architecture, seed: UInt64 = 1) -> FloatModel {
    let shapes = arch.expectedTensorShapes()
    var rng = SeededRNG(state: seed)
    var tensors: [String: Tensor] = [:]
    for (name, shape) in shapes.sorted(by: { $0.key < $1.key }) {
        let n = shape.reduce(1, *)
        let fanIn = shape.count > 1 ? shape.dropFirst().reduce(1, *) : 1
        let data: [Float]
        if name.hasSuffix("running_var") {
            data = (0..<n).map { _ in Float.random(in: 0.5...2, using: &rng) }
        } else if name.hasSuffix("running_mean") || (shape.count == 1 && name.hasSuffix("bias")) {
            data = (0..<n).map { _ in Float.random(in: -0.2...0.2, using: &rng) }
        } else if shape.count == 1 {
            data = (0..<n).map { _ in Float.random(in: 0.6...1.4, using: &rng) }
        } else {
            let a = Float((3.0 / Double(fanIn)).squareRoot())
            data = (0..<n).map { _ in Float.random(in: -a...a, using: &rng) }
        }
        tensors[name] = Tensor(shape: shape, data: data)
    }
    return FloatModel(architecture: arch, frontend: .efficientAT, labels: [], tensors: tensors, sourceSHA256: nil,
                      name: "random")
}

/// A naive CHW forward pass straight from the unfolded state dict (BatchNorm applied as written), for parity.
/// Returns the 17 features outputs (C x F x T), the embedding and the logits.
func naiveForward(_ model: FloatModel, mel: [Float], frames: Int) -> (features: [[Float]], embedding: [Float],
                                                                       logits: [Float]) {
    let a = model.architecture, t = model.tensors, eps = Float(a.batchNormEps)
    /// A CHW feature map.
    struct Map { var c: Int; var h: Int; var w: Int; var v: [Float] }
    /// PyTorch hardswish.
    func hs(_ x: Float) -> Float { x * min(max(x + 3, 0), 6) / 6 }
    /// Block activation (nil: identity).
    func act(_ x: Float, _ k: Activation?) -> Float {
        guard let k else { return x }
        return k == .relu ? max(x, 0) : hs(x)
    }
    /// Eval-mode BatchNorm `p` then activation.
    func bn(_ m: Map, _ p: String, _ k: Activation?, eps: Float = eps) -> Map {
        var o = m
        let g = t[p + ".weight"]!.data, b = t[p + ".bias"]!.data
        let mu = t[p + ".running_mean"]!.data, v = t[p + ".running_var"]!.data
        for c in 0..<m.c {
            for i in 0..<(m.h * m.w) {
                let x = (m.v[c * m.h * m.w + i] - mu[c]) / (v[c] + eps).squareRoot() * g[c] + b[c]
                o.v[c * m.h * m.w + i] = act(x, k)
            }
        }
        return o
    }
    // Grouped conv: groups == 1 (dense) or groups == cin (depthwise).
    func conv(_ m: Map, _ name: String, k: Int, s: Int, d: Int, depthwise: Bool) -> Map {
        let w = t[name]!.data, cout = t[name]!.shape[0], pad = (k - 1) / 2 * d
        let ho = (m.h + 2 * pad - d * (k - 1) - 1) / s + 1, wo = (m.w + 2 * pad - d * (k - 1) - 1) / s + 1
        var o = Map(c: cout, h: ho, w: wo, v: [Float](repeating: 0, count: cout * ho * wo))
        let cinPer = depthwise ? 1 : m.c
        for co in 0..<cout {
            for y in 0..<ho {
                for x in 0..<wo {
                    var acc: Double = 0
                    for ci in 0..<cinPer {
                        let ic = depthwise ? co : ci
                        for ky in 0..<k {
                            let iy = y * s - pad + ky * d
                            if iy < 0 || iy >= m.h { continue }
                            for kx in 0..<k {
                                let ix = x * s - pad + kx * d
                                if ix < 0 || ix >= m.w { continue }
                                acc += Double(m.v[(ic * m.h + iy) * m.w + ix]) * Double(w[((co * cinPer + ci) * k + ky) * k + kx])
                            }
                        }
                    }
                    o.v[(co * ho + y) * wo + x] = Float(acc)
                }
            }
        }
        return o
    }
    /// PyTorch Linear `p` in double precision.
    func linear(_ x: [Float], _ p: String) -> [Float] {
        let w = t[p + ".weight"]!, b = t[p + ".bias"]!.data
        let nout = w.shape[0], nin = w.shape[1]
        return (0..<nout).map { o in
            var acc = Double(b[o])
            for i in 0..<nin { acc += Double(x[i]) * Double(w.data[o * nin + i]) }
            return Float(acc)
        }
    }
    /// Per-channel mean over F and T.
    func mean(_ m: Map) -> [Float] {
        (0..<m.c).map { c in
            var s: Double = 0
            for i in 0..<(m.h * m.w) { s += Double(m.v[c * m.h * m.w + i]) }
            return Float(s / Double(m.h * m.w))
        }
    }
    var features: [[Float]] = []
    var x = Map(c: 1, h: mel.count / frames, w: frames, v: mel)
    x = bn(conv(x, "features.0.0.weight", k: 3, s: 2, d: 1, depthwise: false), "features.0.1", .hardswish)
    features.append(x.v)
    for (i, b) in a.blocks.enumerated() {
        let base = "features.\(i + 1).block"
        var j = 0
        var y = x
        if b.hasExpand {
            y = bn(conv(y, "\(base).\(j).0.weight", k: 1, s: 1, d: 1, depthwise: false), "\(base).\(j).1", b.activation)
            j += 1
        }
        y = bn(conv(y, "\(base).\(j).0.weight", k: b.kernel, s: b.dilation > 1 ? 1 : b.stride, d: b.dilation,
                    depthwise: true), "\(base).\(j).1", b.activation)
        j += 1
        if b.seChannels != nil {
            let p = "\(base).\(j).conc_se_layers.0"
            let h = linear(mean(y), p + ".fc1").map { max($0, 0) }
            let sc = linear(h, p + ".fc2").map { 1 / (1 + exp(-$0)) }
            for c in 0..<y.c { for q in 0..<(y.h * y.w) { y.v[c * y.h * y.w + q] *= sc[c] } }
            j += 1
        }
        y = bn(conv(y, "\(base).\(j).0.weight", k: 1, s: 1, d: 1, depthwise: false), "\(base).\(j).1", nil)
        if b.hasResidual { for q in y.v.indices { y.v[q] += x.v[q] } }
        x = y
        features.append(x.v)
    }
    let last = "features.\(a.blocks.count + 1)"
    x = bn(conv(x, last + ".0.weight", k: 1, s: 1, d: 1, depthwise: false), last + ".1", .hardswish)
    features.append(x.v)
    let embedding = mean(x)
    let logits: [Float]
    switch a.head {
    case .mlp: logits = linear(linear(embedding, "classifier.2").map(hs), "classifier.5")
    case .fullyConvolutional:
        // The head's BatchNorm2d keeps PyTorch's default eps (1e-5).
        logits = mean(bn(conv(x, "classifier.0.weight", k: 1, s: 1, d: 1, depthwise: false), "classifier.1", nil,
                         eps: 1e-5))
    }
    return (features, embedding, logits)
}
