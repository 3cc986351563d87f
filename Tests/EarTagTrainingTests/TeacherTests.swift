// Teacher stores: TeachRun (rows, skips, resume after a cut line), TeacherLogits validation against a corpus,
// the matrix .npy header, EfficientAT import through the restricted unpickler, and the fuzz inputs.
import Foundation
import XCTest
import EarTagModel
import EarTagTestSupport
@testable import EarTagTraining

/// A deterministic stand-in teacher: logits from simple statistics of the samples (3 classes).
private func fakeTeacher(_ samples: [Float], _ clip: CorpusClip) throws -> [Float] {
    let mean = samples.reduce(0, +) / Float(samples.count)
    let energy = samples.reduce(0) { $0 + $1 * $1 } / Float(samples.count)
    return [mean, energy, Float(clip.name.count)]
}

final class TeacherStoreTests: XCTestCase {
    /// A corpus folder of `count` tones plus, optionally, one corrupt file; returns its URL.
    private func corpusFolder(_ count: Int, corrupt: Bool = false) throws -> URL {
        let dir = try makeTemporaryDirectory("teach")
        for i in 0..<count {
            try CorpusFixtures.wav(dir.appendingPathComponent(String(format: "clip%02d.wav", i)), seconds: 1 + Double(i), hz: 100 * Double(i + 1))
        }
        if corrupt { try CorpusFixtures.garbage(dir.appendingPathComponent("clip99.wav")) }
        return dir
    }

    /// A fake teacher model file (the run hashes it).
    private func teacherFile(in dir: URL, _ text: String = "teacher") throws -> String {
        let p = dir.appendingPathComponent("teacher.bin").path
        try Data(text.utf8).write(to: URL(fileURLWithPath: p))
        return p
    }

    /// Checks: a run stores one row per readable clip in corpus order, records the corrupt clip in skipped.csv
    /// with a warning naming it, and the store opens, validates against the corpus and gives the same values.
    func testRunStoresRowsAndSkips() throws {
        let dir = try corpusFolder(4, corrupt: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let corpus = try CorpusData(path: dir.path, classCount: 3)
        let out = dir.appendingPathComponent("teacher").path
        var warnings: [String] = []
        let summary = try TeachRun(corpus: corpus, output: out, teacherPath: try teacherFile(in: dir), classCount: 3)
            .run(logits: fakeTeacher, warn: { warnings.append($0) })
        XCTAssertEqual(summary, TeachSummary(rows: 4, skipped: 1, resumedFrom: 0, alreadyComplete: false))
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings[0].hasPrefix("clip99.wav: skipped"), warnings[0])
        let store = try TeacherLogits(directory: out)
        XCTAssertEqual(store.entries.map(\.file), ["clip00.wav", "clip01.wav", "clip02.wav", "clip03.wav"])
        XCTAssertEqual(store.entries.map(\.durationSeconds), [1, 2, 3, 4])
        XCTAssertEqual(store.skipped.map(\.file), ["clip99.wav"])
        for e in store.entries {
            let clip = corpus.clips.first { $0.name == e.file }!
            XCTAssertEqual(store.logits(row: e.row), try fakeTeacher(try corpus.waveform(clip), clip))
        }
        // With the store attached, the corrupt clip is excluded and every example carries its teacher row.
        let withTeacher = try CorpusData(path: dir.path, classCount: 3, teacher: store)
        XCTAssertEqual(withTeacher.excludedByTeacher, ["clip99.wav"])
        XCTAssertEqual(withTeacher.count(.train) + withTeacher.count(.validation), 4)
        for split in DataSplit.allCases {
            for i in 0..<withTeacher.count(split) {
                let ex = try withTeacher.example(split, i)
                XCTAssertEqual(ex.teacherLogits, store.logits(row: store.row(for: ex.name)!))
                XCTAssertEqual(ex.waveform.count, 320_000)
            }
        }
        // The logits file is a plain float32 .npy that EarTagModel's reader agrees with.
        let npy = try NumpyArray.read(path: out + "/logits.npy")
        XCTAssertEqual(npy.shape, [4, 3])
        XCTAssertEqual(Array(npy.data[3..<6]), store.logits(row: 1))
    }

    /// Checks: a run cut short (a half-written progress line and an extra partial row, as a kill leaves them)
    /// resumes from the last whole record and ends with files byte-identical to an uninterrupted run; a second
    /// rerun reports the store complete; another teacher is refused.
    func testResumeAfterCutIsIdentical() throws {
        let dir = try corpusFolder(6)
        defer { try? FileManager.default.removeItem(at: dir) }
        let corpus = try CorpusData(path: dir.path, classCount: 3)
        let teacher = try teacherFile(in: dir)
        let whole = dir.appendingPathComponent("whole").path
        _ = try TeachRun(corpus: corpus, output: whole, teacherPath: teacher, classCount: 3).run(logits: fakeTeacher, warn: { _ in })
        // A run that dies after three clips.
        let cut = dir.appendingPathComponent("cut").path
        var calls = 0
        XCTAssertThrowsError(try TeachRun(corpus: corpus, output: cut, teacherPath: teacher, classCount: 3).run(logits: { s, c in
            calls += 1
            if calls == 4 { throw CancellationError() }
            return try fakeTeacher(s, c)
        }, warn: { _ in XCTFail("no clip should be skipped") }))
        // Simulate the kill landing mid-write: a half progress line and a stray partial row.
        let progress = try FileHandle(forWritingTo: URL(fileURLWithPath: cut + "/progress.csv"))
        try progress.seekToEnd(); try progress.write(contentsOf: Data("ok,clip03.w".utf8)); try progress.close()
        let partial = try FileHandle(forWritingTo: URL(fileURLWithPath: cut + "/logits.partial"))
        try partial.seekToEnd(); try partial.write(contentsOf: Data(repeating: 0xAB, count: 7)); try partial.close()
        let resumed = try TeachRun(corpus: corpus, output: cut, teacherPath: teacher, classCount: 3).run(logits: fakeTeacher, warn: { _ in })
        XCTAssertEqual(resumed.resumedFrom, 3)
        for name in ["logits.npy", "index.csv", "skipped.csv"] {
            XCTAssertEqual(FileManager.default.contents(atPath: whole + "/" + name), FileManager.default.contents(atPath: cut + "/" + name), name)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: cut + "/progress.csv"))
        let again = try TeachRun(corpus: corpus, output: cut, teacherPath: teacher, classCount: 3).run(logits: fakeTeacher, warn: { _ in })
        XCTAssertTrue(again.alreadyComplete)
        let other = try teacherFile(in: dir.appendingPathComponent("whole"), "another teacher")
        XCTAssertThrowsError(try TeachRun(corpus: corpus, output: cut, teacherPath: other, classCount: 3)
            .run(logits: fakeTeacher, warn: { _ in })) { e in XCTAssertTrue("\(e)".contains("another teacher or corpus"), "\(e)") }
    }

    /// Checks: a store whose class count or row count does not match the corpus is refused before training, with
    /// one line naming the teacher directory; a truncated logits.npy is refused naming the file.
    func testMismatchedAndTruncatedStoresAreRefused() throws {
        let dir = try corpusFolder(3)
        defer { try? FileManager.default.removeItem(at: dir) }
        let corpus = try CorpusData(path: dir.path, classCount: 3)
        let out = dir.appendingPathComponent("teacher").path
        _ = try TeachRun(corpus: corpus, output: out, teacherPath: try teacherFile(in: dir), classCount: 3).run(logits: fakeTeacher, warn: { _ in })
        let store = try TeacherLogits(directory: out)
        XCTAssertThrowsError(try CorpusData(path: dir.path, classCount: 527, teacher: store)) { e in
            XCTAssertEqual("\(e)", "\(out): teacher logits have 3 classes, the corpus targets 527")
        }
        try CorpusFixtures.wav(dir.appendingPathComponent("clip03.wav"), seconds: 1)
        XCTAssertThrowsError(try CorpusData(path: dir.path, classCount: 3, teacher: store)) { e in
            XCTAssertTrue("\(e)".hasPrefix("\(out): no teacher row for clip 'clip03.wav'"), "\(e)")
        }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("clip03.wav"))
        try FileManager.default.removeItem(at: dir.appendingPathComponent("clip02.wav"))
        XCTAssertThrowsError(try CorpusData(path: dir.path, classCount: 3, teacher: store)) { e in
            XCTAssertTrue("\(e)".contains("teacher has 3 rows + 0 skipped for 3 clips"), "\(e)")
        }
        let logits = out + "/logits.npy"
        let bytes = try XCTUnwrap(FileManager.default.contents(atPath: logits))
        try bytes.prefix(bytes.count - 5).write(to: URL(fileURLWithPath: logits))
        XCTAssertThrowsError(try TeacherLogits(directory: out)) { e in
            XCTAssertEqual("\(e)", "\(logits): .npy file is truncated: its shape needs 36 data bytes, the file holds 31")
        }
        XCTAssertThrowsError(try TeacherLogits(directory: dir.path)) { e in XCTAssertTrue("\(e)".contains("not a teacher store"), "\(e)") }
        XCTAssertThrowsError(try TeacherLogits(directory: dir.path + "/nope")) { e in XCTAssertTrue("\(e)".contains("no such file"), "\(e)") }
    }

    /// Checks: a teacher giving a non-finite logit or the wrong class count stops the run with one line naming the
    /// teacher (not a per-clip skip: the model is wrong, not the clip).
    func testBrokenTeacherStopsTheRun() throws {
        let dir = try corpusFolder(2)
        defer { try? FileManager.default.removeItem(at: dir) }
        let corpus = try CorpusData(path: dir.path, classCount: 3)
        let teacher = try teacherFile(in: dir)
        for (values, expected) in [([Float.nan, 0, 0], "gave a non-finite logit for clip00.wav"), ([0, 0], "gave 2 logits, expected 3")] {
            let out = dir.appendingPathComponent("t\(values.count)").path
            XCTAssertThrowsError(try TeachRun(corpus: corpus, output: out, teacherPath: teacher, classCount: 3)
                .run(logits: { _, _ in values }, warn: { XCTFail($0) })) { e in
                XCTAssertEqual("\(e)", "\(teacher): \(expected)")
            }
        }
    }

    /// Checks: index.csv must number its rows 0, 1, ... and name each file once.
    func testIndexParsing() throws {
        let good = try TeacherLogits.parseIndex(Array("row,file,duration\n0,a.wav,1.5\n1,\"b,c.wav\",\n".utf8), name: "i")
        XCTAssertEqual(good, [TeacherIndexEntry(row: 0, file: "a.wav", durationSeconds: 1.5),
                              TeacherIndexEntry(row: 1, file: "b,c.wav", durationSeconds: nil)])
        for (text, reason) in [("row,file\n", "header"), ("row,file,duration\n1,a.wav,1\n", "expected 0"),
                               ("row,file,duration\n0,a.wav,1\n1,a.wav,1\n", "listed twice"),
                               ("row,file,duration\n0,a.wav,-1\n", "not a number"), ("row,file,duration\n0,a.wav\n", "3 fields")] {
            XCTAssertThrowsError(try TeacherLogits.parseIndex(Array(text.utf8), name: "i")) { e in
                XCTAssertTrue("\(e)".contains(reason), "\(text): \(e)")
            }
        }
    }

    /// Checks: the matrix header reader accepts NumPy's float16/32/64 layouts (versions 1 and 2) and refuses other
    /// dtypes, 1-D and 3-D shapes, Fortran order and absurd sizes.
    func testMatrixHeader() throws {
        let f4 = NpyMatrixHeader.float32HeaderBytes(rows: 2, columns: 3)
        let h = try f4.withUnsafeBytes { try NpyMatrixHeader.parse($0, name: "x") }
        XCTAssertEqual(h, NpyMatrixHeader(type: .float32, rows: 2, columns: 3, dataOffset: 128))  // NumPy pads to 64 bytes
        /// A header with a given dictionary text (version 2 when asked).
        func npy(_ dict: String, version: UInt8 = 1) -> [UInt8] {
            var text = Array(dict.utf8) + [0x0A]
            var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, version, 0]
            if version == 1 { out += [UInt8(text.count & 0xFF), UInt8(text.count >> 8)] } else {
                out += [UInt8(text.count & 0xFF), UInt8(text.count >> 8), 0, 0]
            }
            out += text; text = []
            return out
        }
        let half = try npy("{'descr': '<f2', 'fortran_order': False, 'shape': (4, 527), }", version: 2)
            .withUnsafeBytes { try NpyMatrixHeader.parse($0, name: "h") }
        XCTAssertEqual(half.type, .float16)
        XCTAssertEqual(half.dataBytes, 4 * 527 * 2)
        for dict in ["{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }",
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }",
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }",
                     "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (9999999999, 9999999999), }",
                     "{'descr': '<f4', 'shape': (2, 3), 'shape': (2, 3), 'fortran_order': False}",
                     "not a dict"] {
            XCTAssertThrowsError(try npy(dict).withUnsafeBytes { try NpyMatrixHeader.parse($0, name: "h") }, dict)
        }
    }

    /// Checks: EfficientAT import: a pickled {fname: row} dict and a float64 logits matrix become a store in row
    /// order (float32), which a corpus of those names validates against (extra rows allowed for an import).
    func testImportEfficientAT() throws {
        let dir = try makeTemporaryDirectory("import")
        defer { try? FileManager.default.removeItem(at: dir) }
        let logits = NumpyArray(shape: [3, 2], data: [0, 1, 10, 11, 20, 21])
        // Written as float64 by hand (NumpyArray writes float32): the importer converts.
        var f8 = Array("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }".utf8)
        f8 += [UInt8](repeating: 0x20, count: (64 - (10 + f8.count + 1) % 64) % 64) + [0x0A]
        var bytes: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(f8.count), 0] + f8
        for v in logits.data { withUnsafeBytes(of: Double(v).bitPattern.littleEndian) { bytes += $0 } }
        let npyPath = dir.appendingPathComponent("logits.npy").path
        try Data(bytes).write(to: URL(fileURLWithPath: npyPath))
        let pkl = dir.appendingPathComponent("fname_to_index.pkl").path
        try Data(PickleEmitter.stringIntDict([("b.wav", 2), ("a.wav", 0), ("c.wav", 1)])).write(to: URL(fileURLWithPath: pkl))
        let out = dir.appendingPathComponent("teacher").path
        XCTAssertEqual(try TeacherImport.importEfficientAT(logitsPath: npyPath, indexPath: pkl, output: out), 3)
        let store = try TeacherLogits(directory: out)
        XCTAssertTrue(store.info.isImported)
        XCTAssertEqual(store.entries.map(\.file), ["a.wav", "c.wav", "b.wav"])
        XCTAssertEqual(store.logits(row: 2), [20, 21])
        XCTAssertEqual(store.logits(row: store.row(for: "c.wav")!), [10, 11])
        let corpusDir = dir.appendingPathComponent("corpus")
        try CorpusFixtures.wav(corpusDir.appendingPathComponent("b.wav"), seconds: 1)
        let corpus = try CorpusData(path: corpusDir.path, classCount: 2, teacher: store)
        XCTAssertEqual(try corpus.example(corpus.count(.train) == 1 ? .train : .validation, 0).teacherLogits, [20, 21])
        // A row outside the matrix and a non-dict pickle are refused.
        try Data(PickleEmitter.stringIntDict([("a.wav", 3)])).write(to: URL(fileURLWithPath: pkl))
        XCTAssertThrowsError(try TeacherImport.importEfficientAT(logitsPath: npyPath, indexPath: pkl, output: out)) { e in
            XCTAssertTrue("\(e)".contains("'a.wav' points at row 3"), "\(e)")
        }
        var p = PickleEmitter(); p.ints([1, 2]); p.stop()
        try Data(p.b).write(to: URL(fileURLWithPath: pkl))
        XCTAssertThrowsError(try TeacherImport.importEfficientAT(logitsPath: npyPath, indexPath: pkl, output: out)) { e in
            XCTAssertTrue("\(e)".contains("expected a dict"), "\(e)")
        }
    }

    /// Checks: every committed fuzz input of the teacher store goes through the index, skipped-list, matrix-header
    /// and pickled-index readers without trapping; the seeds parse.
    func testTeacherStoreFuzzInputs() throws {
        let inputs = FuzzInputs.files("teacher_store")
        XCTAssertGreaterThanOrEqual(inputs.count, 4, "Fuzz/corpus/teacher_store")
        for (path, bytes) in inputs { fuzzTeacherStore(bytes, name: path) }
        let index = try XCTUnwrap(FuzzInputs.file("corpus/teacher_store/index.csv"))
        XCTAssertEqual(try TeacherLogits.parseIndex(index, name: "index.csv").count, 3)
        let npy = try XCTUnwrap(FuzzInputs.file("corpus/teacher_store/logits.npy"))
        XCTAssertEqual(try npy.withUnsafeBytes { try NpyMatrixHeader.parse($0, name: "l") }.rows, 3)
        let pkl = try XCTUnwrap(FuzzInputs.file("corpus/teacher_store/fname_to_index.pkl"))  // Python's own protocol 4
        XCTAssertEqual(try PickledIndex.parse(pkl, name: "p").map(\.row), [0, 1, 2])
    }
}

/// What the teacher_store fuzz target does with one input (Fuzz/teacher_store.swift): every store reader.
private func fuzzTeacherStore(_ bytes: [UInt8], name: String) {
    _ = try? TeacherLogits.parseIndex(bytes, name: name)
    _ = try? TeacherLogits.parseSkipped(bytes, name: name)
    _ = try? PickledIndex.parse(bytes, name: name)
    bytes.withUnsafeBytes { raw in
        if let h = try? NpyMatrixHeader.parse(raw, name: name), h.rows > 0, raw.count >= h.dataOffset + h.dataBytes {
            _ = npyRow(raw, h, row: h.rows - 1)
        }
    }
}
