// Adam and AdamW as torch.optim implements them, and EfficientAT's learning-rate schedule.
// ref: PyTorch torch/optim/adam.py, adamw.py (single-tensor path): m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). Adam's weight decay adds wd * p to g; AdamW
// multiplies p by (1 - lr wd) first.
import Foundation

/// Adam or AdamW over a list of parameters; keeps the moment estimates.
public final class AdamOptimizer {
    /// Which weight-decay form.
    public enum Variant: String, Sendable { case adam, adamw }

    public var learningRate: Double
    public var beta1: Double, beta2: Double, eps: Double, weightDecay: Double
    public let variant: Variant
    /// Steps taken so far.
    public private(set) var step = 0
    private let parameters: [Parameter]
    private let m: [FloatStorage], v: [FloatStorage]

    /// An optimizer over `parameters` (torch defaults: betas 0.9 / 0.999, eps 1e-8).
    public init(parameters: [Parameter], variant: Variant = .adam, learningRate: Double = 1e-3,
                beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8, weightDecay: Double = 0) {
        self.parameters = parameters
        self.variant = variant
        self.learningRate = learningRate
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        m = parameters.map { FloatStorage($0.count) }
        v = parameters.map { FloatStorage($0.count) }
    }

    /// Applies one update from every parameter's current gradient.
    public func update() {
        step += 1
        let t = Double(step)
        let bc1 = 1 - Foundation.pow(beta1, t), bc2 = 1 - Foundation.pow(beta2, t)
        let stepSize = Float(learningRate / bc1), bc2Root = Float(bc2.squareRoot())
        let b1 = Float(beta1), b2 = Float(beta2), e = Float(eps), wd = Float(weightDecay), lr = Float(learningRate)
        for (k, p) in parameters.enumerated() {
            let w = p.value.pointer, g = p.grad.pointer, mk = m[k].pointer, vk = v[k].pointer
            let decay = p.decays ? wd : 0
            for i in 0..<p.count {
                var gi = g[i]
                if variant == .adam, decay != 0 { gi += decay * w[i] }
                if variant == .adamw, decay != 0 { w[i] *= 1 - lr * decay }
                mk[i] = mk[i] * b1 + (1 - b1) * gi
                vk[i] = vk[i] * b2 + (1 - b2) * gi * gi
                let denom = vk[i].squareRoot() / bc2Root + e
                w[i] -= stepSize * mk[i] / denom
            }
        }
    }

    /// Restores the step count and the moments (from a checkpoint); every parameter must be present.
    public func restore(step: Int, moments: [String: (m: [Float], v: [Float])]) throws {
        for (k, p) in parameters.enumerated() {
            guard let mv = moments[p.name], mv.m.count == p.count, mv.v.count == p.count else {
                throw StudentError.tensor("optimizer state for '\(p.name)' is missing or misshapen")
            }
            m[k].load(mv.m)
            v[k].load(mv.v)
        }
        self.step = step
    }

    /// The moment estimates by parameter name (for checkpoints).
    public func moments() -> [String: (m: [Float], v: [Float])] {
        var r: [String: (m: [Float], v: [Float])] = [:]
        for (k, p) in parameters.enumerated() { r[p.name] = (m[k].array, v[k].array) }
        return r
    }
}

/// EfficientAT's learning-rate factor per epoch: exponential warm-up times linear ramp-down.
/// ref: EfficientAT helpers/utils.py exp_warmup_linear_down(warmup, rampdown_length, start_rampdown, last_value),
/// exp_rampup (exp(-5 (1 - clip(e, 0.5, warmup) / warmup)^2) while e < warmup) and linear_rampdown.
public struct LearningRateSchedule: Sendable, Equatable {
    public var warmup: Double
    public var rampdownLength: Double
    public var startRampdown: Double
    public var lastValue: Double

    /// A schedule (epochs): warm-up 8, ramp-down from epoch 80 over 95 epochs to 0.01 unless given.
    public init(warmup: Double = 8, rampdownLength: Double = 95, startRampdown: Double = 80, lastValue: Double = 0.01) {
        self.warmup = warmup
        self.rampdownLength = rampdownLength
        self.startRampdown = startRampdown
        self.lastValue = lastValue
    }

    /// The multiplier of the base learning rate at `epoch`.
    public func factor(epoch: Double) -> Double {
        var up = 1.0
        if epoch < warmup {
            let e = min(max(epoch, 0.5), warmup)
            let phase = 1 - e / warmup
            up = Foundation.exp(-5 * phase * phase)
        }
        var down: Double
        if epoch <= startRampdown {
            down = 1
        } else if epoch - startRampdown < rampdownLength {
            down = lastValue + (1 - lastValue) * (rampdownLength - epoch + startRampdown) / rampdownLength
        } else {
            down = lastValue
        }
        return up * down
    }
}
