// The training loop on an in-memory corpus of synthetic tone clips: outputs, resume, skipped clips, metrics.
import EarTagEngine
import EarTagModel
import EarTagTestSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest
@testable import EarTagTraining

/// Three classes of one-second clips: a tone per class (500, 2000, 6000 Hz) in noise; labels one-hot, teacher
/// logits +4 / -4. Clips listed in `broken` throw when read.
struct ToneCorpus: TrainingData {
    var trainCount = 12, validationCount = 6
    var broken: Set<Int> = []
    var withLabels = true
    var classCount: Int { 3 }

    func count(_ split: DataSplit) -> Int { split == .train ? trainCount : validationCount }

    func example(_ split: DataSplit, _ index: Int) throws -> TrainingExample {
        let name = "\(split.rawValue)/clip\(index).wav"
        if split == .train, broken.contains(index) { throw TrainerError.data("\(name): corrupt audio") }
        let k = index % 3, f = [500.0, 2000.0, 6000.0][k]
        var rng = TrainingRandom(seed: UInt64(index) &+ (split == .train ? 0 : 1000))
        let wave = (0..<32000).map { i in Float(0.3 * sin(2 * Double.pi * f * Double(i) / 32000) + 0.05 * rng.normal()) }
        let labels = (0..<3).map { Float($0 == k ? 1 : 0) }
        return TrainingExample(name: name, waveform: wave, labels: withLabels ? labels : nil,
                               teacherLogits: labels.map { $0 * 8 - 4 })
    }
}

final class TrainerTests: XCTestCase {
    /// A small trainer writing into `dir`.
    func makeTrainer(_ data: ToneCorpus, dir: URL, epochs: Int) throws -> Trainer {
        let arch = try Architecture.efficientAT(widthMult: 0.1, head: .mlp, numClasses: 3, channelSE: true)
        let student = try Student(architecture: arch, seed: 7, threads: 2)
        var s = TrainerSettings(outputDirectory: dir.path)
        s.epochs = epochs
        s.batchSize = 4
        s.clipSamples = 32000
        s.learningRate = 3e-3
        s.schedule = nil
        var a = AugmentationSettings.none
        a.frequencyMask = 8
        a.timeMask = 10
        s.augmentation = a
        let t = try Trainer(student: student, data: data, settings: s)
        t.log = { _ in }
        return t
    }

    /// Four epochs: the loss falls, metrics.jsonl has one object per epoch, the model loads and tags.
    func testTrainingLoopLearnsAndWritesOutputs() throws {
        let dir = try makeTemporaryDirectory("eartag-trainer")
        defer { try? FileManager.default.removeItem(at: dir) }
        let trainer = try makeTrainer(ToneCorpus(), dir: dir, epochs: 4)
        let history = try trainer.run()
        XCTAssertEqual(history.map(\.epoch), [1, 2, 3, 4])
        XCTAssertLessThan(history.last!.train_loss, history.first!.train_loss)
        let lines = try String(contentsOfFile: dir.appendingPathComponent("metrics.jsonl").path, encoding: .utf8)
            .split(separator: "\n")
        XCTAssertEqual(lines.count, 4)
        for l in lines {
            let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any])
            for key in ["epoch", "train_loss", "val_loss", "val_map", "val_auc", "top1_agreement", "lr", "clips_per_s",
                        "seconds"] { XCTAssertNotNil(o[key], "\(key) in \(l)") }
        }
        XCTAssertGreaterThan(history.last!.clips_per_s, 0)
        let svg = try String(contentsOfFile: trainer.curvesPath, encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"), svg)
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 3, "train_loss, val_loss and val_map lines")
        let int8 = try QuantizedModel.load(path: trainer.int8ModelPath)
        XCTAssertEqual(int8.architecture.numClasses, 3)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("checkpoint.safetensors").path))
        let model = try ModelFile.load(path: trainer.modelPath)
        let engine = try FloatEngine(model: model, maxFrames: 100)
        let clip = try ToneCorpus().example(.validation, 1)
        let mel = try TrainingFrontend(augmentation: .none).mel(clip.waveform, training: false,
                                                                 rng: &Self.unusedRandom)
        let (logits, _) = engine.run(mel: mel, frames: 100)
        XCTAssertEqual(logits.count, 3)
        XCTAssertTrue(logits.allSatisfy(\.isFinite))
    }

    static var unusedRandom = TrainingRandom(seed: 0)

    /// Two epochs, then a fresh process-like trainer resumed to three equals an uninterrupted three-epoch run.
    func testResumeEqualsUninterruptedRun() throws {
        let a = try makeTemporaryDirectory("eartag-trainer"), b = try makeTemporaryDirectory("eartag-trainer")
        defer { try? FileManager.default.removeItem(at: a); try? FileManager.default.removeItem(at: b) }
        let full = try makeTrainer(ToneCorpus(), dir: a, epochs: 3)
        let fullHistory = try full.run()
        try makeTrainer(ToneCorpus(), dir: b, epochs: 2).run()
        let resumed = try makeTrainer(ToneCorpus(), dir: b, epochs: 3)
        let history = try resumed.run(resume: true)
        XCTAssertEqual(history.map(\.withoutTiming), fullHistory.map(\.withoutTiming))
        XCTAssertEqual(resumed.student.stateDict(), full.student.stateDict())
    }

    /// A clip that cannot be read is skipped with a warning naming it; the run goes on.
    func testBrokenClipIsSkippedWithWarning() throws {
        let dir = try makeTemporaryDirectory("eartag-trainer")
        defer { try? FileManager.default.removeItem(at: dir) }
        let trainer = try makeTrainer(ToneCorpus(broken: [5]), dir: dir, epochs: 1)
        var messages: [String] = []
        trainer.log = { messages.append($0) }
        let history = try trainer.run()
        XCTAssertEqual(history.first?.skipped_clips, 1)
        XCTAssertTrue(messages.contains { $0.contains("clip5.wav") && $0.hasPrefix("warning:") }, "\(messages)")
    }

    /// Unlabelled corpora evaluate against the teacher; a class-count mismatch is refused before training.
    func testTeacherOnlyAndMismatch() throws {
        let dir = try makeTemporaryDirectory("eartag-trainer")
        defer { try? FileManager.default.removeItem(at: dir) }
        let history = try makeTrainer(ToneCorpus(withLabels: false), dir: dir, epochs: 1).run()
        XCTAssertNotNil(history.first?.val_map)
        let arch = try Architecture.efficientAT(widthMult: 0.1, head: .mlp, numClasses: 5, channelSE: true)
        XCTAssertThrowsError(try Trainer(student: Student(architecture: arch), data: ToneCorpus(),
                                         settings: TrainerSettings(outputDirectory: dir.path)))
    }

    /// Checks: a full disk while the epoch-2 checkpoint is written (write(2) failing with ENOSPC halfway through the
    /// file) stops the run with an error naming the file, leaves the epoch-1 checkpoint intact and no temporary file;
    /// resuming from it then reaches the same result as an uninterrupted run.
    func testDiskFullDuringCheckpointKeepsThePreviousOne() throws {
        let dir = try makeTemporaryDirectory("eartag-trainer"), whole = try makeTemporaryDirectory("eartag-trainer")
        defer { try? FileManager.default.removeItem(at: dir); try? FileManager.default.removeItem(at: whole) }
        let checkpoint = dir.appendingPathComponent("checkpoint.safetensors").path
        try makeTrainer(ToneCorpus(), dir: dir, epochs: 1).run()
        let before = try XCTUnwrap(FileManager.default.contents(atPath: checkpoint))
        let full = try makeTrainer(ToneCorpus(), dir: dir, epochs: 2)
        full.writeFile = { bytes, path in
            guard path == checkpoint else { return try writeDurably(bytes, to: path) }
            var budget = bytes.count / 2
            try writeDurably(bytes, to: path, write: { fd, buffer, count in
                guard budget > 0 else { errno = ENOSPC; return -1 }
                let n = Glibc.write(fd, buffer, min(count, budget))
                budget -= max(n, 0)
                return n
            })
        }
        XCTAssertThrowsError(try full.run(resume: true)) { e in
            XCTAssertTrue("\(e)".contains("checkpoint.safetensors") && "\(e)".contains("No space left"), "\(e)")
        }
        XCTAssertEqual(FileManager.default.contents(atPath: checkpoint), before)
        XCTAssertFalse(FileManager.default.fileExists(atPath: checkpoint + ".tmp"))
        let resumed = try makeTrainer(ToneCorpus(), dir: dir, epochs: 2)
        let history = try resumed.run(resume: true)
        let reference = try makeTrainer(ToneCorpus(), dir: whole, epochs: 2).run()
        XCTAssertEqual(history.map(\.withoutTiming), reference.map(\.withoutTiming))
    }

    /// Checks: without labels the held-out targets are the teacher's probabilities >= 0.5 plus its top-1 class.
    func testTeacherTargetsBinarization() throws {
        let dir = try makeTemporaryDirectory("eartag-trainer")
        defer { try? FileManager.default.removeItem(at: dir) }
        let t = try makeTrainer(ToneCorpus(withLabels: false), dir: dir, epochs: 1)
        XCTAssertEqual(t.teacherTargets([-3, -1, -2, 0.5, -4, 2], classes: 3), [0, 1, 0, 1, 0, 1])
    }

    /// Checks: curves.svg leaves a gap for an epoch without a value and says "not measured" for an empty panel.
    func testCurvesSVG() {
        let m = { (e: Int, v: Double?) in
            EpochMetrics(epoch: e, train_loss: 1 / Double(e), val_loss: v, val_map: nil, val_auc: nil,
                         top1_agreement: nil, lr: 1e-3, clips_per_s: 1, seconds: 1, skipped_clips: 0)
        }
        let svg = curvesSVG([m(1, 0.5), m(2, nil), m(3, 0.3)])
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 3, svg)  // train, val split in two
        XCTAssertTrue(svg.contains("not measured"), svg)
    }

    /// Average precision and ROC-AUC on a hand-computed case; a failed durable write names the path.
    func testMetricsAndDurableWrite() throws {
        let (map, auc) = meanAveragePrecisionAndAUC(scores: [0.9, 0.8, 0.3, 0.1], targets: [1, 0, 1, 0], classes: 1)
        XCTAssertEqual(map!, (1.0 + 2.0 / 3) / 2, accuracy: 1e-12)
        XCTAssertEqual(auc!, 0.75, accuracy: 1e-12)
        let (none, _) = meanAveragePrecisionAndAUC(scores: [0.5, 0.2], targets: [0, 0], classes: 1)
        XCTAssertNil(none)
        XCTAssertThrowsError(try writeDurably([1, 2, 3], to: "/nonexistent-eartag-dir/x")) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent-eartag-dir/x"))
        }
    }
}
