// Runs a teacher over a corpus and stores its logits, resumably: rows are appended to TEACHER_DIR/logits.partial and
// recorded in progress.csv (each synced), so a run killed at any point continues where it stopped; the finished
// store (logits.npy, index.csv, skipped.csv, then teacher.json last) is byte-identical to an uninterrupted run's.
import Foundation
import EarTagAudio
import EarTagModel

/// What a teacher run did.
public struct TeachSummary: Sendable, Equatable {
    /// Clips with a row.
    public var rows: Int
    /// Clips the teacher could not read (recorded in skipped.csv, no row).
    public var skipped: Int
    /// Clips already done by an earlier, interrupted run of the same teacher over the same corpus.
    public var resumedFrom: Int
    /// True when the store was already complete (nothing was computed).
    public var alreadyComplete: Bool
}

/// Stores a teacher's logits for every clip of a corpus in a teacher directory.
public final class TeachRun {
    /// Computes one clip's logits from its fitted 32 kHz samples.
    public typealias LogitsFunction = (_ samples: [Float], _ clip: CorpusClip) throws -> [Float]

    static let progressName = "progress.csv", partialName = "logits.partial"

    public let corpus: CorpusData
    public let output: String
    public let teacherPath: String
    public let classCount: Int
    private let teacherSHA256: String
    private var dir: URL { URL(fileURLWithPath: output, isDirectory: true) }

    /// Prepares a run of the teacher file at `teacherPath` (hashed, so a resumed run must use the same file).
    public init(corpus: CorpusData, output: String, teacherPath: String, classCount: Int) throws {
        self.corpus = corpus
        self.output = output
        self.teacherPath = teacherPath
        self.classCount = classCount
        self.teacherSHA256 = try sha256Hex(ofFile: teacherPath)
    }

    /// The first line of progress.csv: what the rows belong to (teacher file, classes, the corpus's clip list).
    var fingerprint: String {
        let names = corpus.clips.map(\.name).joined(separator: "\n")
        return "# eartag teach 1 teacher_sha256=\(teacherSHA256) classes=\(classCount) clips=\(corpus.clips.count)"
            + " corpus_sha256=\(sha256Hex(of: Array(names.utf8))) samples=\(corpus.clipSamples)\n"
    }

    /// Runs (or resumes, or recognises as finished) the store; `warn` gets one line per skipped clip, `progress`
    /// the clips done so far and the total. A `logits` error skips that clip, except `CancellationError`, which
    /// stops the run resumably.
    public func run(logits: LogitsFunction, warn: (String) -> Void,
                    progress: (Int, Int) -> Void = { _, _ in }) throws -> TeachSummary {
        try createDirectory()
        if let done = try finishedStore() { return done }
        let state = try openProgress()
        defer { try? state.progress.close(); try? state.partial.close() }
        var rows = state.rows
        var skipped = state.skipped
        let total = corpus.clips.count
        for i in state.done..<total {
            let clip = corpus.clips[i]
            let values: [Float]
            do {
                values = try logits(try corpus.waveform(clip), clip)
            } catch let stop as CancellationError {
                throw stop  // the caller stops the run; the progress kept so far is resumed by the next run
            } catch {
                let reason = String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " ")
                warn("\(clip.name): skipped, the teacher has no row for it: \(reason)")
                try append(Data(CorpusCSV.record(["skip", clip.name, reason]).utf8), to: state.progress)
                skipped.append(TeacherSkippedClip(file: clip.name, reason: reason))
                progress(i + 1, total)
                continue
            }
            guard values.count == classCount else {
                throw CorpusError.mismatch(teacherPath, "gave \(values.count) logits, expected \(classCount)")
            }
            guard values.allSatisfy(\.isFinite) else {
                throw CorpusError.mismatch(teacherPath, "gave a non-finite logit for \(clip.name)")
            }
            let duration = (try? audioDurationSeconds(clip.path)) ?? Double(corpus.clipSamples) / Double(CorpusData.sampleRate)
            // The row first, then its record: a kill between the two leaves an extra row that the resume trims.
            // Rows are native float32, which logits.npy declares as '<f4' (every supported target is little-endian).
            try append(values.withUnsafeBytes { Data($0) }, to: state.partial)
            try append(Data(CorpusCSV.record(["ok", clip.name, String(duration)]).utf8), to: state.progress)
            rows.append(TeacherIndexEntry(row: rows.count, file: clip.name, durationSeconds: duration))
            progress(i + 1, total)
        }
        guard !rows.isEmpty else {
            throw CorpusError.empty(corpus.source, "the teacher could read none of its \(total) clips")
        }
        try finish(rows: rows, skipped: skipped)
        return TeachSummary(rows: rows.count, skipped: skipped.count, resumedFrom: state.done, alreadyComplete: false)
    }

    /// Creates the output directory (refusing a path that is a file).
    private func createDirectory() throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: output, isDirectory: &isDir) {
            guard isDir.boolValue else { throw CorpusError.unwritable(output, "exists and is not a directory") }
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        } catch {
            throw CorpusError.unwritable(output, error.localizedDescription)
        }
    }

    /// A complete store of this teacher for this corpus (summary), nil when there is none, an error when the
    /// directory holds another teacher's or corpus's store.
    private func finishedStore() throws -> TeachSummary? {
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent(TeacherLogits.infoName).path) else { return nil }
        let store = try TeacherLogits(directory: output)
        let names = store.entries.map(\.file) + store.skipped.map(\.file)
        guard store.info.teacherSHA256 == teacherSHA256, store.classCount == classCount,
              Set(names) == Set(corpus.clips.map(\.name)), names.count == corpus.clips.count else {
            throw CorpusError.mismatch(output, "already holds the logits of another teacher or corpus"
                + " (remove it or choose another -o)")
        }
        for name in [Self.progressName, Self.partialName] { try? FileManager.default.removeItem(at: dir.appendingPathComponent(name)) }
        return TeachSummary(rows: store.rows, skipped: store.skipped.count, resumedFrom: names.count, alreadyComplete: true)
    }

    /// Open progress files and what they already hold.
    private struct Progress {
        var progress: FileHandle
        var partial: FileHandle
        var done: Int
        var rows: [TeacherIndexEntry]
        var skipped: [TeacherSkippedClip]
    }

    /// Opens (creating or validating and trimming) progress.csv and logits.partial.
    private func openProgress() throws -> Progress {
        let progressPath = dir.appendingPathComponent(Self.progressName).path
        let partialPath = dir.appendingPathComponent(Self.partialName).path
        var rows: [TeacherIndexEntry] = []
        var skipped: [TeacherSkippedClip] = []
        var keepBytes = 0
        if FileManager.default.fileExists(atPath: progressPath) {
            let bytes = [UInt8](FileManager.default.contents(atPath: progressPath) ?? Data())
            // Only whole lines count: a line cut by a kill is dropped and redone.
            let complete = bytes.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
            let text = try CorpusCSV.text(bytes[..<complete], name: progressPath)
            guard text.hasPrefix(fingerprint) else {
                throw CorpusError.mismatch(output, "holds an unfinished run of another teacher or corpus"
                    + " (remove it or choose another -o)")
            }
            keepBytes = complete
            for (k, (number, line)) in CorpusCSV.lines(String(text.dropFirst(fingerprint.count))).enumerated() {
                let f = try CorpusCSV.fields(line, file: progressPath, number: number + 1)
                let i = rows.count + skipped.count
                guard k == i, i < corpus.clips.count, f.count == 3, f[1] == corpus.clips[i].name else {
                    throw CorpusError.badFile(progressPath, line: number + 1, reason: "does not follow the corpus order")
                }
                if f[0] == "ok", let d = Double(f[2]) {
                    rows.append(TeacherIndexEntry(row: rows.count, file: f[1], durationSeconds: d))
                } else if f[0] == "skip" {
                    skipped.append(TeacherSkippedClip(file: f[1], reason: f[2]))
                } else {
                    throw CorpusError.badFile(progressPath, line: number + 1, reason: "unknown record '\(f[0])'")
                }
            }
        }
        if keepBytes == 0 {
            guard FileManager.default.createFile(atPath: progressPath, contents: Data(fingerprint.utf8)),
                  FileManager.default.createFile(atPath: partialPath, contents: Data()) else {
                throw CorpusError.unwritable(output, "cannot create \(Self.progressName)")
            }
            keepBytes = fingerprint.utf8.count
        }
        let rowBytes = UInt64(rows.count * classCount * 4)
        let partialSize = ((try? FileManager.default.attributesOfItem(atPath: partialPath))?[.size] as? UInt64) ?? 0
        guard partialSize >= rowBytes else {
            throw CorpusError.mismatch(partialPath, "holds \(partialSize) bytes, the progress records \(rows.count) rows;"
                + " remove \(output) and start again")
        }
        let progress = try FileHandle(forWritingTo: URL(fileURLWithPath: progressPath))
        try progress.truncate(atOffset: UInt64(keepBytes))
        try progress.seekToEnd()
        let partial = try FileHandle(forWritingTo: URL(fileURLWithPath: partialPath))
        try partial.truncate(atOffset: rowBytes)
        try partial.seekToEnd()
        return Progress(progress: progress, partial: partial, done: rows.count + skipped.count, rows: rows, skipped: skipped)
    }

    /// Appends bytes and syncs them to disk.
    private func append(_ data: Data, to handle: FileHandle) throws {
        try handle.write(contentsOf: data)
        try handle.synchronize()
    }

    /// Writes the finished store: logits.npy (header + the partial rows), index.csv, skipped.csv, then teacher.json,
    /// each atomically; then removes the progress files.
    private func finish(rows: [TeacherIndexEntry], skipped: [TeacherSkippedClip]) throws {
        let partialURL = dir.appendingPathComponent(Self.partialName)
        let logits = try Data(contentsOf: partialURL, options: .alwaysMapped)
        precondition(logits.count >= rows.count * classCount * 4, "partial logits shorter than the progress says")
        var npy = Data(NpyMatrixHeader.float32HeaderBytes(rows: rows.count, columns: classCount))
        npy.append(logits.prefix(rows.count * classCount * 4))
        try writeAtomically(npy, TeacherLogits.logitsName)
        try writeAtomically(Data(TeacherLogits.indexText(rows).utf8), TeacherLogits.indexName)
        try writeAtomically(Data(TeacherLogits.skippedText(skipped).utf8), TeacherLogits.skippedName)
        let info = TeacherStoreInfo(source: TeacherLogits.teachSource, teacher: teacherPath, teacherSHA256: teacherSHA256,
                                    classes: classCount, rows: rows.count)
        try writeStoreInfo(info, in: output)
        for url in [partialURL, dir.appendingPathComponent(Self.progressName)] { try? FileManager.default.removeItem(at: url) }
    }

    /// Writes one file of the store atomically (temporary file, sync, rename).
    private func writeAtomically(_ data: Data, _ name: String) throws {
        try writeFileAtomically(data, to: dir.appendingPathComponent(name).path)
    }
}

/// Writes teacher.json (the store's commit marker) atomically into `directory`.
func writeStoreInfo(_ info: TeacherStoreInfo, in directory: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let path = URL(fileURLWithPath: directory).appendingPathComponent(TeacherLogits.infoName).path
    try writeFileAtomically(try encoder.encode(info) + Data("\n".utf8), to: path)
}

/// Writes a file through a synced temporary file renamed over the target.
func writeFileAtomically(_ data: Data, to path: String) throws {
    let tmp = path + ".tmp"
    guard FileManager.default.createFile(atPath: tmp, contents: data) else {
        throw CorpusError.unwritable(path, "cannot create \(tmp)")
    }
    let fd = open(tmp, O_RDONLY)
    if fd >= 0 { fsync(fd); close(fd) }
    guard rename(tmp, path) == 0 else {
        let why = String(cString: strerror(errno))
        unlink(tmp)
        throw CorpusError.unwritable(path, why)
    }
}

/// The duration of an audio file from its header (frames / rate), without decoding it.
func audioDurationSeconds(_ path: String) throws -> Double {
    let file = try SoundFile(readingPath: path)
    defer { file.close() }
    guard file.info.sampleRate > 0, file.info.frames != Int64.max else {
        throw AudioError.invalidParameters(file: path, detail: "unknown length")
    }
    return Double(file.info.frames) / Double(file.info.sampleRate)
}
