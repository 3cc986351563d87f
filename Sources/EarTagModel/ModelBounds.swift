// Load-time bounds on a model file's architecture and frontend metadata, and on its float tensor values, so the
// engines can prepare and run blind (setup validates, the steady state never throws). Written with the
// `model_metadata` and `engine` fuzz targets (docs/robustness.md, findings 10, 11, 15): without them a file could
// declare zero channels, blocks whose input is not the previous block's output, kernel 0 or stride 0, a squeeze wider
// than its block, or NaN weights, and the loader or engine would trap, write outside its buffers or score NaN.

extension Architecture {
    /// Largest channel count of any layer (EfficientAT width 4.0 peaks at 5120 in the mlp head).
    public static let maxChannels = 16384
    /// Largest class count.
    public static let maxClasses = 100_000
    /// Largest number of inverted residual blocks (MobileNetV3-Large has 15).
    public static let maxBlocks = 64

    /// The first structural problem of this architecture, or nil when the engines can run it: channel counts in
    /// 1...maxChannels chained block to block (stem -> block 0 -> ... -> last conv), a squeeze width no wider than
    /// its block's expanded channels (the int8 engine's SE scratch relies on it), kernel 3 or 5, stride and
    /// dilation 1 or 2, an mlp head with a hidden width, 1...maxClasses classes, a finite BatchNorm eps in (0, 1].
    // ref: EfficientAT models/mn/model.py _mobilenet_v3_conf (kernels 3/5, strides 1/2, dilation 1/2)
    public func boundsProblem() -> String? {
        /// True when `c` is a usable channel count.
        func ok(_ c: Int) -> Bool { c >= 1 && c <= Architecture.maxChannels }
        guard inputChannels == 1 else { return "inputChannels \(inputChannels) is not 1" }
        guard ok(stemChannels) else { return "stemChannels \(stemChannels) outside 1...\(Architecture.maxChannels)" }
        guard (1...Architecture.maxBlocks).contains(blocks.count) else {
            return "\(blocks.count) blocks, outside 1...\(Architecture.maxBlocks)"
        }
        var previous = stemChannels
        for (i, b) in blocks.enumerated() {
            let name = "block \(i)"
            guard [b.inputChannels, b.expandedChannels, b.outputChannels].allSatisfy(ok) else {
                return "\(name) channels \(b.inputChannels)/\(b.expandedChannels)/\(b.outputChannels) outside 1...\(Architecture.maxChannels)"
            }
            guard b.inputChannels == previous else {
                return "\(name) takes \(b.inputChannels) channels but its input has \(previous)"
            }
            // ref: block_types.py: squeeze = make_divisible(expanded // 4, 8) <= expanded (expanded >= 8 always)
            if let s = b.seChannels, !(1...b.expandedChannels).contains(s) {
                return "\(name) squeeze width \(s) outside 1...\(b.expandedChannels) (its expanded channels)"
            }
            guard b.kernel == 3 || b.kernel == 5 else { return "\(name) kernel \(b.kernel) is not 3 or 5" }
            guard b.stride == 1 || b.stride == 2 else { return "\(name) stride \(b.stride) is not 1 or 2" }
            guard b.dilation == 1 || b.dilation == 2 else { return "\(name) dilation \(b.dilation) is not 1 or 2" }
            previous = b.outputChannels
        }
        guard ok(lastConvChannels) else { return "lastConvChannels \(lastConvChannels) outside 1...\(Architecture.maxChannels)" }
        if head == .mlp {
            guard let h = headHiddenChannels, ok(h) else {
                return "mlp head hidden width \(headHiddenChannels.map(String.init) ?? "missing") outside 1...\(Architecture.maxChannels)"
            }
        }
        guard numClasses >= 1 && numClasses <= Architecture.maxClasses else {
            return "numClasses \(numClasses) outside 1...\(Architecture.maxClasses)"
        }
        guard batchNormEps.isFinite, batchNormEps > 0, batchNormEps <= 1 else {
            return "batchNormEps \(batchNormEps) outside (0, 1]"
        }
        return nil
    }
}

extension FrontendSettings {
    /// Largest mel bin count (the frontend's own limit, `LogMelFrontend.maxMels`).
    public static let maxMels = 512

    /// The first problem of these settings the engines depend on (the mel bins are the engine's input rows), or nil;
    /// the frontend checks the rest when it is built.
    public func boundsProblem() -> String? {
        guard nMels >= 1 && nMels <= FrontendSettings.maxMels else {
            return "nMels \(nMels) outside 1...\(FrontendSettings.maxMels)"
        }
        return nil
    }
}

/// The first non-finite value of a float model's tensors as an error reason (names sorted, so the message is
/// deterministic); nil when every value is finite. A negative BatchNorm variance is not refused (the model tests'
/// synthetic checkpoints hold some); with variance + eps < 0 that channel computes NaN (docs/robustness.md).
func floatTensorProblem(_ tensors: [String: Tensor]) -> String? {
    for name in tensors.keys.sorted() {
        if let v = tensors[name]!.data.first(where: { !$0.isFinite }) {
            return "tensor '\(name)' holds a non-finite value (\(v))"
        }
    }
    return nil
}
