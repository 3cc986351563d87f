// `eartag-train train`: distil or fine-tune a student over a corpus (CorpusData + Trainer), or measure training
// throughput on synthetic clips (--benchmark).
import ArgumentParser
import EarTagModel
import EarTagPipeline
import EarTagTraining
import Foundation

/// `eartag-train train` (also `eartag train`).
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a student by distillation and/or from labels, or measure training throughput (--benchmark).",
        discussion: """
            Writes OUT_DIR/checkpoint.safetensors and a metrics.jsonl line after every epoch, then \
            model.safetensors (float), model.int8.safetensors (calibrated on training clips) and curves.svg. \
            Labels come from the corpus manifest's labels column; teacher logits from `eartag-train teach`. \
            With labels and a teacher the loss is lambda * BCE(labels) + (1 - lambda) * BCE(student, \
            sigmoid(teacher / T)); with only a teacher, pure distillation; with only labels, supervised training.
            """)

    @Flag(help: "Measure training throughput on synthetic 10 s clips instead of training.") var benchmark = false
    @Option(help: "Width multiplier of a new student (EfficientAT MN, in (0, 4]; --benchmark default 0.4).")
    var width: Double?
    @Option(name: .customLong("init"),
            help: ArgumentHelp("Fine-tune this float model instead of a new student.", valueName: "MODEL"))
    var initModel: String?
    @Option(help: ArgumentHelp("Labels (class_labels_indices.csv format) of the classes to train; with --init, a new head.",
                               valueName: "LABELS.csv"))
    var classes: String?
    @Option(help: ArgumentHelp("Corpus folder (its manifest.csv when present) or CSV manifest.", valueName: "DIR_OR_MANIFEST"))
    var data: String?
    @Option(help: ArgumentHelp("Teacher logits written by `eartag-train teach`.", valueName: "TEACHER_DIR"))
    var teacher: String?
    @Option(help: "Epochs to train.") var epochs: Int = 10
    @Option(name: .customLong("batch-size"), help: "Clips per step.") var batchSize: Int = 8
    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("Folder for the outputs.", valueName: "OUT_DIR"))
    var output: String?
    @Option(help: "Base learning rate.") var lr: Double = 1e-3
    @Flag(help: "AdamW (decoupled weight decay) instead of Adam.") var adamw = false
    @Option(name: .customLong("weight-decay"), help: "Weight decay (L2 for Adam, decoupled for AdamW).")
    var weightDecay: Double = 0
    @Option(help: "Weight of the label loss when both labels and teacher logits exist.") var lambda: Double = 0.1
    @Option(help: "Distillation temperature T.") var temperature: Double = 1
    @Option(help: "Epochs of exponential learning-rate warm-up (0: none).") var warmup: Double = 8
    @Option(name: .customLong("rampdown-start"), help: "Epoch where the linear learning-rate ramp-down starts.")
    var rampdownStart: Double = 80
    @Option(name: .customLong("rampdown-length"), help: "Epochs of the ramp-down to 1% of the base rate.")
    var rampdownLength: Double = 95
    @Option(help: "Seed of initialisation, shuffling, augmentation and dropout.") var seed: UInt64 = 0
    @Flag(help: "Continue from OUT_DIR/checkpoint.safetensors (same arguments as the interrupted run).")
    var resume = false
    @Option(help: ArgumentHelp("Decoded-audio cache folder (default: .eartag-cache in the corpus folder).", valueName: "DIR"))
    var cache: String?
    @Option(help: "Timed steps of --benchmark (after one warm-up step).") var steps: Int = 20
    @Option(help: "Threads (default: every core).") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Flag(help: "With --benchmark: print one JSON object instead of the text report.") var json = false

    /// Refuses bad arguments with one `eartag: ...` line and exit status 1 (no usage dump).
    func validate() throws {
        /// The refusal.
        func refuse(_ message: String) -> ExitCode {
            Log.error(message)
            return ExitCode(1)
        }
        if let width, !(width > 0 && width <= 4 && width.isFinite) { throw refuse("--width must be in (0, 4], got \(width)") }
        guard batchSize >= 2 else { throw refuse("--batch-size must be at least 2 (BatchNorm in training mode), got \(batchSize)") }
        guard threads >= 1 else { throw refuse("--threads must be at least 1, got \(threads)") }
        if benchmark {
            guard steps >= 1 else { throw refuse("--steps must be at least 1, got \(steps)") }
            guard initModel == nil, data == nil else { throw refuse("--benchmark takes no --init or --data") }
            return
        }
        guard (width == nil) != (initModel == nil) else {
            throw refuse("give exactly one of --width W (a new student) and --init MODEL (fine-tuning), or --benchmark")
        }
        guard data != nil else { throw refuse("--data DIR_OR_MANIFEST is required") }
        guard output != nil else { throw refuse("-o OUT_DIR is required") }
        guard epochs >= 1 else { throw refuse("--epochs must be at least 1, got \(epochs)") }
        guard lr > 0, lr.isFinite else { throw refuse("--lr must be a positive number, got \(lr)") }
        guard weightDecay >= 0, weightDecay.isFinite else { throw refuse("--weight-decay must be >= 0, got \(weightDecay)") }
        guard (0...1).contains(lambda) else { throw refuse("--lambda must be in [0, 1], got \(lambda)") }
        guard temperature > 0, temperature.isFinite else { throw refuse("--temperature must be positive, got \(temperature)") }
        guard warmup >= 0, rampdownStart >= 0, rampdownLength > 0,
              warmup.isFinite, rampdownStart.isFinite, rampdownLength.isFinite else {
            throw refuse("--warmup and --rampdown-start must be >= 0 and --rampdown-length > 0")
        }
    }

    func run() throws {
        if benchmark { return try runBenchmark() }
        let out = output!
        // The student: a new one, or the --init model (its head replaced when --classes gives other classes).
        var labels: [Label]? = try classes.map { path in try teachFail { try LabelFile.read(path: path) } }
        let initial: FloatModel? = try initModel.map { path in try teachFail { try loadFloatModel(path) } }
        let teacherStore = try teacher.map { dir in try teachFail { try TeacherLogits(directory: dir) } }
        let classCount = labels?.count ?? initial?.architecture.numClasses ?? teacherStore?.classCount ?? 527
        let frontend = initial?.frontend ?? .efficientAT
        guard frontend.sampleRate == CorpusData.sampleRate else {
            Log.error("\(initModel!): the model expects \(frontend.sampleRate) Hz, the corpus is \(CorpusData.sampleRate) Hz")
            throw ExitCode(1)
        }
        let corpus = try teachFail {
            try CorpusData(path: data!, classCount: classCount, teacher: teacherStore, cacheDirectory: cache,
                           clipSamples: CorpusData.defaultClipSamples)
        }
        guard teacherStore != nil || corpus.clips.contains(where: { $0.labels != nil }) else {
            Log.error("\(data!): the corpus has no labels and no --teacher was given: nothing to learn from")
            throw ExitCode(1)
        }
        if teacherStore == nil, let c = corpus.clips.first(where: { $0.labels == nil }) {
            Log.error("\(data!): clip '\(c.name)' has no labels and no --teacher was given")
            throw ExitCode(1)
        }
        let student = try teachFail { try makeStudent(initial: initial, classCount: classCount) }
        if labels == nil { labels = initial?.labels ?? teacherLabels(teacherStore, classCount: classCount) }
        var settings = TrainerSettings(outputDirectory: out)
        settings.epochs = epochs
        settings.batchSize = batchSize
        settings.learningRate = lr
        settings.schedule = LearningRateSchedule(warmup: warmup, rampdownLength: rampdownLength,
                                                 startRampdown: rampdownStart)
        settings.variant = adamw ? .adamw : .adam
        settings.weightDecay = weightDecay
        settings.loss = DistillationLoss(labelWeight: lambda, temperature: temperature)
        settings.frontend = frontend
        settings.seed = seed
        let checkpoint = (out as NSString).appendingPathComponent("checkpoint.safetensors")
        if !resume && FileManager.default.fileExists(atPath: checkpoint) {
            Log.error("\(out): holds a checkpoint of an earlier run: pass --resume to continue it, or choose another folder")
            throw ExitCode(1)
        }
        let trainer = try teachFail { try Trainer(student: student, data: corpus, settings: settings) }
        trainer.labels = labels ?? trainer.labels
        let bar = TrainProgressBar(epochs: epochs)
        trainer.log = { message in
            bar.clear()
            if message.hasPrefix("warning: ") { Log.warning(String(message.dropFirst(9))) } else { Log.info(message) }
        }
        trainer.progress = bar.update
        if !corpus.excludedByTeacher.isEmpty {
            Log.warning("\(corpus.excludedByTeacher.count) clips left out: the teacher store has no row for them "
                        + "(see \(teacher!)/\(TeacherLogits.skippedName))")
        }
        let history = try teachFail { try trainer.run(resume: resume) }
        bar.clear()
        let last = history.last
        print("\(out): \(history.count) epochs, train_loss \(fmt(last?.train_loss)), val_map \(fmt(last?.val_map)); "
              + "model.safetensors, model.int8.safetensors, metrics.jsonl, curves.svg")
    }

    /// A float model for --init; an int8 model or any other file is refused naming it.
    private func loadFloatModel(_ path: String) throws -> FloatModel {
        switch try AnyModel.load(path: path) {
        case .float(let m): return m
        case .int8: throw CorpusError.mismatch(path, "is an int8 model; --init needs a float model (.safetensors from "
                                                  + "`eartag import` or `eartag-train train`)")
        }
    }

    /// The student to train: new (--width) or the --init model, with a new head when the class count changes.
    private func makeStudent(initial: FloatModel?, classCount: Int) throws -> Student {
        guard let initial else {
            let arch = try Architecture.efficientAT(widthMult: width!, head: .mlp, numClasses: classCount, channelSE: true)
            return try Student(architecture: arch, seed: seed, threads: threads)
        }
        var arch = initial.architecture
        arch.numClasses = classCount
        let student = try Student(architecture: arch, seed: seed, threads: threads)
        // Every tensor of the model whose shape still fits; the new head keeps its fresh initialisation.
        var tensors = student.stateDict()
        for (name, t) in initial.tensors where tensors[name]?.shape == t.shape { tensors[name] = t }
        try student.load(tensors)
        return student
    }

    /// The teacher model's labels when its file is still where teach found it and has `classCount` classes.
    private func teacherLabels(_ store: TeacherLogits?, classCount: Int) -> [Label]? {
        guard let path = store?.info.teacher, !(store?.info.isImported ?? true),
              let model = try? AnyModel.load(path: path), model.labels.count == classCount else { return nil }
        return model.labels
    }

    /// A metric for the summary line.
    private func fmt(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "-" }

    /// `--benchmark`: training throughput on synthetic clips.
    private func runBenchmark() throws {
        let r: TrainingBenchmark.Result
        do {
            r = try TrainingBenchmark.run(width: width ?? 0.4, batch: batchSize, steps: steps, threads: threads)
        } catch {
            FileHandle.standardError.write(Data("eartag-train: benchmark: \(error)\n".utf8))
            throw ExitCode(1)
        }
        if json {
            let fmt = { (v: Double) in String(format: "%.3f", v) }
            print("{\"width\":\(r.width),\"batch_size\":\(r.batch),\"steps\":\(r.steps),\"threads\":\(r.threads),"
                  + "\"clip_seconds\":\(r.clipSeconds),\"clips_per_s\":\(fmt(r.clipsPerSecond)),"
                  + "\"median_step_ms\":\(fmt(r.medianStepSeconds * 1000)),"
                  + "\"cpu_ms_per_clip\":\(fmt(r.cpuSecondsPerClip * 1000))}")
            return
        }
        print(String(format: "width %.2f, batch %d, %d steps, %d threads, %.0f s clips", r.width, r.batch, r.steps,
                     r.threads, r.clipSeconds))
        print(String(format: "clips_per_s %.2f (median step %.1f ms), CPU time %.1f ms per clip", r.clipsPerSecond,
                     r.medianStepSeconds * 1000, r.cpuSecondsPerClip * 1000))
        let total = r.layerMilliseconds.reduce(0) { $0 + $1.1 }
        print("per step, by layer kind (forward + backward):")
        for (name, ms) in r.layerMilliseconds.sorted(by: { $0.1 > $1.1 }) {
            let label = name.padding(toLength: max(20, name.count), withPad: " ", startingAt: 0)
            print("  " + label + String(format: " %8.1f ms  %5.1f%%", ms, 100 * ms / max(total, 1e-9)))
        }
    }
}

/// A progress bar (epoch, clips done, clips/s, ETA of the epoch) rewritten in place when stderr is a terminal;
/// silent otherwise (the trainer's one line per epoch is the plain progress).
final class TrainProgressBar {
    private let terminal = isatty(2) != 0
    private let epochs: Int
    private var shown = false

    /// A bar for a run of `epochs` epochs.
    init(epochs: Int) { self.epochs = epochs }

    /// Shows epoch `epoch`'s `done` of `total` clips at `rate` clips/s.
    func update(_ epoch: Int, _ done: Int, _ total: Int, _ rate: Double) {
        guard terminal, total > 0 else { return }
        let width = 30, filled = width * done / total
        let eta = rate > 0 ? Int((Double(total - done) / rate).rounded()) : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let line = String(format: "\repoch %d/%d [%@] %d/%d clips, %.1f clips/s, ETA %d:%02d ", epoch, epochs, bar,
                          done, total, rate, eta / 60, eta % 60)
        FileHandle.standardError.write(Data(line.utf8))
        shown = true
    }

    /// Removes the bar before other output.
    func clear() {
        guard shown else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
        shown = false
    }
}
