// One optimisation step on a batch of waveforms (augmented frontend, mixup, forward, loss, backward, Adam),
// and the synthetic-input throughput benchmark built on it.
import EarTagModel
import Foundation

/// Runs training steps for a student: the part of a training loop that touches numbers.
public final class TrainingStepRunner {
    public let student: Student
    public let optimizer: AdamOptimizer
    public let frontend: TrainingFrontend
    public var loss: DistillationLoss
    private var rng: TrainingRandom

    /// A runner; `seed` fixes every augmentation draw.
    public init(student: Student, optimizer: AdamOptimizer, frontend: TrainingFrontend,
                loss: DistillationLoss = DistillationLoss(), seed: UInt64 = 0) {
        self.student = student
        self.optimizer = optimizer
        self.frontend = frontend
        self.loss = loss
        rng = TrainingRandom(seed: seed)
    }

    /// Restarts the augmentation draws from `seed` (the trainer reseeds per epoch so a resumed run repeats them).
    public func reseed(_ seed: UInt64) { rng = TrainingRandom(seed: seed) }

    /// Log-mels [batch][mels][frames] of equally long waveforms, computed in parallel (training: augmented).
    public func mels(_ waveforms: [[Float]], training: Bool) throws -> (data: [Float], frames: Int) {
        guard let first = waveforms.first, waveforms.allSatisfy({ $0.count == first.count }) else {
            throw StudentError.input("a batch needs one or more waveforms of equal length")
        }
        let bins = frontend.settings.nMels, frames = frontend.frames(samples: first.count), per = bins * frames
        let seeds = waveforms.map { _ in rng.next() }
        var out = [Float](repeating: 0, count: waveforms.count * per)
        var failure: Error?
        let lock = NSLock()
        let fe = frontend
        out.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            let parts = min(student.parallel.threads, waveforms.count)
            Parallel(threads: parts).split(waveforms.count) { _, clips in
                for c in clips {
                    var r = TrainingRandom(seed: seeds[c])
                    do {
                        let m = try fe.mel(waveforms[c], training: training, rng: &r)
                        m.withUnsafeBufferPointer { (base + c * per).update(from: $0.baseAddress!, count: per) }
                    } catch {
                        lock.lock(); failure = error; lock.unlock()
                    }
                }
            }
        }
        if let failure { throw failure }
        return (out, frames)
    }

    /// One step: frontend, mixup (inputs and targets), forward, loss, backward, optimizer update.
    /// `labels` and `teacherLogits` are one row per waveform (either may be nil, not both).
    @discardableResult
    public func step(waveforms: [[Float]], labels: [[Float]]?, teacherLogits: [[Float]]?) throws
        -> DistillationLoss.Result {
        let b = waveforms.count, k = student.architecture.numClasses
        let timer = student.timer
        var (x, frames) = try timer.measure("frontend") { try mels(waveforms, training: true) }
        var y = labels.map { Array($0.joined()) }
        var soft = teacherLogits.map { loss.teacherProbabilities(Array($0.joined())) }
        if let y, y.count != b * k { throw StudentError.input("labels: \(y.count) values for \(b) x \(k)") }
        if let soft, soft.count != b * k { throw StudentError.input("teacher logits: \(soft.count) values for \(b) x \(k)") }
        let alpha = frontend.augmentation.mixupAlpha
        if alpha > 0, b > 1 {
            timer.measure("mixup") {
                let (lambda, partner) = Mixup.draw(batch: b, alpha: alpha, rng: &rng)
                Mixup.apply(&x, width: x.count / b, lambda: lambda, partner: partner)
                if y != nil { Mixup.apply(&y!, width: k, lambda: lambda, partner: partner) }
                if soft != nil { Mixup.apply(&soft!, width: k, lambda: lambda, partner: partner) }
            }
        }
        student.training = true
        let logits = try student.forward(mels: x, batch: b, mels: frontend.settings.nMels, frames: frames)
        let result = try timer.measure("loss") { try loss.evaluate(logits: logits, labels: y, teacherProbabilities: soft) }
        try student.backward(logitGradient: result.gradient)
        timer.measure("optimizer") { optimizer.update() }
        return result
    }
}

/// Training throughput on synthetic 10 s clips.
public enum TrainingBenchmark {
    /// What one benchmark run measured.
    public struct Result: Sendable {
        public var width: Double, batch: Int, steps: Int, threads: Int, clipSeconds: Double
        /// batch x steps / wall time of the timed steps.
        public var clipsPerSecond: Double
        /// Median wall time of one step.
        public var medianStepSeconds: Double
        /// Per-label wall time per step (milliseconds), in first-seen order.
        public var layerMilliseconds: [(String, Double)]
    }

    /// Trains a width-`width` mlp student (527 classes, channel SE) for `steps` timed steps after one warm-up step.
    public static func run(width: Double, batch: Int, steps: Int, threads: Int, clipSeconds: Double = 10,
                           seed: UInt64 = 1) throws -> Result {
        let arch = try Architecture.efficientAT(widthMult: width, head: .mlp, numClasses: 527, channelSE: true)
        let student = try Student(architecture: arch, seed: seed, threads: threads)
        let runner = TrainingStepRunner(student: student, optimizer: AdamOptimizer(parameters: student.parameters),
                                        frontend: try TrainingFrontend(), seed: seed)
        var rng = TrainingRandom(seed: seed ^ 0xBE4C)
        let samples = Int(clipSeconds * 32000)
        let waves = (0..<batch).map { _ in (0..<samples).map { _ in Float(rng.normal() * 0.1) } }
        let teacher = (0..<batch).map { _ in (0..<527).map { _ in Float(rng.normal() * 2 - 4) } }
        let labels = (0..<batch).map { _ in (0..<527).map { _ in rng.uniform() < 0.01 ? Float(1) : 0 } }
        try runner.step(waveforms: waves, labels: labels, teacherLogits: teacher)  // warm-up: buffers, pages
        student.timer.reset()
        student.timer.enabled = true
        var times: [Double] = []
        for _ in 0..<steps {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try runner.step(waveforms: waves, labels: labels, teacherLogits: teacher)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        student.timer.enabled = false
        let total = times.reduce(0, +)
        let sorted = times.sorted()
        let split = student.timer.order.map { ($0, Double(student.timer.nanoseconds[$0]!) / 1e6 / Double(steps)) }
        return Result(width: width, batch: batch, steps: steps, threads: student.parallel.threads,
                      clipSeconds: clipSeconds, clipsPerSecond: Double(batch * steps) / total,
                      medianStepSeconds: sorted[sorted.count / 2], layerMilliseconds: split)
    }
}
