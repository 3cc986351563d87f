// `eartag teach` / `eartag-train teach` and `eartag-train corpus build` through the built binaries: golden
// logits, SIGKILL and resume, corrupt clips, bad input, EfficientAT import, and the forwarding itself.
import Foundation
import XCTest
import EarTagModel
import EarTagTestSupport

final class TeachCommandTests: CLITestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = try makeTemporaryDirectory("eartag-teach")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    /// Path of the built `eartag-train`.
    static var trainTool: String { productsDirectory.appendingPathComponent("eartag-train").path }

    /// Checks: `eartag teach` (forwarded to eartag-train) on the three 32 kHz, 10 s reference recordings stores
    /// EfficientAT's own logits for them (golden, within 1e-3; 4e-5 measured), one row each, in sorted file order.
    func testTeachStoresTheTeachersLogits() throws {
        let model = try importedModel()
        let corpus = dir.appendingPathComponent("corpus")
        try FileManager.default.createDirectory(at: corpus, withIntermediateDirectories: true)
        let clips = ["music", "speech", "typing"]
        for c in clips {
            try FileManager.default.copyItem(atPath: try Reference.path("audio/\(c).wav"),
                                             toPath: corpus.appendingPathComponent("\(c).wav").path)
        }
        let out = dir.appendingPathComponent("teacher").path
        let r = try run(["teach", "--teacher", model, "--data", corpus.path, "-o", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "\(out): 3 rows, 0 skipped\n")
        let logits = try NumpyArray.read(path: out + "/logits.npy")
        XCTAssertEqual(logits.shape, [3, 527])
        let index = try String(contentsOfFile: out + "/index.csv", encoding: .utf8)
        XCTAssertEqual(index, "row,file,duration\n0,music.wav,10.0\n1,speech.wav,10.0\n2,typing.wav,10.0\n")
        for (row, c) in clips.enumerated() {
            let golden = try Reference.npy("golden/\(c).logits.npy").data
            let d = maxAbsDifference(Array(logits.data[row * 527..<(row + 1) * 527]), golden)
            XCTAssertLessThanOrEqual(d, 1e-3, c)
        }
    }

    /// Checks: `eartag-train teach` killed with SIGKILL mid-run and rerun continues where it stopped ("resumed
    /// after N clips", N > 0) and leaves logits.npy and index.csv byte-identical to an uninterrupted run's.
    func testKilledTeachResumesToAnIdenticalStore() throws {
        let model = try importedModel()
        let corpus = dir.appendingPathComponent("corpus")
        let count = 60
        for i in 0..<count { try writeWAV(corpus.appendingPathComponent(String(format: "c%03d.wav", i)), seconds: 10, seed: UInt64(i)) }
        let whole = dir.appendingPathComponent("whole").path
        let w = try run(["teach", "--teacher", model, "--data", corpus.path, "-o", whole], binary: Self.trainTool)
        XCTAssertEqual(w.status, 0, w.stderr)
        // The killed run.
        let cut = dir.appendingPathComponent("cut").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.trainTool)
        p.arguments = ["teach", "--teacher", model, "--data", corpus.path, "-o", cut]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        var recorded = 0
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && p.isRunning {
            let text = (try? String(contentsOfFile: cut + "/progress.csv", encoding: .utf8)) ?? ""
            recorded = text.split(separator: "\n").count - 1
            if recorded >= 3 { break }
            usleep(1000)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal, "the run finished before it could be killed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: cut + "/logits.npy"))
        let r = try run(["teach", "--teacher", model, "--data", corpus.path, "-o", cut], binary: Self.trainTool)
        XCTAssertEqual(r.status, 0, r.stderr)
        let resumed = try XCTUnwrap(r.stdout.range(of: "resumed after ").map { Int(r.stdout[$0.upperBound...].prefix { $0.isNumber }) ?? 0 })
        XCTAssertGreaterThanOrEqual(resumed, 3)
        XCTAssertLessThan(resumed, count)
        for name in ["logits.npy", "index.csv", "skipped.csv", "teacher.json"] {
            XCTAssertEqual(FileManager.default.contents(atPath: whole + "/" + name),
                           FileManager.default.contents(atPath: cut + "/" + name), name)
        }
        let again = try run(["teach", "--teacher", model, "--data", corpus.path, "-o", cut], binary: Self.trainTool)
        XCTAssertEqual(again.stdout, "\(cut): already complete (\(count) rows, 0 skipped)\n")
    }

    /// Checks: a corrupt clip is not given a row: one warning line naming it, recorded in skipped.csv, the other
    /// clips' rows stay aligned with index.csv; exit status 0.
    func testCorruptClipIsSkippedWithAWarning() throws {
        let model = try importedModel()
        let corpus = dir.appendingPathComponent("corpus")
        try writeWAV(corpus.appendingPathComponent("a.wav"), seconds: 3, seed: 1)
        try Data("not audio at all".utf8).write(to: corpus.appendingPathComponent("b.wav"))
        try writeWAV(corpus.appendingPathComponent("c.wav"), seconds: 12, seed: 2)
        let out = dir.appendingPathComponent("teacher").path
        let r = try run(["teach", "--teacher", model, "--data", corpus.path, "-o", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, r.stderr)
        XCTAssertTrue(lines[0].hasPrefix("eartag: b.wav: skipped, the teacher has no row for it:"), r.stderr)
        XCTAssertEqual(try String(contentsOfFile: out + "/index.csv", encoding: .utf8), "row,file,duration\n0,a.wav,3.0\n1,c.wav,12.0\n")
        XCTAssertTrue(try String(contentsOfFile: out + "/skipped.csv", encoding: .utf8).hasPrefix("file,reason\nb.wav,"))
        XCTAssertEqual(try NumpyArray.read(path: out + "/logits.npy").shape, [2, 527])
    }

    /// Checks: bad input gets one line naming it and a non-zero exit: missing corpus, empty corpus, missing teacher
    /// model, a corpus that is all corrupt, an output path that is a file, and a truncated EfficientAT logits file.
    func testBadInput() throws {
        let model = try importedModel()
        let empty = dir.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let bad = dir.appendingPathComponent("bad")
        try FileManager.default.createDirectory(at: bad, withIntermediateDirectories: true)
        try Data("junk".utf8).write(to: bad.appendingPathComponent("x.wav"))
        let good = dir.appendingPathComponent("good")
        try writeWAV(good.appendingPathComponent("a.wav"), seconds: 1, seed: 3)
        let file = dir.appendingPathComponent("file").path
        try Data().write(to: URL(fileURLWithPath: file))
        let out = dir.appendingPathComponent("out").path
        let missing = dir.appendingPathComponent("missing").path
        assertOneLineError(try run(["teach", "--teacher", model, "--data", missing, "-o", out]), naming: missing)
        assertOneLineError(try run(["teach", "--teacher", model, "--data", empty.path, "-o", out]), naming: "no audio clips")
        assertOneLineError(try run(["teach", "--teacher", missing, "--data", good.path, "-o", out]), naming: missing)
        assertOneLineError(try run(["teach", "--teacher", model, "--data", good.path, "-o", file]), naming: file)
        let allBad = try run(["teach", "--teacher", model, "--data", bad.path, "-o", out])
        XCTAssertEqual(allBad.status, 1)
        XCTAssertTrue(allBad.stderr.contains("x.wav: skipped"), allBad.stderr)
        XCTAssertTrue(allBad.stderr.contains("the teacher could read none of its 1 clips"), allBad.stderr)
        // A truncated EfficientAT logits file.
        let npy = dir.appendingPathComponent("l.npy").path
        var bytes = NpyMatrixHeaderBytes.float32(rows: 4, columns: 2)
        bytes += [UInt8](repeating: 0, count: 4 * 2 * 4 - 3)
        try Data(bytes).write(to: URL(fileURLWithPath: npy))
        let pkl = dir.appendingPathComponent("i.pkl").path
        try Data(PickleEmitter.stringIntDict([("a.wav", 0)])).write(to: URL(fileURLWithPath: pkl))
        assertOneLineError(try run(["teach", "--import-efficientat", npy, pkl, "-o", out]), naming: "\(npy): .npy file is truncated")
        let one = try run(["teach", "--import-efficientat", npy, "-o", out])
        XCTAssertNotEqual(one.status, 0)
        XCTAssertTrue(one.stderr.contains("--import-efficientat takes two files"), one.stderr)
    }

    /// Checks: `eartag teach --import-efficientat LOGITS.npy FNAME_TO_INDEX.pkl -o DIR` adopts the rows in index
    /// order and reports the count.
    func testImportEfficientAT() throws {
        let npy = dir.appendingPathComponent("l.npy").path
        try NumpyArray(shape: [2, 3], data: [1, 2, 3, 4, 5, 6]).write(path: npy)
        let pkl = dir.appendingPathComponent("i.pkl").path
        try Data(PickleEmitter.stringIntDict([("Y2.wav", 1), ("Y1.wav", 0)])).write(to: URL(fileURLWithPath: pkl))
        let out = dir.appendingPathComponent("teacher").path
        let r = try run(["teach", "--import-efficientat", npy, pkl, "-o", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "imported 2 rows of \(npy) into \(out)\n")
        XCTAssertEqual(try String(contentsOfFile: out + "/index.csv", encoding: .utf8), "row,file,duration\n0,Y1.wav,\n1,Y2.wav,\n")
        XCTAssertEqual(try NumpyArray.read(path: out + "/logits.npy"), NumpyArray(shape: [2, 3], data: [1, 2, 3, 4, 5, 6]))
    }

    /// Checks: the forwarder passes arguments, output and exit status through unchanged (same as running
    /// eartag-train itself), and `eartag teach --help` shows eartag-train's own help.
    func testForwardingPassesEverythingThrough() throws {
        let args = ["teach", "--threads", "0", "--teacher", "m", "--data", "d", "-o", "o"]
        let viaEartag = try run(args)
        let direct = try run(args, binary: Self.trainTool)
        XCTAssertNotEqual(direct.status, 0)
        XCTAssertEqual(viaEartag.status, direct.status)
        XCTAssertEqual(viaEartag.stderr, direct.stderr)
        XCTAssertTrue(direct.stderr.contains("--threads must be at least 1"), direct.stderr)
        let help = try run(["teach", "--help"])
        XCTAssertEqual(help.status, 0, help.stderr)
        XCTAssertTrue(help.stdout.contains("--import-efficientat"), help.stdout)
    }

    /// Checks: with no eartag-train beside eartag or on PATH, `eartag teach` and `eartag train` fail with one line
    /// saying how to install it.
    func testForwardingWithoutTheToolSaysHowToInstallIt() throws {
        let lone = dir.appendingPathComponent("bin/eartag").path
        try FileManager.default.createDirectory(atPath: dir.appendingPathComponent("bin").path, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.binary, toPath: lone)
        for sub in ["teach", "train"] {
            let r = try run([sub, "--help"], environment: ["PATH": dir.appendingPathComponent("nothing").path], binary: lone)
            assertOneLineError(r, naming: "eartag-train is not installed")
            XCTAssertTrue(r.stderr.contains("make install"), r.stderr)
        }
    }

    /// Checks: `eartag-train corpus build` turns a plan into clips plus a manifest that `teach` then reads.
    func testCorpusBuildThenTeach() throws {
        let model = try importedModel()
        let src = dir.appendingPathComponent("src")
        try writeWAV(src.appendingPathComponent("dog.wav"), seconds: 2, seed: 4)
        try writeWAV(src.appendingPathComponent("song.wav"), seconds: 31, seed: 5)
        let plan = dir.appendingPathComponent("plan.tsv")
        try "pkg\tdog.wav\t\(src.path)/dog.wav\tCC0-1.0\npkg\tsong.wav\t\(src.path)/song.wav\tGPL-2+\n"
            .write(to: plan, atomically: true, encoding: .utf8)
        let corpus = dir.appendingPathComponent("corpus").path
        let b = try run(["corpus", "build", "--plan", plan.path, "-o", corpus, "--max-segments", "2"], binary: Self.trainTool)
        XCTAssertEqual(b.status, 0, b.stderr)
        XCTAssertTrue(b.stdout.hasPrefix("\(corpus): 3 clips"), b.stdout)
        let manifest = try String(contentsOfFile: corpus + "/manifest.csv", encoding: .utf8)
        XCTAssertTrue(manifest.hasPrefix("clip,split,package,source,start,duration,licence\n"), manifest)
        XCTAssertTrue(manifest.contains(",pkg,song.wav,20.000,31.000,GPL-2+\n"), manifest)
        let out = dir.appendingPathComponent("teacher").path
        let t = try run(["teach", "--teacher", model, "--data", corpus, "-o", out])
        XCTAssertEqual(t.status, 0, t.stderr)
        XCTAssertEqual(try NumpyArray.read(path: out + "/logits.npy").shape, [3, 527])
    }
}

/// Float32 `.npy` headers for test files.
enum NpyMatrixHeaderBytes {
    /// The header of a rows x columns float32 matrix (data to follow).
    static func float32(rows: Int, columns: Int) -> [UInt8] { NumpyArray(shape: [rows, columns], data: []).serialized() }
}
