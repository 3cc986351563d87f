// The student as a model: initialisation, export to the inference form, and one training step's effect; and the
// `eartag-train train` command line.
import EarTagEngine
import EarTagModel
import EarTagTestSupport
import Foundation
import XCTest
@testable import EarTagTraining

final class StudentTests: XCTestCase {
    /// EfficientAT's initialisation: kaiming fan_out conv std, N(0, 0.01) linears, BN 1/0; deterministic by seed.
    func testInitialisation() throws {
        let arch = try Architecture.efficientAT(widthMult: 0.4, head: .mlp, numClasses: 527, channelSE: true)
        let s = try Student(architecture: arch, seed: 1), t = try Student(architecture: arch, seed: 1)
        XCTAssertEqual(s.parameters.map(\.name), t.parameters.map(\.name))
        XCTAssertEqual(s.stateDict()["features.16.0.weight"], t.stateDict()["features.16.0.weight"])
        XCTAssertEqual(Set(s.stateDict().keys), Set(arch.expectedTensorShapes().keys))
        func std(_ v: [Float]) -> Double {
            let m = v.reduce(0.0) { $0 + Double($1) } / Double(v.count)
            return (v.reduce(0.0) { $0 + (Double($1) - m) * (Double($1) - m) } / Double(v.count)).squareRoot()
        }
        let last = s.parameters.first { $0.name == "features.16.0.weight" }!  // [384, 64, 1, 1]
        XCTAssertEqual(std(last.values), (2.0 / 384).squareRoot(), accuracy: 0.05 * (2.0 / 384).squareRoot())
        let fc = s.parameters.first { $0.name == "classifier.5.weight" }!
        XCTAssertEqual(std(fc.values), 0.01, accuracy: 0.0005)
        XCTAssertTrue(s.parameters.first { $0.name == "features.0.1.weight" }!.values.allSatisfy { $0 == 1 })
        XCTAssertTrue(s.parameters.first { $0.name == "classifier.5.bias" }!.values.allSatisfy { $0 == 0 })
        XCTAssertEqual(s.parameters.reduce(0) { $0 + $1.count }, 983599)  // step.json's param_count for mn04
    }

    /// A student exported to a FloatModel, saved and loaded, runs in the float engine with the student's
    /// eval-mode logits, for both heads.
    func testExportRunsInFloatEngine() throws {
        for head in [HeadType.mlp, .fullyConvolutional] {
            let arch = try Architecture.efficientAT(widthMult: 0.1, head: head, numClasses: 7, channelSE: true)
            let student = try Student(architecture: arch, seed: 4)
            // A training step's worth of non-trivial BatchNorm statistics.
            let mel = randomFloats(2 * 64 * 50, seed: 3)
            try student.forward(mels: mel, batch: 2, mels: 64, frames: 50)
            student.training = false
            let clip = Array(mel[0..<(64 * 50)])
            let logits = try student.forward(mels: clip, batch: 1, mels: 64, frames: 50)
            let labels = (0..<7).map { Label(index: $0, mid: "", displayName: "c\($0)") }
            let dir = try makeTemporaryDirectory("eartag-train")
            defer { try? FileManager.default.removeItem(at: dir) }
            let path = dir.appendingPathComponent("student.safetensors").path
            var frontend = FrontendSettings.efficientAT
            frontend.nMels = 64
            try ModelFile.save(student.exportModel(name: "student", labels: labels, frontend: frontend), to: path)
            let loaded = try ModelFile.load(path: path)
            let engine = try FloatEngine(model: loaded, maxFrames: 50)
            let (expected, _) = engine.run(mel: clip, frames: 50)
            XCTAssertLessThan(maxAbsDifference(logits, expected), 1e-4, "\(head)")
            let back = try Student(model: loaded)
            XCTAssertEqual(back.stateDict(), student.stateDict())
        }
    }

    /// Steps on a fixed batch lower its loss (the whole pipeline learns), and bad batches are refused.
    func testStepsReduceLoss() throws {
        let arch = try Architecture.efficientAT(widthMult: 0.1, head: .mlp, numClasses: 10, channelSE: true)
        let student = try Student(architecture: arch, seed: 2, threads: 2)
        student.dropout = 0
        let runner = TrainingStepRunner(student: student,
                                        optimizer: AdamOptimizer(parameters: student.parameters, learningRate: 3e-3),
                                        frontend: try TrainingFrontend(augmentation: .none), seed: 1)
        let waves = (0..<4).map { randomFloats(16000, seed: UInt64($0), scale: 0.1 * Double($0 + 1)) }
        let teacher = (0..<4).map { randomFloats(10, seed: UInt64(10 + $0), scale: 3) }
        let first = try runner.step(waveforms: waves, labels: nil, teacherLogits: teacher).loss
        var last = first
        for _ in 0..<15 { last = try runner.step(waveforms: waves, labels: nil, teacherLogits: teacher).loss }
        XCTAssertLessThan(last, 0.9 * first)
        XCTAssertThrowsError(try runner.step(waveforms: [waves[0], Array(waves[1].prefix(100))], labels: nil,
                                             teacherLogits: Array(teacher.prefix(2))))
        XCTAssertThrowsError(try runner.step(waveforms: waves, labels: nil, teacherLogits: Array(teacher.prefix(3))))
        XCTAssertThrowsError(try student.forward(mels: [1, 2, 3], batch: 1, mels: 2, frames: 2))
    }

    /// Runs the built `eartag-train` binary.
    func runTool(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let products = Bundle.allBundles.first { $0.bundlePath.hasSuffix(".xctest") }?.bundleURL
            .deletingLastPathComponent() ?? Bundle.main.bundleURL
        let binary = products.appendingPathComponent("eartag-train").path
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw XCTSkip("eartag-train is not built beside the tests (\(binary))")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    /// `train` without --benchmark and bad benchmark options are refused with one line naming the option;
    /// a tiny benchmark prints clips_per_s as JSON.
    func testTrainCommandLine() throws {
        for (args, subject) in [(["train"], "--benchmark"), (["train", "--benchmark", "--width", "0"], "--width"),
                                (["train", "--benchmark", "--batch-size", "1"], "--batch-size"),
                                (["train", "--benchmark", "--steps", "0"], "--steps"),
                                (["train", "--benchmark", "--threads", "0"], "--threads")] {
            let r = try runTool(args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            let first = r.stderr.split(separator: "\n").first.map(String.init) ?? ""
            XCTAssertTrue(first.contains(subject), "\(args): \(first)")
        }
        let r = try runTool(["train", "--benchmark", "--width", "0.1", "--batch-size", "2", "--steps", "1",
                             "--threads", "2", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        XCTAssertNotNil(json?["clips_per_s"] as? Double, r.stdout)
        XCTAssertEqual(json?["batch_size"] as? Int, 2)
    }
}
