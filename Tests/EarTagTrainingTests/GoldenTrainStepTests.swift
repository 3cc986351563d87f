// The golden training step (../shared/reference/golden/train_step): EfficientAT's own PyTorch forward, loss,
// backward and one Adam step on mn04_as, reproduced by the Swift student.
import EarTagEngine
import EarTagModel
import EarTagTestSupport
import Foundation
import XCTest
@testable import EarTagTraining

final class GoldenTrainStepTests: XCTestCase {
    /// step.json's numbers this test uses.
    struct Step: Decodable {
        var label_loss: Double
        var kd_loss: Double
        var loss: Double
        var kd_lambda: Double
        var temperature: Double
    }

    /// The reference mn04_as checkpoint as a FloatModel.
    static func mn04() throws -> FloatModel {
        try CheckpointImporter.importCheckpoint(path: Reference.path("efficientat/mn04_as_mAP_432.pt"),
                                                labelsPath: nil, name: nil)
    }

    /// Largest |value| of an array.
    func largest(_ a: [Float]) -> Float { a.reduce(0) { max($0, abs($1)) } }

    /// Train-mode logits, both loss terms, every gradient, and the state after one Adam step.
    func testGoldenTrainingStep() throws {
        let dir = "golden/train_step/"
        let step = try JSONDecoder().decode(Step.self, from: Data(contentsOf: URL(fileURLWithPath:
            Reference.path(dir + "step.json"))))
        let mel = try Reference.npy(dir + "batch_mel.npy")
        XCTAssertEqual(mel.shape, [2, 1, 128, 100])
        let labels = try Reference.npy(dir + "batch_labels.npy").data
        let teacher = try Reference.npy(dir + "batch_teacher_logits.npy").data
        let expected = try Reference.npy(dir + "logits_train_mode.npy").data

        let student = try Student(model: Self.mn04(), threads: 2)
        student.training = true
        student.dropout = 0
        let logits = try student.forward(mels: mel.data, batch: 2, mels: 128, frames: 100)
        let logitError = maxAbsDifference(logits, expected)
        XCTAssertLessThan(logitError, 1e-4, "train-mode logits")

        let loss = try DistillationLoss(labelWeight: step.kd_lambda, temperature: step.temperature)
            .evaluate(logits: logits, labels: labels, teacherLogits: teacher)
        XCTAssertEqual(loss.labelLoss!, step.label_loss, accuracy: 1e-5)
        XCTAssertEqual(loss.distillationLoss!, step.kd_loss, accuracy: 1e-5)
        XCTAssertEqual(loss.loss, step.loss, accuracy: 1e-5)

        try student.backward(logitGradient: loss.gradient)
        let grads = try CheckpointImporter.readStateDict(path: Reference.path(dir + "grads.pt"))
        XCTAssertEqual(Set(grads.keys), Set(student.parameters.map(\.name)), "gradient names")
        // Biases of BatchNorms whose output only reaches the loss through another train-mode BatchNorm (the
        // projections' BN) have a zero gradient in exact arithmetic; PyTorch's values there are float noise
        // (<= 3e-9). Those tensors are checked against a floor relative to the model's largest gradient.
        let globalMax = grads.values.map { largest($0.data) }.max() ?? 0
        let floor = 1e-5 * globalMax
        var worst = (name: "", ratio: Float(0)), zeroTensors = 0
        for p in student.parameters {
            guard let g = grads[p.name] else { continue }
            let reference = largest(g.data)
            if reference < floor {
                zeroTensors += 1
                XCTAssertLessThan(largest(p.gradient), floor, "\(p.name): exact gradient is zero, ours is not")
                continue
            }
            let ratio = maxAbsDifference(p.gradient, g.data) / reference
            if ratio > worst.ratio { worst = (p.name, ratio) }
            XCTAssertLessThanOrEqual(ratio, 1e-3, "gradient of \(p.name)")
        }
        print("golden step: logits max error \(logitError), worst gradient error / tensor max \(worst.ratio) "
              + "(\(worst.name)); \(zeroTensors) tensors with an exactly-zero gradient below \(floor)")

        // One Adam step from our own gradients. Adam divides by |g| + 1e-8, so an element whose gradient is float
        // noise (|g| < 1e-6) moves by up to lr in a noise-chosen direction in PyTorch as here: such elements are
        // held to the step bound lr (they must stay rare); every other element and every running statistic to 1e-6.
        let adam = AdamOptimizer(parameters: student.parameters, learningRate: 1e-3, beta1: 0.9, beta2: 0.999,
                                 eps: 1e-8, weightDecay: 0)
        let before = student.stateDict()
        adam.update()
        let after = try CheckpointImporter.readStateDict(path: Reference.path(dir + "after_adam_state.pt"))
        let state = student.stateDict()
        XCTAssertEqual(Set(after.keys), Set(state.keys), "state names")
        var noisy = 0, total = 0
        for (name, t) in state.sorted(by: { $0.key < $1.key }) {
            guard let e = after[name] else { continue }
            guard let g = grads[name] else {
                XCTAssertLessThanOrEqual(maxAbsDifference(t.data, e.data), 1e-6, "\(name) after one Adam step")
                continue
            }
            total += t.count
            for i in t.data.indices {
                let d = abs(t.data[i] - e.data[i])
                if abs(g.data[i]) < 1e-6 {
                    if d > 1e-6 { noisy += 1 }
                    XCTAssertLessThanOrEqual(abs(t.data[i] - before[name]!.data[i]), 1e-3 + 1e-6, "\(name)[\(i)] step")
                } else if d > 1e-6 {
                    XCTFail("\(name)[\(i)] after one Adam step: \(t.data[i]) vs \(e.data[i]) (gradient \(g.data[i]))")
                    return
                }
            }
        }
        print("golden step: Adam state within 1e-6 except \(noisy) of \(total) weights (all with |g| < 1e-6)")
        XCTAssertLessThan(Double(noisy), 0.002 * Double(total))
    }

    /// Adam applied to PyTorch's own gradients reproduces the whole state after the step within 1e-6.
    func testAdamOnGoldenGradients() throws {
        let dir = "golden/train_step/"
        let mel = try Reference.npy(dir + "batch_mel.npy")
        let student = try Student(model: Self.mn04(), threads: 2)
        student.dropout = 0
        try student.forward(mels: mel.data, batch: 2, mels: 128, frames: 100)  // running statistics
        let grads = try CheckpointImporter.readStateDict(path: Reference.path(dir + "grads.pt"))
        for p in student.parameters { p.grad.load(try XCTUnwrap(grads[p.name]).data) }
        let adam = AdamOptimizer(parameters: student.parameters, learningRate: 1e-3)
        adam.update()
        let after = try CheckpointImporter.readStateDict(path: Reference.path(dir + "after_adam_state.pt"))
        var worst: Float = 0
        for (name, t) in student.stateDict() {
            let d = maxAbsDifference(t.data, try XCTUnwrap(after[name]).data)
            worst = max(worst, d)
            XCTAssertLessThanOrEqual(d, 1e-6, name)
        }
        print("golden Adam step on PyTorch's gradients: worst state difference \(worst)")
    }

    /// Eval mode equals the float inference engine on the golden excerpt mel.
    func testEvalModeMatchesFloatEngine() throws {
        let model = try Self.mn04()
        let mel = try Reference.npy("golden/excerpt.mel.npy")
        let frames = mel.shape[1]
        let engine = try FloatEngine(model: model, maxFrames: frames)
        let (expected, _) = engine.run(mel: mel.data, frames: frames)
        let student = try Student(model: model, threads: 2)
        student.training = false
        let logits = try student.forward(mels: mel.data, batch: 1, mels: 128, frames: frames)
        XCTAssertLessThan(maxAbsDifference(logits, expected), 1e-4)
        let golden = try Reference.npy("golden/excerpt.logits.npy").data
        XCTAssertLessThan(maxAbsDifference(logits, golden), 1e-3)
    }
}
