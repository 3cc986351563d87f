// A teacher store: TEACHER_DIR/logits.npy (rows x classes), index.csv (row -> clip, duration), skipped.csv (clips
// the teacher could not read) and teacher.json (where the logits came from). Written by `eartag-train teach`.
import Foundation

/// One row of a teacher store: the clip it belongs to and the clip's duration (nil when unknown, e.g. imported).
public struct TeacherIndexEntry: Sendable, Equatable {
    public var row: Int
    public var file: String
    public var durationSeconds: Double?

    /// An index entry.
    public init(row: Int, file: String, durationSeconds: Double?) {
        self.row = row
        self.file = file
        self.durationSeconds = durationSeconds
    }
}

/// A clip the teacher did not produce a row for, and why.
public struct TeacherSkippedClip: Sendable, Equatable {
    public var file: String
    public var reason: String

    /// A skipped clip.
    public init(file: String, reason: String) {
        self.file = file
        self.reason = reason
    }
}

/// Where a store's logits came from (teacher.json).
public struct TeacherStoreInfo: Codable, Sendable, Equatable {
    /// Store layout version (1).
    public var format: Int
    /// "eartag teach" or "efficientat import".
    public var source: String
    /// The teacher model file (or the imported logits file) as given.
    public var teacher: String
    /// SHA-256 of that file.
    public var teacherSHA256: String
    public var classes: Int
    public var rows: Int

    /// Store metadata.
    public init(source: String, teacher: String, teacherSHA256: String, classes: Int, rows: Int) {
        self.format = 1
        self.source = source
        self.teacher = teacher
        self.teacherSHA256 = teacherSHA256
        self.classes = classes
        self.rows = rows
    }

    enum CodingKeys: String, CodingKey {
        case format, source, teacher, teacherSHA256 = "teacher_sha256", classes, rows
    }

    /// True for stores adopted from EfficientAT's published predictions (rows for more clips than a corpus holds).
    public var isImported: Bool { source == TeacherLogits.importSource }
}

/// A validated, memory-mapped teacher store.
public final class TeacherLogits: @unchecked Sendable {  // immutable after init; `data` is never written
    /// File names inside a teacher directory.
    public static let logitsName = "logits.npy", indexName = "index.csv", skippedName = "skipped.csv"
    public static let infoName = "teacher.json"
    /// `source` values of teacher.json.
    public static let teachSource = "eartag teach", importSource = "efficientat import"

    public let directory: String
    public let info: TeacherStoreInfo
    public let entries: [TeacherIndexEntry]
    public let skipped: [TeacherSkippedClip]
    public let header: NpyMatrixHeader
    private let data: Data
    private let rowByFile: [String: Int]

    /// Rows (clips with logits).
    public var rows: Int { header.rows }
    /// Classes per row.
    public var classCount: Int { header.columns }

    /// Opens TEACHER_DIR, checking that its files agree with each other (rows, classes, index order, data length).
    public init(directory: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw CorpusError.notFound(directory)
        }
        let dir = URL(fileURLWithPath: directory)
        let infoPath = dir.appendingPathComponent(Self.infoName).path
        let info: TeacherStoreInfo
        do {
            info = try JSONDecoder().decode(TeacherStoreInfo.self, from: Data(contentsOf: URL(fileURLWithPath: infoPath)))
        } catch {
            throw FileManager.default.fileExists(atPath: infoPath)
                ? CorpusError.badFile(infoPath, line: 0, reason: "not a teacher.json (\(error.localizedDescription))")
                : CorpusError.empty(directory, "not a teacher store (no \(Self.infoName); run `eartag-train teach` first)")
        }
        guard info.format == 1 else { throw CorpusError.badFile(infoPath, line: 0, reason: "format \(info.format)") }
        let logitsPath = dir.appendingPathComponent(Self.logitsName).path
        guard FileManager.default.fileExists(atPath: logitsPath) else { throw CorpusError.notFound(logitsPath) }
        let data = try Data(contentsOf: URL(fileURLWithPath: logitsPath), options: .alwaysMapped)
        let indexPath = dir.appendingPathComponent(Self.indexName).path
        let entries = try Self.parseIndex(Array(CorpusCSV.readText(indexPath).utf8), name: indexPath)
        let skippedPath = dir.appendingPathComponent(Self.skippedName).path
        let skipped = FileManager.default.fileExists(atPath: skippedPath)
            ? try Self.parseSkipped(Array(CorpusCSV.readText(skippedPath).utf8), name: skippedPath) : []
        let header = try Self.checkLogits(data, name: logitsPath, entries: entries.count, classes: info.classes)
        guard info.rows == entries.count else {
            throw CorpusError.mismatch(infoPath, "says \(info.rows) rows, \(Self.indexName) has \(entries.count)")
        }
        self.directory = directory
        self.info = info
        self.entries = entries
        self.skipped = skipped
        self.header = header
        self.data = data
        self.rowByFile = Dictionary(entries.map { ($0.file, $0.row) }, uniquingKeysWith: { a, _ in a })
    }

    /// The logits of one row (float32, `classCount` values). Invariant: `row < rows`.
    public func logits(row: Int) -> [Float] {
        precondition(row >= 0 && row < rows, "teacher row \(row) out of 0..<\(rows)")
        return data.withUnsafeBytes { npyRow($0, header, row: row) }
    }

    /// The row stored for a clip name, if any.
    public func row(for file: String) -> Int? { rowByFile[file] }

    /// Checks the store fits a corpus: same class count, a row (or a recorded skip) for every clip, and for a store
    /// made by `teach` nothing else. Returns the row of each clip (nil for clips the teacher skipped).
    public func rows(forCorpus names: [String], classCount: Int, corpusName: String) throws -> [Int?] {
        guard self.classCount == classCount else {
            throw CorpusError.mismatch(directory, "teacher logits have \(self.classCount) classes, the corpus"
                + " targets \(classCount)")
        }
        let skippedNames = Set(skipped.map(\.file))
        var out: [Int?] = []
        out.reserveCapacity(names.count)
        for name in names {
            if let r = rowByFile[name] {
                out.append(r)
            } else if skippedNames.contains(name) {
                out.append(nil)
            } else {
                throw CorpusError.mismatch(directory, "no teacher row for clip '\(name)' of \(corpusName) (teacher has"
                    + " \(rows) rows + \(skipped.count) skipped, corpus \(names.count) clips: rerun `eartag-train teach`)")
            }
        }
        if !info.isImported && rows + skipped.count != names.count {
            throw CorpusError.mismatch(directory, "teacher has \(rows) rows + \(skipped.count) skipped for"
                + " \(rows + skipped.count) clips, \(corpusName) has \(names.count) clips")
        }
        return out
    }

    /// Validates the logits file's header against the index and its byte length against the header.
    static func checkLogits(_ data: Data, name: String, entries: Int, classes: Int) throws -> NpyMatrixHeader {
        let header = try data.withUnsafeBytes { try NpyMatrixHeader.parse($0, name: name) }
        guard header.rows == entries else {
            throw CorpusError.mismatch(name, "has \(header.rows) rows, the index lists \(entries) clips")
        }
        guard header.columns == classes else {
            throw CorpusError.mismatch(name, "has \(header.columns) classes, \(infoName) says \(classes)")
        }
        let available = data.count - header.dataOffset
        guard available >= header.dataBytes else {
            throw NpyMatrixError.truncated(name, expectedBytes: header.dataBytes, actualBytes: max(0, available))
        }
        return header
    }

    /// Parses index.csv (`row,file,duration`; rows numbered 0, 1, 2, ... in order, file names unique).
    public static func parseIndex(_ bytes: [UInt8], name: String) throws -> [TeacherIndexEntry] {
        let lines = CorpusCSV.lines(try CorpusCSV.text(bytes, name: name))
        guard let head = lines.first,
              try CorpusCSV.fields(head.text, file: name, number: head.number) == ["row", "file", "duration"] else {
            throw CorpusError.badFile(name, line: 1, reason: "header is not 'row,file,duration'")
        }
        var out: [TeacherIndexEntry] = []
        var seen = Set<String>()
        for (number, line) in lines.dropFirst() {
            let f = try CorpusCSV.fields(line, file: name, number: number)
            guard f.count == 3 else { throw CorpusError.badFile(name, line: number, reason: "expected 3 fields, found \(f.count)") }
            guard let row = Int(f[0]), row == out.count else {
                throw CorpusError.badFile(name, line: number, reason: "row '\(f[0])', expected \(out.count)")
            }
            guard !f[1].isEmpty, seen.insert(f[1]).inserted else {
                throw CorpusError.badFile(name, line: number, reason: f[1].isEmpty ? "empty file name" : "'\(f[1])' listed twice")
            }
            var duration: Double? = nil
            if !f[2].isEmpty {
                guard let d = Double(f[2]), d.isFinite, d >= 0 else {
                    throw CorpusError.badFile(name, line: number, reason: "duration '\(f[2])' is not a number of seconds")
                }
                duration = d
            }
            out.append(TeacherIndexEntry(row: row, file: f[1], durationSeconds: duration))
        }
        return out
    }

    /// Parses skipped.csv (`file,reason`).
    public static func parseSkipped(_ bytes: [UInt8], name: String) throws -> [TeacherSkippedClip] {
        let lines = CorpusCSV.lines(try CorpusCSV.text(bytes, name: name))
        guard let head = lines.first,
              try CorpusCSV.fields(head.text, file: name, number: head.number) == ["file", "reason"] else {
            throw CorpusError.badFile(name, line: 1, reason: "header is not 'file,reason'")
        }
        return try lines.dropFirst().map { number, line in
            let f = try CorpusCSV.fields(line, file: name, number: number)
            guard f.count == 2, !f[0].isEmpty else { throw CorpusError.badFile(name, line: number, reason: "expected 'file,reason'") }
            return TeacherSkippedClip(file: f[0], reason: f[1])
        }
    }

    /// The index.csv text for entries.
    static func indexText(_ entries: [TeacherIndexEntry]) -> String {
        "row,file,duration\n" + entries.map {
            CorpusCSV.record([String($0.row), $0.file, $0.durationSeconds.map { String($0) } ?? ""])
        }.joined()
    }

    /// The skipped.csv text for skipped clips.
    static func skippedText(_ skipped: [TeacherSkippedClip]) -> String {
        "file,reason\n" + skipped.map { CorpusCSV.record([$0.file, $0.reason]) }.joined()
    }
}
