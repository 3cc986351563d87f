// The distillation loss: lambda * BCE(logits, labels) + (1 - lambda) * BCE(logits, sigmoid(teacher / T)), both
// BCE-with-logits means over every element; no labels -> pure distillation, no teacher -> supervised.
// ref: EfficientAT ex_audioset.py (kd_lambda, temperature; BCEWithLogitsLoss on labels and on
// torch.sigmoid(teacher_preds / temperature)); PyTorch binary_cross_entropy_with_logits.
import Foundation

/// The loss settings.
public struct DistillationLoss: Sendable, Equatable {
    /// Weight of the hard-label term (EfficientAT's `kd_lambda`, 0.1).
    public var labelWeight: Double = 0.1
    /// Temperature applied to the teacher's logits before the sigmoid (1).
    public var temperature: Double = 1

    /// EfficientAT's defaults.
    public init(labelWeight: Double = 0.1, temperature: Double = 1) {
        self.labelWeight = labelWeight
        self.temperature = temperature
    }

    /// The loss terms of one batch and the gradient w.r.t. the logits.
    public struct Result: Sendable {
        /// BCE against the hard labels (nil without labels).
        public var labelLoss: Double?
        /// BCE against sigmoid(teacher / T) (nil without a teacher).
        public var distillationLoss: Double?
        /// The combined loss.
        public var loss: Double
        /// dLoss / dlogits, same layout as the logits.
        public var gradient: [Float]
    }

    /// BCE-with-logits mean of `logits` against `targets` (same length), computed stably in double.
    public static func bceWithLogits(_ logits: [Float], _ targets: [Float]) -> Double {
        precondition(logits.count == targets.count && !logits.isEmpty)
        var s = 0.0
        for i in logits.indices {
            let x = Double(logits[i]), t = Double(targets[i])
            s += max(x, 0) - x * t + Foundation.log1p(Foundation.exp(-abs(x)))
        }
        return s / Double(logits.count)
    }

    /// sigmoid(teacher / T): the distillation targets.
    public func teacherProbabilities(_ teacherLogits: [Float]) -> [Float] {
        teacherLogits.map { Float(1 / (1 + Foundation.exp(-Double($0) / temperature))) }
    }

    /// Loss and gradient. At least one of labels and teacher logits must be given; both have the logits' length.
    public func evaluate(logits: [Float], labels: [Float]?, teacherLogits: [Float]?) throws -> Result {
        try evaluate(logits: logits, labels: labels, teacherProbabilities: teacherLogits.map(teacherProbabilities))
    }

    /// Loss and gradient from distillation targets already through sigmoid(teacher / T) (mixup mixes those).
    public func evaluate(logits: [Float], labels: [Float]?, teacherProbabilities soft: [Float]?) throws -> Result {
        let n = logits.count
        guard labels != nil || soft != nil else {
            throw StudentError.input("a batch needs labels, teacher logits or both")
        }
        if let labels, labels.count != n { throw StudentError.input("\(labels.count) labels for \(n) logits") }
        if let soft, soft.count != n { throw StudentError.input("\(soft.count) teacher values for \(n) logits") }
        // Weights of the two terms: both present -> lambda, 1 - lambda; one alone -> 1.
        let wl = labels == nil ? 0 : (soft == nil ? 1 : labelWeight)
        let wk = soft == nil ? 0 : 1 - wl
        let labelLoss = labels.map { Self.bceWithLogits(logits, $0) }
        let kdLoss = soft.map { Self.bceWithLogits(logits, $0) }
        let loss = wl * (labelLoss ?? 0) + wk * (kdLoss ?? 0)
        // d/dx BCE(x, t) = sigmoid(x) - t; the mean divides by n.
        var g = [Float](repeating: 0, count: n)
        for i in 0..<n {
            let sig = 1 / (1 + Foundation.exp(-Double(logits[i])))
            let target = wl * Double(labels?[i] ?? 0) + wk * Double(soft?[i] ?? 0)
            g[i] = Float((sig - target) / Double(n))
        }
        return Result(labelLoss: labelLoss, distillationLoss: kdLoss, loss: loss, gradient: g)
    }
}
