// `eartag-train evaluate`: how closely models (float or int8) follow the teacher on a corpus split, the figures
// of a model card (mAP and ROC-AUC against the teacher's binarized outputs, top-1 and top-5 agreement).
import ArgumentParser
import Foundation
import EarTagModel
import EarTagPipeline
import EarTagTraining

/// `eartag-train evaluate`.
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure how closely models follow the teacher on a corpus split (mAP, ROC-AUC, top-1/top-5 agreement).",
        discussion: """
            Runs each --model (float or int8 .safetensors, through the same engine `eartag tag` uses) over the clips \
            of --split, fitted to 10 s as `teach` and `train` read them, and compares its logits with the teacher \
            store's: mAP and ROC-AUC over classes against the teacher's hard targets (sigmoid(logit / T) >= 0.5, plus \
            each clip's top-1 class, as `train` evaluates every epoch), the fraction of clips whose top-1 class is the \
            teacher's, and the fraction whose top 5 holds the teacher's top-1 class.
            """)

    @Option(name: .customLong("model"), help: ArgumentHelp("Model to evaluate (repeat for several).", valueName: "MODEL"))
    var models: [String] = []
    @Option(help: ArgumentHelp("Corpus folder (its manifest.csv when present) or CSV manifest.", valueName: "DIR_OR_MANIFEST"))
    var data: String
    @Option(help: ArgumentHelp("Teacher logits written by `eartag-train teach` for this corpus.", valueName: "TEACHER_DIR"))
    var teacher: String
    @Option(help: ArgumentHelp("Clips to use: validation (the held-out split), train or all.", valueName: "SPLIT"))
    var split: String = "validation"
    @Option(help: "Distillation temperature T of the teacher's targets.") var temperature: Double = 1
    @Option(help: "Threads for the engine.") var threads: Int = 1
    @Option(help: ArgumentHelp("Decoded-audio cache folder (default: .eartag-cache in the corpus folder).", valueName: "DIR"))
    var cache: String?
    @Flag(help: "One JSON object per model instead of the table.") var json = false

    func validate() throws {
        guard !models.isEmpty else { throw ValidationError("give at least one --model MODEL") }
        guard ["validation", "train", "all"].contains(split) else {
            throw ValidationError("--split must be validation, train or all, got '\(split)'")
        }
        guard temperature > 0, temperature.isFinite else {
            throw ValidationError("--temperature must be positive, got \(temperature)")
        }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        let store = try teachFail { try TeacherLogits(directory: teacher) }
        let corpus = try teachFail {
            try CorpusData(path: data, classCount: store.classCount, teacher: store, cacheDirectory: cache)
        }
        let splits: [DataSplit] = split == "all" ? [.train, .validation] : [split == "train" ? .train : .validation]
        let count = splits.reduce(0) { $0 + corpus.count($1) }
        guard count > 0 else {
            Log.error("\(data): the \(split) split holds no clips with teacher logits")
            throw ExitCode(1)
        }
        if !json {
            print("clips: \(count) (\(split) split of \(data)); teacher: \(store.info.teacher)")
            print("| model | clips | mAP vs teacher | ROC-AUC | top-1 agreement | teacher top-1 in top 5 |")
            print("| --- | --- | --- | --- | --- | --- |")
        }
        for path in models {
            let model = try teachFail { try AnyModel.load(path: path) }
            guard model.architecture.numClasses == store.classCount else {
                Log.error("\(path): the model has \(model.architecture.numClasses) classes, the teacher store "
                          + "\(teacher) has \(store.classCount)")
                throw ExitCode(1)
            }
            guard model.frontend.sampleRate == CorpusData.sampleRate else {
                Log.error("\(path): the model expects \(model.frontend.sampleRate) Hz, the corpus is \(CorpusData.sampleRate) Hz")
                throw ExitCode(1)
            }
            let tagger = try teachFail { try FileTagger(model: model, threads: threads) }
            var logits: [Float] = [], teacherLogits: [Float] = []
            logits.reserveCapacity(count * store.classCount)
            teacherLogits.reserveCapacity(count * store.classCount)
            for s in splits {
                for i in 0..<corpus.count(s) {
                    let e = try teachFail { try corpus.example(s, i) }
                    let r = try teachFail {
                        try tagger.tag(samples: e.waveform, file: e.name,
                                       durationSeconds: Double(e.waveform.count) / Double(CorpusData.sampleRate))
                    }
                    logits += r.logits
                    teacherLogits += e.teacherLogits!
                }
            }
            let a = TeacherAgreement.measure(logits: logits, teacherLogits: teacherLogits, classes: store.classCount,
                                             temperature: temperature)
            let f = { (v: Double?, d: Int) in v.map { String(format: "%.\(d)f", $0) } ?? "-" }
            if json {
                let jf = { (v: Double?) in v.map { String(format: "%.6f", $0) } ?? "null" }
                print("{\"model\":\(jsonString(path)),\"split\":\"\(split)\",\"clips\":\(a.clips),\"map\":\(jf(a.map)),"
                      + "\"auc\":\(jf(a.auc)),\"top1_agreement\":\(jf(a.top1)),\"top5_agreement\":\(jf(a.top5))}")
            } else {
                print("| \(path) | \(a.clips) | \(f(a.map, 4)) | \(f(a.auc, 4)) | \(f(a.top1, 3)) | \(f(a.top5, 3)) |")
            }
        }
    }
}
