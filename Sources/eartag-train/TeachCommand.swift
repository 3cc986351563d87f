// `eartag-train teach`: store a teacher's logits for a corpus, or adopt EfficientAT's published ones.
import ArgumentParser
import Foundation
import EarTagModel
import EarTagPipeline
import EarTagTraining

/// `eartag-train teach` (also `eartag teach`).
struct Teach: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Store a teacher model's logits for every clip of a corpus (resumable), or import EfficientAT's.",
        discussion: """
            Writes TEACHER_DIR/logits.npy (float32, one row per clip), index.csv (row,file,duration), skipped.csv \
            (clips the teacher could not read: no row, a warning each) and teacher.json. Killed and rerun with the \
            same arguments, it continues where it stopped. Every clip is decoded to 32 kHz mono and fitted to 10 s \
            (tiled or cut), exactly as `eartag-train train` reads it.
            """)

    @Option(help: ArgumentHelp("Teacher model (float or int8 .safetensors).", valueName: "MODEL"))
    var teacher: String?
    @Option(help: ArgumentHelp("Corpus folder (its manifest.csv when present) or CSV manifest.", valueName: "DIR_OR_MANIFEST"))
    var data: String?
    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("Teacher directory to write.", valueName: "TEACHER_DIR"))
    var output: String
    @Option(help: "Threads for the engine.") var threads: Int = 1
    @Option(help: ArgumentHelp("Decoded-audio cache folder (default: .eartag-cache in the corpus folder).", valueName: "DIR"))
    var cache: String?
    @Option(name: .customLong("import-efficientat"), parsing: .upToNextOption,
            help: ArgumentHelp("Adopt EfficientAT's published logits: LOGITS.npy FNAME_TO_INDEX.pkl (instead of --teacher/--data).",
                               valueName: "FILE"))
    var importEfficientAT: [String] = []

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        if importEfficientAT.isEmpty {
            guard teacher != nil else { throw ValidationError("--teacher MODEL is required (or --import-efficientat)") }
            guard data != nil else { throw ValidationError("--data DIR_OR_MANIFEST is required") }
        } else {
            guard importEfficientAT.count == 2 else {
                throw ValidationError("--import-efficientat takes two files: LOGITS.npy FNAME_TO_INDEX.pkl")
            }
            guard teacher == nil, data == nil else {
                throw ValidationError("--import-efficientat replaces --teacher and --data")
            }
        }
    }

    func run() throws {
        if !importEfficientAT.isEmpty {
            let rows = try teachFail {
                try TeacherImport.importEfficientAT(logitsPath: importEfficientAT[0], indexPath: importEfficientAT[1],
                                                    output: output)
            }
            print("imported \(rows) rows of \(importEfficientAT[0]) into \(output)")
            return
        }
        let teacherPath = teacher!
        let model = try teachFail { try AnyModel.load(path: teacherPath) }
        let classes = model.architecture.numClasses
        let corpus = try teachFail { try CorpusData(path: data!, classCount: classes, cacheDirectory: cache) }
        guard model.frontend.sampleRate == CorpusData.sampleRate else {
            Log.error("\(teacherPath): the teacher expects \(model.frontend.sampleRate) Hz, the corpus is \(CorpusData.sampleRate) Hz")
            throw ExitCode(1)
        }
        let tagger = try teachFail { try FileTagger(model: model, threads: threads) }
        let run = try teachFail { try TeachRun(corpus: corpus, output: output, teacherPath: teacherPath, classCount: classes) }
        let bar = TeachProgressLine()
        let summary = try teachFail {
            try run.run(logits: { samples, clip in
                try tagger.tag(samples: samples, file: clip.path,
                               durationSeconds: Double(samples.count) / Double(CorpusData.sampleRate)).logits
            }, warn: { bar.clear(); Log.warning($0) }, progress: bar.update)
        }
        bar.clear()
        if summary.alreadyComplete {
            print("\(output): already complete (\(summary.rows) rows, \(summary.skipped) skipped)")
        } else {
            let resumed = summary.resumedFrom > 0 ? ", resumed after \(summary.resumedFrom) clips" : ""
            print("\(output): \(summary.rows) rows, \(summary.skipped) skipped\(resumed)")
        }
    }
}

/// Runs `body`, turning any error into a one-line `eartag: message` on stderr and exit status 1.
func teachFail<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as ExitCode {
        throw e
    } catch {
        Log.error(String(describing: error))
        throw ExitCode(1)
    }
}

/// A progress line (clips done, clips/s) rewritten in place on a terminal; silent otherwise.
final class TeachProgressLine {
    private let terminal = isatty(2) != 0
    private let start = Date()
    private var shown = false
    /// Clips already done when this run started (a resumed run's rate counts only its own clips).
    private var base: Int?

    /// Shows `done` of `total`.
    func update(_ done: Int, _ total: Int) {
        guard terminal else { return }
        if base == nil { base = done - 1 }
        let rate = Double(done - base!) / max(Date().timeIntervalSince(start), 1e-3)
        FileHandle.standardError.write(Data("\r\(done)/\(total) clips, \(String(format: "%.1f", rate)) clips/s ".utf8))
        shown = true
    }

    /// Removes the line before other output.
    func clear() {
        guard shown else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
        shown = false
    }
}
