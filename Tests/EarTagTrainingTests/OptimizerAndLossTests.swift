// Matrix products, loss, optimizers, learning-rate schedule, augmentation and mixup of the trainer.
import EarTagModel
import XCTest
@testable import EarTagTraining

final class OptimizerAndLossTests: XCTestCase {
    /// The SIMD product equals the reference for plain and transposed A, tails of every size, accumulate on/off,
    /// split by rows and by depth.
    func testGemmMatchesReference() {
        let runner = GemmRunner(parallel: Parallel(threads: 2))
        for (m, n, k) in [(1, 1, 1), (7, 9, 3), (13, 40, 33), (64, 72, 600), (5, 527, 17), (130, 24, 1100)] {
            for transposed in [false, true] {
                for accumulate in [false, true] {
                    let a = randomFloats(m * k, seed: UInt64(m * 31 + k)), b = randomFloats(k * n, seed: UInt64(n))
                    let c0 = randomFloats(m * n, seed: 99)
                    var ref = c0, rows = c0, depth = c0
                    a.withUnsafeBufferPointer { ap in
                        b.withUnsafeBufferPointer { bp in
                            func ops(_ c: UnsafeMutablePointer<Float>) -> GemmOperands {
                                GemmOperands(m: m, n: n, k: k, a: ap.baseAddress!, am: transposed ? 1 : k,
                                             ak: transposed ? m : 1, b: bp.baseAddress!, ldb: n, c: c, ldc: n)
                            }
                            ref.withUnsafeMutableBufferPointer { gemmReference(ops($0.baseAddress!), accumulate: accumulate) }
                            rows.withUnsafeMutableBufferPointer { runner.rowsSplit(ops($0.baseAddress!), accumulate: accumulate) }
                            depth.withUnsafeMutableBufferPointer { runner.depthSplit(ops($0.baseAddress!), accumulate: accumulate) }
                        }
                    }
                    let tol = Float(1e-5) * Float(k).squareRoot() * 4
                    XCTAssertLessThan(maxDifference(ref, rows), tol, "rows m\(m) n\(n) k\(k) t\(transposed) acc \(accumulate)")
                    XCTAssertLessThan(maxDifference(ref, depth), tol, "depth m\(m) n\(n) k\(k) t\(transposed) acc \(accumulate)")
                }
            }
        }
    }

    /// Largest absolute difference.
    func maxDifference(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) } }

    /// The loss mixes the two terms with lambda, falls back to one term alone, and its gradient matches
    /// finite differences.
    func testDistillationLoss() throws {
        let logits: [Float] = [-3, -0.5, 0, 2, 8, -20]
        let labels: [Float] = [0, 1, 0, 1, 1, 0]
        let teacher: [Float] = [-2, 1, -1, 3, 5, -9]
        let loss = DistillationLoss(labelWeight: 0.1, temperature: 2)
        let both = try loss.evaluate(logits: logits, labels: labels, teacherLogits: teacher)
        let soft = teacher.map { Float(1 / (1 + exp(-Double($0) / 2))) }
        XCTAssertEqual(both.loss, 0.1 * both.labelLoss! + 0.9 * both.distillationLoss!, accuracy: 1e-12)
        XCTAssertEqual(both.distillationLoss!, DistillationLoss.bceWithLogits(logits, soft), accuracy: 1e-12)
        // BCE(x, t) by its definition, -t log s - (1 - t) log(1 - s), for moderate logits.
        let x = 0.7, t = 0.3, s = 1 / (1 + exp(-x))
        XCTAssertEqual(DistillationLoss.bceWithLogits([Float(x)], [Float(t)]), -t * log(s) - (1 - t) * log(1 - s),
                       accuracy: 1e-6)
        let supervised = try loss.evaluate(logits: logits, labels: labels, teacherLogits: nil)
        XCTAssertNil(supervised.distillationLoss)
        XCTAssertEqual(supervised.loss, supervised.labelLoss!, accuracy: 1e-12)
        let distil = try loss.evaluate(logits: logits, labels: nil, teacherLogits: teacher)
        XCTAssertEqual(distil.loss, distil.distillationLoss!, accuracy: 1e-12)
        XCTAssertThrowsError(try loss.evaluate(logits: logits, labels: nil, teacherLogits: nil))
        XCTAssertThrowsError(try loss.evaluate(logits: logits, labels: [1], teacherLogits: nil))
        for i in logits.indices {
            var up = logits, down = logits
            up[i] += 1e-2; down[i] -= 1e-2
            let fd = (try loss.evaluate(logits: up, labels: labels, teacherLogits: teacher).loss
                      - loss.evaluate(logits: down, labels: labels, teacherLogits: teacher).loss) / 2e-2
            XCTAssertEqual(Double(both.gradient[i]), fd, accuracy: 1e-5, "dLoss/dlogit \(i)")
        }
    }

    /// Adam's first steps by hand (bias correction), Adam's L2 decay vs AdamW's decoupled decay.
    func testAdamAndAdamW() {
        let p = Parameter("w", [2])
        p.setValues([1, -2])
        p.grad.load([0.5, -0.25])
        let adam = AdamOptimizer(parameters: [p], learningRate: 0.1)
        adam.update()
        // Step 1: m_hat = g, v_hat = g^2 -> update lr * g / (|g| + eps) = lr * sign(g).
        XCTAssertEqual(p.values[0], 0.9, accuracy: 1e-6)
        XCTAssertEqual(p.values[1], -1.9, accuracy: 1e-6)
        p.grad.load([0.5, 0.25])
        adam.update()
        // Step 2, element 1: m = 0.9 * -0.025 + 0.1 * 0.25 = 0.0025 (raw), v = 0.999 * 6.25e-5 * 0.001... by formula:
        let m = 0.9 * (0.1 * -0.25) + 0.1 * 0.25, v = 0.999 * (0.001 * 0.0625) + 0.001 * 0.0625
        let expected = -1.9 - 0.1 / (1 - 0.81) * m / (v.squareRoot() / (1 - 0.998001).squareRoot() + 1e-8)
        XCTAssertEqual(Double(p.values[1]), expected, accuracy: 1e-6)

        let a = Parameter("a", [1]), b = Parameter("b", [1])
        a.setValues([2]); b.setValues([2])
        a.grad.load([0]); b.grad.load([0])
        let l2 = AdamOptimizer(parameters: [a], variant: .adam, learningRate: 0.01, weightDecay: 0.5)
        let decoupled = AdamOptimizer(parameters: [b], variant: .adamw, learningRate: 0.01, weightDecay: 0.5)
        l2.update(); decoupled.update()
        XCTAssertEqual(a.values[0], 2 - 0.01, accuracy: 1e-6)  // g = 0.5 * 2 -> a signed step of lr
        XCTAssertEqual(b.values[0], 2 * (1 - 0.01 * 0.5), accuracy: 1e-6)  // only the decay, no gradient
    }

    /// exp_warmup_linear_down at its landmarks.
    func testLearningRateSchedule() {
        let s = LearningRateSchedule(warmup: 4, rampdownLength: 10, startRampdown: 6, lastValue: 0.1)
        XCTAssertEqual(s.factor(epoch: 0), exp(-5 * 0.875 * 0.875), accuracy: 1e-12)  // clipped to 0.5
        XCTAssertEqual(s.factor(epoch: 2), exp(-5 * 0.25), accuracy: 1e-12)
        XCTAssertEqual(s.factor(epoch: 4), 1, accuracy: 1e-12)
        XCTAssertEqual(s.factor(epoch: 6), 1, accuracy: 1e-12)
        XCTAssertEqual(s.factor(epoch: 11), 0.1 + 0.9 * 0.5, accuracy: 1e-12)
        XCTAssertEqual(s.factor(epoch: 16), 0.1, accuracy: 1e-12)
        XCTAssertEqual(s.factor(epoch: 100), 0.1, accuracy: 1e-12)
    }

    /// The training frontend is deterministic per seed, varies across seeds, masks with the normalised zero,
    /// and equals the plain frontend with augmentation off.
    func testAugmentationIsSeededAndMasks() throws {
        let wave = randomFloats(32000, seed: 61, scale: 0.1)
        var settings = AugmentationSettings()
        settings.gainDB = 6
        settings.rollRange = 4000
        let fe = try TrainingFrontend(augmentation: settings)
        var r1 = TrainingRandom(seed: 5), r2 = TrainingRandom(seed: 5), r3 = TrainingRandom(seed: 6)
        let a = try fe.mel(wave, training: true, rng: &r1), b = try fe.mel(wave, training: true, rng: &r2)
        let c = try fe.mel(wave, training: true, rng: &r3)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        var r4 = TrainingRandom(seed: 1)
        let plain = try fe.mel(wave, training: false, rng: &r4)
        let off = try TrainingFrontend(augmentation: .none)
        XCTAssertEqual(try off.mel(wave, training: true, rng: &r4), plain)
        // Masks: some whole frequency rows / time columns hold exactly (0 + 4.5) / 5.
        let frames = plain.count / 128
        let masked = (0..<128).filter { b in (0..<frames).allSatisfy { a[b * frames + $0] == 0.9 } }
        let maskedFrames = (0..<frames).filter { f in (0..<128).allSatisfy { a[$0 * frames + f] == 0.9 } }
        XCTAssertFalse(masked.isEmpty && maskedFrames.isEmpty, "neither mask applied")
    }

    /// Mixup keeps lambda in [0.5, 1], permutes partners, and mixes rows linearly.
    func testMixup() {
        var rng = TrainingRandom(seed: 9)
        let (lambda, partner) = Mixup.draw(batch: 16, alpha: 0.3, rng: &rng)
        XCTAssertEqual(partner.sorted(), Array(0..<16))
        XCTAssertTrue(lambda.allSatisfy { $0 >= 0.5 && $0 <= 1 })
        var rows: [Float] = [1, 0, 0, 1]
        Mixup.apply(&rows, width: 2, lambda: [0.75, 0.5], partner: [1, 0])
        XCTAssertEqual(rows, [0.75, 0.25, 0.5, 0.5])
    }

    /// Clips are cut from the offset or tiled to the length.
    func testFitClip() {
        XCTAssertEqual(fitClip([1, 2, 3], length: 7), [1, 2, 3, 1, 2, 3, 1])
        XCTAssertEqual(fitClip([1, 2, 3, 4, 5], length: 2, offset: 2), [3, 4])
        XCTAssertEqual(fitClip([1, 2, 3, 4, 5], length: 2, offset: 9), [4, 5])
        XCTAssertEqual(fitClip([], length: 2), [0, 0])
    }
}
