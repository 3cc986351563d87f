// Adopts EfficientAT's published teacher predictions (an ensemble's logits `.npy` plus a pickled fname -> row
// dict) as a teacher store, so a user who has AudioSet can reproduce the paper's distillation recipe.
// ref: EfficientAT datasets/audioset.py (get_ensemble_logits: fname_to_index[fname] selects a row of the logits)
import Foundation
import EarTagModel

/// Imports EfficientAT's logits into a teacher directory.
public enum TeacherImport {
    /// Writes TEACHER_DIR from `logitsPath` (rows x classes, float16/32/64) and `indexPath` ({fname: row});
    /// rows are stored in row order, names as the pickle gives them. Returns the row count.
    @discardableResult
    public static func importEfficientAT(logitsPath: String, indexPath: String, output: String) throws -> Int {
        guard FileManager.default.fileExists(atPath: logitsPath) else { throw CorpusError.notFound(logitsPath) }
        guard FileManager.default.fileExists(atPath: indexPath) else { throw CorpusError.notFound(indexPath) }
        let pairs = try PickledIndex.read(path: indexPath)
        guard !pairs.isEmpty else { throw CorpusError.empty(indexPath, "the index names no files") }
        let data = try Data(contentsOf: URL(fileURLWithPath: logitsPath), options: .alwaysMapped)
        let header = try data.withUnsafeBytes { try NpyMatrixHeader.parse($0, name: logitsPath) }
        let available = data.count - header.dataOffset
        guard available >= header.dataBytes else {
            throw NpyMatrixError.truncated(logitsPath, expectedBytes: header.dataBytes, actualBytes: max(0, available))
        }
        guard header.columns > 0 else { throw CorpusError.mismatch(logitsPath, "has no classes") }
        var seenRows = Set<Int>()
        for (name, row) in pairs {
            guard row >= 0, row < header.rows else {
                throw CorpusError.mismatch(indexPath, "'\(name)' points at row \(row), \(logitsPath) has \(header.rows) rows")
            }
            guard seenRows.insert(row).inserted else { throw CorpusError.mismatch(indexPath, "row \(row) is named twice") }
            guard !name.isEmpty, !name.contains(where: \.isNewline) else {
                throw CorpusError.mismatch(indexPath, "a file name is empty or holds a line break")
            }
        }
        let ordered = pairs.sorted { $0.row < $1.row }
        var isDir: ObjCBool = false
        if !FileManager.default.fileExists(atPath: output, isDirectory: &isDir) {
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        } else if !isDir.boolValue {
            throw CorpusError.unwritable(output, "exists and is not a directory")
        }
        let dir = URL(fileURLWithPath: output, isDirectory: true)
        // The old marker goes first: an interrupted import never looks complete.
        try? FileManager.default.removeItem(at: dir.appendingPathComponent(TeacherLogits.infoName))
        try writeRows(data, header, ordered.map(\.row), to: dir.appendingPathComponent(TeacherLogits.logitsName).path)
        let entries = ordered.enumerated().map { TeacherIndexEntry(row: $0.offset, file: $0.element.name, durationSeconds: nil) }
        try writeFileAtomically(Data(TeacherLogits.indexText(entries).utf8),
                                to: dir.appendingPathComponent(TeacherLogits.indexName).path)
        try writeFileAtomically(Data(TeacherLogits.skippedText([]).utf8),
                                to: dir.appendingPathComponent(TeacherLogits.skippedName).path)
        let info = TeacherStoreInfo(source: TeacherLogits.importSource, teacher: logitsPath,
                                    teacherSHA256: try sha256Hex(ofFile: logitsPath), classes: header.columns,
                                    rows: entries.count)
        try writeStoreInfo(info, in: output)
        return entries.count
    }

    /// Streams the selected rows as float32 into a new `.npy` (temporary file, sync, rename).
    private static func writeRows(_ data: Data, _ header: NpyMatrixHeader, _ rows: [Int], to path: String) throws {
        let tmp = path + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: Data(NpyMatrixHeader.float32HeaderBytes(
            rows: rows.count, columns: header.columns))) else { throw CorpusError.unwritable(path, "cannot create \(tmp)") }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: tmp))
        defer { try? handle.close() }
        try handle.seekToEnd()
        var buffer = Data()
        buffer.reserveCapacity(1 << 20)
        try data.withUnsafeBytes { raw in
            for r in rows {
                npyRow(raw, header, row: r).withUnsafeBytes { buffer.append(contentsOf: $0) }
                if buffer.count >= 1 << 20 { try handle.write(contentsOf: buffer); buffer.removeAll(keepingCapacity: true) }
            }
        }
        try handle.write(contentsOf: buffer)
        try handle.synchronize()
        guard rename(tmp, path) == 0 else { throw CorpusError.unwritable(path, String(cString: strerror(errno))) }
    }
}
