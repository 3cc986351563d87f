// The training loop over a TrainingData corpus: epochs of shuffled batches, held-out evaluation (mAP and ROC-AUC
// over classes, top-1 agreement with the teacher), an atomic checkpoint (write, fsync, rename, fsync of the folder)
// and one metrics.jsonl line per epoch, resumable; at the end the float model, its int8 form and curves.svg.
// ref: EfficientAT ex_audioset.py (epoch loop, lr schedule per epoch, validation mAP / ROC-AUC via
// sklearn average_precision_score / roc_auc_score per class, averaged over classes).
import EarTagEngine
import EarTagModel
#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Settings of a training run.
public struct TrainerSettings: Sendable {
    public var epochs = 10
    public var batchSize = 8
    /// Samples per clip (10 s at 32 kHz, what the teacher saw); longer clips are cut, shorter ones tiled.
    public var clipSamples = 320_000
    public var learningRate = 1e-3
    public var schedule: LearningRateSchedule? = LearningRateSchedule()
    public var variant: AdamOptimizer.Variant = .adam
    public var weightDecay = 0.0
    public var loss = DistillationLoss()
    public var augmentation = AugmentationSettings()
    /// The log-mel frontend trained with and recorded in the exported models (a fine-tuned model's own).
    public var frontend: FrontendSettings = .efficientAT
    public var seed: UInt64 = 0
    /// Training clips whose (unaugmented) mels calibrate the int8 model; 0 writes no int8 model.
    public var calibrationClips = 8
    /// Folder for checkpoint.safetensors, metrics.jsonl, model.safetensors, model.int8.safetensors, curves.svg.
    public var outputDirectory: String

    /// Settings writing into `outputDirectory`.
    public init(outputDirectory: String) { self.outputDirectory = outputDirectory }
}

/// One line of metrics.jsonl.
public struct EpochMetrics: Codable, Sendable, Equatable {
    public var epoch: Int
    public var train_loss: Double
    public var val_loss: Double?
    public var val_map: Double?
    public var val_auc: Double?
    /// Fraction of held-out clips whose top-1 class is the teacher's (nil without a teacher).
    public var top1_agreement: Double?
    public var lr: Double
    /// Training clips per second of the epoch's training part (evaluation excluded).
    public var clips_per_s: Double
    /// Wall-clock seconds of the whole epoch (training and evaluation).
    public var seconds: Double
    public var skipped_clips: Int

    /// Encodes every field, unmeasured ones as null (a stable set of keys on every line).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(epoch, forKey: .epoch)
        try c.encode(train_loss, forKey: .train_loss)
        try c.encode(val_loss, forKey: .val_loss)
        try c.encode(val_map, forKey: .val_map)
        try c.encode(val_auc, forKey: .val_auc)
        try c.encode(top1_agreement, forKey: .top1_agreement)
        try c.encode(lr, forKey: .lr)
        try c.encode(clips_per_s, forKey: .clips_per_s)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(skipped_clips, forKey: .skipped_clips)
    }

    /// The metrics without the wall-clock fields (for comparing runs).
    public var withoutTiming: EpochMetrics {
        var m = self
        m.clips_per_s = 0
        m.seconds = 0
        return m
    }
}

/// baseline.json: the untrained student's held-out figures, measured before the first epoch.
public struct BaselineMetrics: Codable, Sendable, Equatable {
    public var val_loss: Double?
    public var val_map: Double?
    public var val_auc: Double?
    public var top1_agreement: Double?

    /// Encodes every field, unmeasured ones as null.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(val_loss, forKey: .val_loss)
        try c.encode(val_map, forKey: .val_map)
        try c.encode(val_auc, forKey: .val_auc)
        try c.encode(top1_agreement, forKey: .top1_agreement)
    }
}

/// Why training stopped.
public enum TrainerError: Error, CustomStringConvertible {
    case data(String)
    case io(path: String, reason: String)

    /// One-line message naming the culprit.
    public var description: String {
        switch self {
        case .data(let m): return "training data: \(m)"
        case .io(let p, let r): return "\(p): \(r)"
        }
    }
}

/// Mean over classes of average precision (classes without a positive skipped) and of ROC-AUC (classes without
/// both a positive and a negative skipped); scores and targets are [clips][classes], a target > 0.5 is positive.
/// ref: sklearn average_precision_score (step-wise precision at each positive, ties sorted together) and
/// roc_auc_score (Mann-Whitney with half credit for ties).
public func meanAveragePrecisionAndAUC(scores: [Float], targets: [Float], classes: Int) -> (map: Double?, auc: Double?) {
    let n = classes > 0 ? scores.count / classes : 0
    var aps: [Double] = [], aucs: [Double] = []
    for k in 0..<classes {
        let pairs = (0..<n).map { (scores[$0 * classes + k], targets[$0 * classes + k] > 0.5) }
        let positives = pairs.filter(\.1).count
        if positives == 0 { continue }
        let sorted = pairs.sorted { $0.0 > $1.0 }
        // Average precision over distinct thresholds.
        var tp = 0, fp = 0, ap = 0.0, i = 0
        while i < sorted.count {
            var j = i, newTP = 0
            while j < sorted.count && sorted[j].0 == sorted[i].0 { if sorted[j].1 { newTP += 1 } else { fp += 1 }; j += 1 }
            tp += newTP
            if newTP > 0 { ap += Double(newTP) / Double(positives) * Double(tp) / Double(tp + fp) }
            i = j
        }
        aps.append(ap)
        let negatives = n - positives
        if negatives == 0 { continue }
        var wins = 0.0
        for (sp, p) in pairs where p {
            for (sn, q) in pairs where !q { wins += sp > sn ? 1 : (sp == sn ? 0.5 : 0) }
        }
        aucs.append(wins / Double(positives * negatives))
    }
    return (aps.isEmpty ? nil : aps.reduce(0, +) / Double(aps.count),
            aucs.isEmpty ? nil : aucs.reduce(0, +) / Double(aucs.count))
}

/// The system's write(2); the seam `writeDurably` takes so a test can make it fail mid-file (a full disk).
public typealias WriteFunction = (_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int

/// Writes `bytes` to `path` durably: a temporary file beside it, fsync, rename over, fsync of the folder.
/// A failure (disk full: `write` returning -1 with ENOSPC) leaves the previous file intact and removes the
/// temporary one.
public func writeDurably(_ bytes: [UInt8], to path: String,
                         write: WriteFunction = { Glibc.write($0, $1, $2) }) throws {
    let tmp = path + ".tmp"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw TrainerError.io(path: tmp, reason: String(cString: strerror(errno))) }
    var written = 0
    let ok = bytes.withUnsafeBytes { raw -> Bool in
        while written < raw.count {
            let r = write(fd, raw.baseAddress! + written, raw.count - written)
            if r <= 0 { return false }
            written += r
        }
        return fsync(fd) == 0
    }
    let reason = ok ? "" : String(cString: strerror(errno))
    close(fd)
    guard ok else { unlink(tmp); throw TrainerError.io(path: tmp, reason: reason) }
    guard rename(tmp, path) == 0 else {
        let r = String(cString: strerror(errno))
        unlink(tmp)
        throw TrainerError.io(path: path, reason: r)
    }
    let dir = open(URL(fileURLWithPath: path).deletingLastPathComponent().path, O_RDONLY)
    if dir >= 0 { fsync(dir); close(dir) }
}

/// Trains a student on a corpus, epoch by epoch.
public final class Trainer {
    public let student: Student
    public let data: TrainingData
    public let settings: TrainerSettings
    public let optimizer: AdamOptimizer
    private let runner: TrainingStepRunner
    /// Receives warnings (skipped clips) and one progress line per epoch.
    public var log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    /// Labels written into the exported model.
    public var labels: [Label]
    /// Called after every batch with (epoch 1-based, clips done, clips in the epoch, clips per second so far).
    public var progress: ((Int, Int, Int, Double) -> Void)?
    /// How files are written durably (a test replaces it to simulate a full disk).
    public var writeFile: ([UInt8], String) throws -> Void = { try writeDurably($0, to: $1) }

    /// A trainer; the data's class count must equal the student's.
    public init(student: Student, data: TrainingData, settings: TrainerSettings) throws {
        guard data.classCount == student.architecture.numClasses else {
            throw TrainerError.data("\(data.classCount) classes in the corpus, the student has "
                                    + "\(student.architecture.numClasses)")
        }
        guard settings.batchSize >= 2 else { throw TrainerError.data("batch size must be at least 2") }
        guard data.count(.train) >= 2 else { throw TrainerError.data("fewer than 2 training clips") }
        self.student = student
        self.data = data
        self.settings = settings
        optimizer = AdamOptimizer(parameters: student.parameters, variant: settings.variant,
                                  learningRate: settings.learningRate, weightDecay: settings.weightDecay)
        runner = TrainingStepRunner(student: student, optimizer: optimizer,
                                    frontend: try TrainingFrontend(settings: settings.frontend, augmentation: settings.augmentation),
                                    loss: settings.loss, seed: settings.seed)
        labels = (0..<data.classCount).map { Label(index: $0, mid: "", displayName: "class_\($0)") }
    }

    private var checkpointPath: String { settings.outputDirectory + "/checkpoint.safetensors" }
    private var metricsPath: String { settings.outputDirectory + "/metrics.jsonl" }
    /// The final float model's path.
    public var modelPath: String { settings.outputDirectory + "/model.safetensors" }
    /// The final int8 model's path.
    public var int8ModelPath: String { settings.outputDirectory + "/model.int8.safetensors" }
    /// The untrained student's held-out metrics' path.
    public var baselinePath: String { settings.outputDirectory + "/baseline.json" }
    /// The loss and mAP curves' path.
    public var curvesPath: String { settings.outputDirectory + "/curves.svg" }

    /// Loads an example, or logs a warning naming it and returns nil.
    private func load(_ split: DataSplit, _ i: Int) -> TrainingExample? {
        do { return try data.example(split, i) } catch {
            log("warning: skipping \(split.rawValue) clip \(i): \(error)")
            return nil
        }
    }

    /// Runs the remaining epochs (all of them, or those after the checkpoint when `resume`); returns every
    /// epoch's metrics, including the resumed ones read back from metrics.jsonl.
    @discardableResult
    public func run(resume: Bool = false) throws -> [EpochMetrics] {
        try FileManager.default.createDirectory(atPath: settings.outputDirectory, withIntermediateDirectories: true)
        var history: [EpochMetrics] = []
        var start = 0
        if resume, FileManager.default.fileExists(atPath: checkpointPath) {
            start = try restoreCheckpoint()
            history = try readMetrics().filter { $0.epoch <= start }  // epochs are 1-based
        } else {
            // The untrained student's held-out figures: what training is measured against.
            let v = try evaluate()
            let b = BaselineMetrics(val_loss: v.loss, val_map: v.map, val_auc: v.auc, top1_agreement: v.top1Agreement)
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            try writeFile(Array(try enc.encode(b)) + [10], baselinePath)
        }
        for epoch in start..<settings.epochs {
            let m = try trainEpoch(epoch)
            history.append(m)
            // metrics.jsonl first: killed between the two writes, a resume drops the line the checkpoint lacks
            // and trains that epoch again; the other order would lose the line of a checkpointed epoch.
            let lines = history.map { line(of: $0) }.joined()
            try writeFile(Array(lines.utf8), metricsPath)
            try saveCheckpoint(epoch: epoch + 1)
            /// A metric with `digits` decimals, or "-".
            func f(_ v: Double?, _ digits: Int) -> String { v.map { String(format: "%.\(digits)f", $0) } ?? "-" }
            log("epoch \(epoch + 1)/\(settings.epochs): train_loss \(f(m.train_loss, 5)) val_loss \(f(m.val_loss, 5)) "
                + "val_map \(f(m.val_map, 4)) val_auc \(f(m.val_auc, 4)) top1_agreement \(f(m.top1_agreement, 3)) "
                + "lr \(String(format: "%.3g", m.lr)) \(f(m.clips_per_s, 1)) clips/s \(f(m.seconds, 1)) s")
        }
        student.training = false
        let model = student.exportModel(name: "student", labels: labels, frontend: settings.frontend)
        try writeFile(try fileBytes { try ModelFile.save(model, to: $0) }, modelPath)
        if settings.calibrationClips > 0 {
            let mels = try calibrationMels()
            let quantized = try Quantizer.quantize(model, calibration: mels)
            try writeFile(try fileBytes { try quantized.save(to: $0) }, int8ModelPath)
        }
        try writeFile(Array(curvesSVG(history).utf8), curvesPath)
        return history
    }

    /// Unaugmented mels of the first readable training clips (at most `calibrationClips`), one per clip.
    private func calibrationMels() throws -> [(mel: [Float], frames: Int)] {
        var out: [(mel: [Float], frames: Int)] = []
        var i = 0
        while out.count < settings.calibrationClips && i < data.count(.train) {
            if let e = load(.train, i) {
                let (mel, frames) = try runner.mels([fitClip(e.waveform, length: settings.clipSamples)], training: false)
                out.append((mel, frames))
            }
            i += 1
        }
        guard !out.isEmpty else { throw TrainerError.data("no readable training clip to calibrate the int8 model") }
        return out
    }

    /// One JSON line of metrics.
    private func line(of m: EpochMetrics) -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return String(decoding: (try? enc.encode(m)) ?? Data("{}".utf8), as: UTF8.self) + "\n"
    }

    /// metrics.jsonl as written so far.
    private func readMetrics() throws -> [EpochMetrics] {
        guard let d = FileManager.default.contents(atPath: metricsPath) else { return [] }
        return try String(decoding: d, as: UTF8.self).split(separator: "\n").map {
            try JSONDecoder().decode(EpochMetrics.self, from: Data($0.utf8))
        }
    }

    /// Trains one epoch and evaluates on the validation split.
    private func trainEpoch(_ epoch: Int) throws -> EpochMetrics {
        var rng = TrainingRandom(seed: settings.seed &+ UInt64(epoch) &* 0x9E37_79B9)
        runner.reseed(rng.next())
        student.reseedDropout(rng.next())
        let lr = settings.learningRate * (settings.schedule?.factor(epoch: Double(epoch)) ?? 1)
        optimizer.learningRate = lr
        var order = Array(0..<data.count(.train))
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, randomInt(i + 1, &rng)) }
        var lossSum = 0.0, batches = 0, skipped = 0, clipsDone = 0
        var start = 0
        let began = Date()
        student.training = true
        while start < order.count {
            let ids = order[start..<min(order.count, start + settings.batchSize)]
            start += settings.batchSize
            var waves: [[Float]] = [], labels: [[Float]] = [], teacher: [[Float]] = []
            var haveLabels = true, haveTeacher = true
            for i in ids {
                guard let e = load(.train, i) else { skipped += 1; continue }
                let offset = e.waveform.count > settings.clipSamples
                    ? randomInt(e.waveform.count - settings.clipSamples + 1, &rng) : 0
                waves.append(fitClip(e.waveform, length: settings.clipSamples, offset: offset))
                if let l = e.labels { labels.append(l) } else { haveLabels = false }
                if let t = e.teacherLogits { teacher.append(t) } else { haveTeacher = false }
            }
            guard waves.count >= 2 else { continue }  // BatchNorm needs two clips
            let r = try runner.step(waveforms: waves, labels: haveLabels ? labels : nil,
                                    teacherLogits: haveTeacher ? teacher : nil)
            lossSum += r.loss
            batches += 1
            clipsDone += waves.count
            progress?(epoch + 1, min(start, order.count), order.count,
                      Double(clipsDone) / max(Date().timeIntervalSince(began), 1e-9))
        }
        let trainSeconds = Date().timeIntervalSince(began)
        guard batches > 0 else { throw TrainerError.data("no batch of two readable training clips in epoch \(epoch + 1)") }
        let v = try evaluate()
        return EpochMetrics(epoch: epoch + 1, train_loss: lossSum / Double(batches), val_loss: v.loss, val_map: v.map,
                            val_auc: v.auc, top1_agreement: v.top1Agreement, lr: lr,
                            clips_per_s: Double(clipsDone) / max(trainSeconds, 1e-9),
                            seconds: Date().timeIntervalSince(began), skipped_clips: skipped)
    }

    /// Eval-mode loss, mAP and ROC-AUC on the validation split (against labels when given, else against the
    /// teacher binarized by `teacherTargets`) and the fraction of clips whose top-1 class is the teacher's.
    public func evaluate() throws -> (loss: Double?, map: Double?, auc: Double?, top1Agreement: Double?) {
        let n = data.count(.validation), k = data.classCount
        guard n > 0 else { return (nil, nil, nil, nil) }
        var agreeing = 0, compared = 0
        student.training = false
        defer { student.training = true }
        var scores: [Float] = [], targets: [Float] = [], lossSum = 0.0, counted = 0
        var i = 0
        while i < n {
            var waves: [[Float]] = [], labels: [[Float]] = [], teacher: [[Float]] = []
            var haveLabels = true, haveTeacher = true
            for j in i..<min(n, i + settings.batchSize) {
                guard let e = load(.validation, j) else { continue }
                waves.append(fitClip(e.waveform, length: settings.clipSamples))
                if let l = e.labels { labels.append(l) } else { haveLabels = false }
                if let t = e.teacherLogits { teacher.append(t) } else { haveTeacher = false }
            }
            i += settings.batchSize
            guard !waves.isEmpty else { continue }
            let (mels, frames) = try runner.mels(waves, training: false)
            let logits = try student.forward(mels: mels, batch: waves.count, mels: runner.frontend.settings.nMels,
                                             frames: frames)
            let y = haveLabels ? Array(labels.joined()) : nil
            let t = haveTeacher ? Array(teacher.joined()) : nil
            if y != nil || t != nil {
                lossSum += try settings.loss.evaluate(logits: logits, labels: y, teacherLogits: t).loss * Double(waves.count)
                counted += waves.count
            }
            scores += logits
            if let y { targets += y } else if let t { targets += teacherTargets(t, classes: k) } else {
                targets += [Float](repeating: 0, count: logits.count)
            }
            if let t {
                for c in 0..<waves.count {
                    compared += 1
                    if argmax(logits[c * k..<(c + 1) * k]) == argmax(t[c * k..<(c + 1) * k]) { agreeing += 1 }
                }
            }
        }
        let (map, auc) = meanAveragePrecisionAndAUC(scores: scores, targets: targets, classes: k)
        return (counted > 0 ? lossSum / Double(counted) : nil, map, auc,
                compared > 0 ? Double(agreeing) / Double(compared) : nil)
    }

    /// Hard targets from teacher logits [clips][classes]: 1 where sigmoid(logit / T) >= 0.5, and always at the
    /// clip's top-1 class (so every clip has a positive), else 0.
    public func teacherTargets(_ logits: [Float], classes k: Int) -> [Float] {
        TeacherAgreement.teacherTargets(logits, classes: k, temperature: settings.loss.temperature)
    }

    /// Bytes of a file that `save` writes (to a temporary path, read back, removed).
    private func fileBytes(_ save: (String) throws -> Void) throws -> [UInt8] {
        let tmp = NSTemporaryDirectory() + "eartag-model-\(UUID().uuidString).safetensors"
        defer { unlink(tmp) }
        try save(tmp)
        guard let d = FileManager.default.contents(atPath: tmp) else {
            throw TrainerError.io(path: tmp, reason: "cannot read back the model")
        }
        return [UInt8](d)
    }

    /// Writes checkpoint.safetensors: the state dict, Adam's moments and step, the next epoch.
    private func saveCheckpoint(epoch: Int) throws {
        var tensors = student.stateDict().mapValues { SafetensorsTensor(float32: $0) }
        for (name, mv) in optimizer.moments() {
            tensors["adam.m." + name] = SafetensorsTensor(float32: Tensor(shape: [mv.m.count], data: mv.m))
            tensors["adam.v." + name] = SafetensorsTensor(float32: Tensor(shape: [mv.v.count], data: mv.v))
        }
        let file = SafetensorsFile(metadata: ["format": "eartag.checkpoint.v1", "epoch": "\(epoch)",
                                              "adam_step": "\(optimizer.step)", "seed": "\(settings.seed)"],
                                   tensors: tensors)
        try writeFile(file.serialized(), checkpointPath)
    }

    /// Restores the student and Adam from the checkpoint; returns the epoch to continue with.
    private func restoreCheckpoint() throws -> Int {
        let file = try SafetensorsFile.read(path: checkpointPath)
        guard file.metadata["format"] == "eartag.checkpoint.v1", let epoch = Int(file.metadata["epoch"] ?? ""),
              let step = Int(file.metadata["adam_step"] ?? "") else {
            throw TrainerError.io(path: checkpointPath, reason: "not an eartag training checkpoint")
        }
        // Every random draw of an epoch derives from (seed, epoch): the seed is the RNG state to restore.
        if let seed = file.metadata["seed"], seed != "\(settings.seed)" {
            throw TrainerError.io(path: checkpointPath, reason: "made with seed \(seed), this run has seed \(settings.seed)")
        }
        var tensors: [String: Tensor] = [:]
        for (n, t) in file.tensors {
            guard let v = t.float32Values() else { throw TrainerError.io(path: checkpointPath, reason: "\(n) is not F32") }
            tensors[n] = Tensor(shape: t.shape, data: v)
        }
        try student.load(tensors)
        var moments: [String: (m: [Float], v: [Float])] = [:]
        for p in student.parameters {
            guard let m = tensors["adam.m." + p.name], let v = tensors["adam.v." + p.name] else {
                throw TrainerError.io(path: checkpointPath, reason: "no optimizer state for \(p.name)")
            }
            moments[p.name] = (m.data, v.data)
        }
        try optimizer.restore(step: step, moments: moments)
        return epoch
    }
}

/// Index of the first largest value of a slice (relative to its start).
func argmax(_ v: ArraySlice<Float>) -> Int {
    var best = v.startIndex
    for i in v.indices where v[i] > v[best] { best = i }
    return best - v.startIndex
}
