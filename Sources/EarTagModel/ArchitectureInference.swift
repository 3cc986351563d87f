// The MobileNetV3-Large configuration EfficientAT builds, the state-dict tensors it implies, and the inference of an
// Architecture from a state dict's tensor shapes.
// ref: EfficientAT models/mn/model.py (_mobilenet_v3_conf, MN.__init__), models/mn/block_types.py
// (InvertedResidualConfig, InvertedResidual, ConcurrentSEBlock), models/mn/utils.py (make_divisible).

/// EfficientAT / torchvision `make_divisible`: nearest multiple of `divisor`, at least `divisor`, not below 90% of v.
public func makeDivisible(_ v: Double, _ divisor: Int = 8) -> Int {
    var n = max(divisor, Int(v + Double(divisor) / 2) / divisor * divisor)
    if Double(n) < 0.9 * v { n += divisor }
    return n
}

/// One row of the MobileNetV3-Large table before the width multiplier.
/// ref: EfficientAT models/mn/model.py _mobilenet_v3_conf (inverted_residual_setting).
struct BaseBlock {
    var input: Int, kernel: Int, expanded: Int, output: Int, se: Bool, activation: Activation
    /// Which of the four `strides` entries this block takes (nil: stride 1).
    var strideSlot: Int?
    /// True for the C4 stage, which `dilated` turns into dilation 2.
    var dilatable: Bool
}

/// MobileNetV3-Large configuration, expected tensors and validation.
extension Architecture {
    /// The 15 MobileNetV3-Large blocks as EfficientAT configures them (reduced_tail = False).
    static let mobileNetV3Large: [BaseBlock] = [
        BaseBlock(input: 16, kernel: 3, expanded: 16, output: 16, se: false, activation: .relu, strideSlot: nil, dilatable: false),
        BaseBlock(input: 16, kernel: 3, expanded: 64, output: 24, se: false, activation: .relu, strideSlot: 0, dilatable: false),
        BaseBlock(input: 24, kernel: 3, expanded: 72, output: 24, se: false, activation: .relu, strideSlot: nil, dilatable: false),
        BaseBlock(input: 24, kernel: 5, expanded: 72, output: 40, se: true, activation: .relu, strideSlot: 1, dilatable: false),
        BaseBlock(input: 40, kernel: 5, expanded: 120, output: 40, se: true, activation: .relu, strideSlot: nil, dilatable: false),
        BaseBlock(input: 40, kernel: 5, expanded: 120, output: 40, se: true, activation: .relu, strideSlot: nil, dilatable: false),
        BaseBlock(input: 40, kernel: 3, expanded: 240, output: 80, se: false, activation: .hardswish, strideSlot: 2, dilatable: false),
        BaseBlock(input: 80, kernel: 3, expanded: 200, output: 80, se: false, activation: .hardswish, strideSlot: nil, dilatable: false),
        BaseBlock(input: 80, kernel: 3, expanded: 184, output: 80, se: false, activation: .hardswish, strideSlot: nil, dilatable: false),
        BaseBlock(input: 80, kernel: 3, expanded: 184, output: 80, se: false, activation: .hardswish, strideSlot: nil, dilatable: false),
        BaseBlock(input: 80, kernel: 3, expanded: 480, output: 112, se: true, activation: .hardswish, strideSlot: nil, dilatable: false),
        BaseBlock(input: 112, kernel: 3, expanded: 672, output: 112, se: true, activation: .hardswish, strideSlot: nil, dilatable: false),
        BaseBlock(input: 112, kernel: 5, expanded: 672, output: 160, se: true, activation: .hardswish, strideSlot: 3, dilatable: true),
        BaseBlock(input: 160, kernel: 5, expanded: 960, output: 160, se: true, activation: .hardswish, strideSlot: nil, dilatable: true),
        BaseBlock(input: 160, kernel: 5, expanded: 960, output: 160, se: true, activation: .hardswish, strideSlot: nil, dilatable: true),
    ]

    /// Width multipliers tried when inferring an architecture (EfficientAT's published set plus common larger ones).
    public static let knownWidthMultipliers: [Double] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
                                                         1.2, 1.4, 1.5, 1.6, 2.0, 3.0, 4.0]

    /// Builds the architecture EfficientAT's `get_model` produces for these arguments (se: channel SE on or off).
    /// ref: EfficientAT models/mn/model.py get_model / _mobilenet_v3_conf; block_types.py InvertedResidual
    /// (a dilated depthwise conv runs with stride 1; SE squeeze width make_divisible(expanded // 4, 8)).
    public static func efficientAT(widthMult w: Double, head: HeadType, numClasses: Int, channelSE: Bool,
                                   strides: [Int] = [2, 2, 2, 2], dilated: Bool = false) throws -> Architecture {
        guard strides.count == 4, strides.allSatisfy({ $0 == 1 || $0 == 2 }) else {
            throw ModelError.invalidArgument("strides must be four values, each 1 or 2 (got \(strides))")
        }
        guard numClasses > 0, w > 0 else { throw ModelError.invalidArgument("width and class count must be positive") }
        let adjust = { (c: Int) in makeDivisible(Double(c) * w) }
        var blocks: [BlockSpec] = []
        for base in mobileNetV3Large {
            let expanded = adjust(base.expanded)
            let nominalStride = base.strideSlot.map { strides[$0] } ?? 1
            let dilation = dilated && base.dilatable ? 2 : 1
            let spec = BlockSpec(kernel: base.kernel, inputChannels: adjust(base.input), expandedChannels: expanded,
                                 outputChannels: adjust(base.output),
                                 seChannels: base.se && channelSE ? makeDivisible(Double(expanded / 4)) : nil,
                                 activation: base.activation, stride: dilation > 1 ? 1 : nominalStride,
                                 dilation: dilation)
            // EfficientAT decides the residual on the nominal stride; the two only differ in this case.
            if dilation > 1, nominalStride == 2, spec.inputChannels == spec.outputChannels {
                throw ModelError.invalidArgument("dilated with stride 2 on a block with equal in/out channels is not supported")
            }
            blocks.append(spec)
        }
        let last = 6 * blocks[blocks.count - 1].outputChannels
        return Architecture(widthMult: w, stemChannels: blocks[0].inputChannels, blocks: blocks,
                            lastConvChannels: last, head: head,
                            headHiddenChannels: head == .mlp ? adjust(1280) : nil, numClasses: numClasses,
                            seDims: channelSE ? ["c"] : [], strides: strides, dilated: dilated)
    }

    /// Every state-dict tensor the engine needs, by EfficientAT name, with its shape (`num_batches_tracked` excluded).
    /// ref: EfficientAT models/mn/model.py MN.__init__ (features / classifier layout), block_types.py InvertedResidual.
    public func expectedTensorShapes() -> [String: [Int]] {
        var t: [String: [Int]] = [:]
        /// Adds the four BatchNorm tensors of `prefix`.
        func batchNorm(_ prefix: String, _ c: Int) {
            for n in ["weight", "bias", "running_mean", "running_var"] { t["\(prefix).\(n)"] = [c] }
        }
        t["features.0.0.weight"] = [stemChannels, inputChannels, 3, 3]
        batchNorm("features.0.1", stemChannels)
        for (i, b) in blocks.enumerated() {
            let p = "features.\(i + 1).block"
            var j = 0
            if b.hasExpand {
                t["\(p).\(j).0.weight"] = [b.expandedChannels, b.inputChannels, 1, 1]
                batchNorm("\(p).\(j).1", b.expandedChannels)
                j += 1
            }
            t["\(p).\(j).0.weight"] = [b.expandedChannels, 1, b.kernel, b.kernel]
            batchNorm("\(p).\(j).1", b.expandedChannels)
            j += 1
            if let s = b.seChannels {
                let se = "\(p).\(j).conc_se_layers.0"
                t["\(se).fc1.weight"] = [s, b.expandedChannels]
                t["\(se).fc1.bias"] = [s]
                t["\(se).fc2.weight"] = [b.expandedChannels, s]
                t["\(se).fc2.bias"] = [b.expandedChannels]
                j += 1
            }
            t["\(p).\(j).0.weight"] = [b.outputChannels, b.expandedChannels, 1, 1]
            batchNorm("\(p).\(j).1", b.outputChannels)
        }
        let lastIndex = blocks.count + 1
        t["features.\(lastIndex).0.weight"] = [lastConvChannels, blocks.last?.outputChannels ?? stemChannels, 1, 1]
        batchNorm("features.\(lastIndex).1", lastConvChannels)
        switch head {
        case .mlp:
            let h = headHiddenChannels ?? 0
            t["classifier.2.weight"] = [h, lastConvChannels]
            t["classifier.2.bias"] = [h]
            t["classifier.5.weight"] = [numClasses, h]
            t["classifier.5.bias"] = [numClasses]
        case .fullyConvolutional:
            t["classifier.0.weight"] = [numClasses, lastConvChannels, 1, 1]
            batchNorm("classifier.1", numClasses)
        }
        return t
    }

    /// Checks that `tensors` holds exactly the tensors this architecture needs, with the right shapes.
    /// `path` names the file in errors; names are reported in sorted order so errors are deterministic.
    public func validate(tensorShapes: [String: [Int]], path: String) throws {
        let expected = expectedTensorShapes()
        for name in expected.keys.sorted() {
            guard let shape = tensorShapes[name] else { throw ModelError.missingTensor(path: path, tensor: name) }
            if shape != expected[name]! {
                throw ModelError.tensorShape(path: path, tensor: name, expected: expected[name]!, actual: shape)
            }
        }
        for name in tensorShapes.keys.sorted() where expected[name] == nil {
            throw ModelError.unexpectedTensor(path: path, tensor: name)
        }
    }
}

/// Infers an MN architecture from state-dict tensor shapes.
enum ArchitectureInference {
    /// Key fragments that only DyMN state dicts contain.
    /// ref: EfficientAT models/dymn/model.py (in_c, layers, out_c) and dy_block.py (context_gen, dyconv, dyrelu).
    static func looksLikeDyMN(_ names: some Sequence<String>) -> Bool {
        names.contains { n in
            n.hasPrefix("in_c.") || n.hasPrefix("layers.") || n.hasPrefix("out_c.")
                || ["context_gen", "dyconv", "dyrelu", "dy_block", "residual_context"].contains { n.contains($0) }
        }
    }

    /// Reads the per-block structure from shapes, then finds the width multiplier whose configuration reproduces it.
    static func infer(shapes: [String: [Int]], path: String, strides: [Int], dilated: Bool) throws -> Architecture {
        /// Inference error helper.
        func fail(_ reason: String) -> ModelError { .architecture(path: path, reason: reason) }
        /// Shape of a required tensor.
        func shape(_ name: String) throws -> [Int] {
            guard let s = shapes[name] else { throw ModelError.missingTensor(path: path, tensor: name) }
            return s
        }
        if looksLikeDyMN(shapes.keys) { throw ModelError.dymnNotSupported(path: path) }

        let stem = try shape("features.0.0.weight")
        guard stem.count == 4, stem[2] == 3, stem[3] == 3 else {
            throw fail("features.0.0.weight has shape \(stem), expected [C, 1, 3, 3]")
        }
        // Structure read from the state dict: per block (kernel, in, expanded, out, se width).
        var observed: [(kernel: Int, input: Int, expanded: Int, output: Int, se: Int?)] = []
        var channels = stem[0]
        var blockIndex = 1
        while shapes["features.\(blockIndex).block.0.0.weight"] != nil {
            let p = "features.\(blockIndex).block"
            var j = 0
            var w = try shape("\(p).0.0.weight")
            guard w.count == 4 else { throw fail("\(p).0.0.weight has shape \(w), expected a 4-D conv weight") }
            var expanded = channels
            if w[2] == 1, w[3] == 1 { // a 1x1 first conv is the expand conv; depthwise kernels are 3 or 5
                expanded = w[0]
                j = 1
                w = try shape("\(p).1.0.weight")
            }
            guard w.count == 4, w[1] == 1, w[2] == w[3], w[2] % 2 == 1, w[0] == expanded else {
                throw fail("\(p).\(j).0.weight has shape \(w), expected a depthwise [\(expanded), 1, k, k] conv")
            }
            let kernel = w[2]
            j += 1
            var se: Int?
            if let fc1 = shapes["\(p).\(j).conc_se_layers.0.fc1.weight"] {
                guard fc1.count == 2 else { throw fail("\(p).\(j).conc_se_layers.0.fc1.weight has shape \(fc1)") }
                if shapes["\(p).\(j).conc_se_layers.1.fc1.weight"] != nil {
                    throw fail("\(p).\(j) has several squeeze-excitation dims; only channel SE ('c') is supported")
                }
                se = fc1[0]
                j += 1
            }
            let proj = try shape("\(p).\(j).0.weight")
            guard proj.count == 4, proj[1] == expanded, proj[2] == 1, proj[3] == 1 else {
                throw fail("\(p).\(j).0.weight has shape \(proj), expected a [out, \(expanded), 1, 1] projection")
            }
            observed.append((kernel, channels, expanded, proj[0], se))
            channels = proj[0]
            blockIndex += 1
        }
        guard observed.count == Architecture.mobileNetV3Large.count else {
            throw fail("found \(observed.count) inverted residual blocks, expected \(Architecture.mobileNetV3Large.count)")
        }
        let head: HeadType
        let numClasses: Int
        if let c = shapes["classifier.5.weight"] {
            head = .mlp
            guard c.count == 2 else { throw fail("classifier.5.weight has shape \(c)") }
            numClasses = c[0]
        } else if let c = shapes["classifier.0.weight"] {
            head = .fullyConvolutional
            guard c.count == 4 else { throw fail("classifier.0.weight has shape \(c)") }
            numClasses = c[0]
        } else {
            throw fail("no classifier.5.weight (mlp head) nor classifier.0.weight (fully convolutional head)")
        }
        guard numClasses > 0 else { throw fail("the classifier has no classes") }
        let channelSE = observed.contains { $0.se != nil }

        // The width whose configuration reproduces every tensor shape; otherwise the closest one names the culprit.
        var best: (arch: Architecture, mismatches: Int)?
        for w in Architecture.knownWidthMultipliers {
            let arch = try Architecture.efficientAT(widthMult: w, head: head, numClasses: numClasses,
                                                    channelSE: channelSE, strides: strides, dilated: dilated)
            let expected = arch.expectedTensorShapes()
            let mismatches = expected.filter { shapes[$0.key] != $0.value }.count
                + shapes.keys.filter { expected[$0] == nil }.count
            if mismatches == 0 { return arch }
            if mismatches < best?.mismatches ?? Int.max { best = (arch, mismatches) }
        }
        if let best, best.mismatches <= 3 { try best.arch.validate(tensorShapes: shapes, path: path) }
        let summary = observed.map { "\($0.expanded)/\($0.output)" }.joined(separator: " ")
        throw fail("channel counts (stem \(stem[0]), blocks expanded/out \(summary)) match no EfficientAT width "
                   + "multiplier in \(Architecture.knownWidthMultipliers)")
    }
}
