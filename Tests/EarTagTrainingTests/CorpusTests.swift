// CorpusData (folders, manifests, fitting, the decode cache, bad input) and CorpusBuilder (tiling, segments,
// silence, mixtures, reproducibility).
import Foundation
import XCTest
import EarTagAudio
import EarTagTestSupport
@testable import EarTagTraining

/// Writes test recordings.
enum CorpusFixtures {
    /// A 16-bit mono WAV of `seconds` at `rate`: a sine of `hz` (amplitude 0.3), or silence when `hz` is 0.
    static func wav(_ url: URL, seconds: Double, rate: Int = 32000, hz: Double = 440) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let n = Int(seconds * Double(rate))
        let samples = (0..<n).map { Float(0.3 * sin(2 * Double.pi * hz * Double($0) / Double(rate))) }
        let file = try SoundFile(writingPath: url.path, format: CorpusBuilder.wav16, channels: 1, sampleRate: rate)
        try file.writeFrames(samples)
        file.close()
    }

    /// A file that is not audio.
    static func garbage(_ url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("this is not a sound file".utf8).write(to: url)
    }
}

final class CorpusDataTests: XCTestCase {
    /// Checks: a folder's audio files (any depth, hidden ones skipped) in sorted order; waveforms are 320000 samples:
    /// short input tiled from its start, long input cut to its first 10 s, other rates resampled.
    func testFolderClipsAreFittedToTenSeconds() throws {
        let dir = try makeTemporaryDirectory("corpus")
        defer { try? FileManager.default.removeItem(at: dir) }
        try CorpusFixtures.wav(dir.appendingPathComponent("b/short.wav"), seconds: 3)
        try CorpusFixtures.wav(dir.appendingPathComponent("a.wav"), seconds: 12, rate: 16000, hz: 200)
        try CorpusFixtures.wav(dir.appendingPathComponent(".hidden/x.wav"), seconds: 1)
        try Data("notes".utf8).write(to: dir.appendingPathComponent("readme.txt"))
        let corpus = try CorpusData(path: dir.path)
        XCTAssertEqual(corpus.clips.map(\.name), ["a.wav", "b/short.wav"])
        XCTAssertEqual(corpus.count(.train) + corpus.count(.validation), 2)
        let short = try corpus.waveform(corpus.clips[1])
        XCTAssertEqual(short.count, 320_000)
        // Tiled: the second 3 s repeat the first 3 s exactly.
        XCTAssertEqual(Array(short[96_000..<192_000]), Array(short[0..<96_000]))
        let long = try corpus.waveform(corpus.clips[0])
        XCTAssertEqual(long.count, 320_000)
        XCTAssertGreaterThan(CorpusBuilder.rms(long), 0.15)
    }

    /// Checks: the second read of a clip comes from the cache (a changed cache file is what is returned), and a
    /// changed source file (new mtime/size) is decoded again.
    func testDecodeCacheIsUsedAndInvalidated() throws {
        let dir = try makeTemporaryDirectory("corpus")
        defer { try? FileManager.default.removeItem(at: dir) }
        let wav = dir.appendingPathComponent("c.wav")
        try CorpusFixtures.wav(wav, seconds: 10)
        let corpus = try CorpusData(path: dir.path)
        let first = try corpus.waveform(corpus.clips[0])
        let cacheDir = try XCTUnwrap(corpus.cacheDirectory)
        let files = try FileManager.default.contentsOfDirectory(atPath: cacheDir).filter { $0.hasSuffix(".f32") }
        XCTAssertEqual(files.count, 1)
        let cacheFile = cacheDir + "/" + files[0]
        let marker = [Float](repeating: 0.25, count: 320_000)
        try marker.withUnsafeBytes { Data($0) }.write(to: URL(fileURLWithPath: cacheFile))
        XCTAssertEqual(try corpus.waveform(corpus.clips[0]), marker)
        try CorpusFixtures.wav(wav, seconds: 9)
        let again = try corpus.waveform(corpus.clips[0])
        XCTAssertNotEqual(again, marker)
        XCTAssertEqual(again.count, first.count)
    }

    /// Checks: a manifest with a header (path, labels, split) gives multi-hot labels and the stated splits;
    /// a headerless `path,labels` one works too.
    func testManifestsWithLabelsAndSplits() throws {
        let dir = try makeTemporaryDirectory("corpus")
        defer { try? FileManager.default.removeItem(at: dir) }
        try CorpusFixtures.wav(dir.appendingPathComponent("x.wav"), seconds: 2)
        try CorpusFixtures.wav(dir.appendingPathComponent("y, z.wav"), seconds: 2)
        let m1 = dir.appendingPathComponent("m1.csv")
        try "split,path,labels\nvalidation,x.wav,0;3\ntrain,\"y, z.wav\",\n".write(to: m1, atomically: true, encoding: .utf8)
        let c1 = try CorpusData(path: m1.path, classCount: 4)
        XCTAssertEqual(c1.count(.validation), 1)
        XCTAssertEqual(c1.count(.train), 1)
        let v = try c1.example(.validation, 0)
        XCTAssertEqual(v.name, "x.wav")
        XCTAssertEqual(v.labels, [1, 0, 0, 1])
        XCTAssertEqual(try c1.example(.train, 0).labels, [0, 0, 0, 0])
        XCTAssertNil(v.teacherLogits)
        let m2 = dir.appendingPathComponent("m2.csv")
        try "x.wav,2\n\(dir.path)/y, z.wav\n".write(to: m2, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CorpusData(path: m2.path, classCount: 4))  // "y" then " z.wav" as a label
        try "x.wav,2\n\"\(dir.path)/y, z.wav\",1 2\n".write(to: m2, atomically: true, encoding: .utf8)
        let c2 = try CorpusData(path: m2.path, classCount: 4)
        XCTAssertEqual(c2.clips.map(\.labels), [[2], [1, 2]])
    }

    /// Checks: the hash split is stable, near 10% validation over many names, and independent of order.
    func testHashSplit() {
        let names = (0..<2000).map { "clips/file\($0).wav" }
        let held = names.filter { CorpusData.split(forName: $0) == .validation }.count
        XCTAssertGreaterThan(held, 140)
        XCTAssertLessThan(held, 260)
        XCTAssertEqual(names.map(CorpusData.split(forName:)), names.map(CorpusData.split(forName:)))
    }

    /// Checks: bad input is refused with one line naming it: missing path, empty folder, bad label, duplicate
    /// clip, bad split; a corrupt clip throws naming its file when read.
    func testBadInputIsNamed() throws {
        let dir = try makeTemporaryDirectory("corpus")
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertThrowsError(try CorpusData(path: dir.path + "/missing")) { e in
            XCTAssertEqual("\(e)", "\(dir.path)/missing: no such file or directory")
        }
        XCTAssertThrowsError(try CorpusData(path: dir.path)) { e in XCTAssertTrue("\(e)".contains("no audio clips"), "\(e)") }
        let m = dir.appendingPathComponent("m.csv")
        for (text, expected) in [("path,labels\na.wav,527\n", "m.csv:2: label '527' is not a class index in 0..<527"),
                                 ("a.wav\na.wav\n", "m.csv:2: 'a.wav' listed twice"),
                                 ("path,split\na.wav,test\n", "m.csv:2: split 'test' is not train or validation"),
                                 ("\"a.wav\n", "m.csv:1: unterminated quoted field")] {
            try text.write(to: m, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try CorpusData(path: m.path)) { e in
                XCTAssertTrue("\(e)".hasSuffix(expected), "\(e)")
                XCTAssertFalse("\(e)".contains("\n"))
            }
        }
        try CorpusFixtures.garbage(dir.appendingPathComponent("bad.wav"))
        let corpus = try CorpusData(path: dir.path)
        XCTAssertThrowsError(try corpus.waveform(corpus.clips[0])) { e in XCTAssertTrue("\(e)".contains("bad.wav"), "\(e)") }
    }
}

final class CorpusBuilderTests: XCTestCase {
    /// Checks: segment starts: short and exactly-10 s input one segment at 0; long input at most N segments,
    /// evenly spread, each inside the recording.
    func testSegmentStarts() {
        XCTAssertEqual(CorpusBuilder.segmentStarts(count: 1000, clipSamples: 320_000, maxSegments: 3), [0])
        XCTAssertEqual(CorpusBuilder.segmentStarts(count: 320_000, clipSamples: 320_000, maxSegments: 3), [0])
        XCTAssertEqual(CorpusBuilder.segmentStarts(count: 700_000, clipSamples: 320_000, maxSegments: 3), [0, 320_000])
        XCTAssertEqual(CorpusBuilder.segmentStarts(count: 320_000 * 5, clipSamples: 320_000, maxSegments: 1), [0])
        let many = CorpusBuilder.segmentStarts(count: 320_000 * 10 + 5, clipSamples: 320_000, maxSegments: 3)
        XCTAssertEqual(many, [0, 4 * 320_000, 9 * 320_000])
        for s in many { XCTAssertLessThanOrEqual(s + 320_000, 320_000 * 10 + 5) }
    }

    /// Checks: a build tiles a short recording, cuts a 25 s one into two segments, skips silence, a too-short
    /// click and a corrupt file (each with a warning), adds mixtures, and writes a manifest CorpusData reads with
    /// the builder's splits; a second build is byte-identical.
    func testBuildIsCompleteAndReproducible() throws {
        let dir = try makeTemporaryDirectory("corpus-build")
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = dir.appendingPathComponent("src")
        try CorpusFixtures.wav(src.appendingPathComponent("dog.wav"), seconds: 2.5, rate: 44100)
        try CorpusFixtures.wav(src.appendingPathComponent("song.wav"), seconds: 25, rate: 22050, hz: 330)
        try CorpusFixtures.wav(src.appendingPathComponent("quiet.wav"), seconds: 3, hz: 0)
        try CorpusFixtures.wav(src.appendingPathComponent("click.wav"), seconds: 0.05)
        try CorpusFixtures.garbage(src.appendingPathComponent("broken.ogg"))
        for i in 0..<6 { try CorpusFixtures.wav(src.appendingPathComponent("tone\(i).wav"), seconds: 1, hz: 200 + 100 * Double(i)) }
        let names = ["dog.wav", "song.wav", "quiet.wav", "click.wav", "broken.ogg"] + (0..<6).map { "tone\($0).wav" }
        let sources = names.map { CorpusSource(package: "pkg", file: "sounds/\($0)", path: src.appendingPathComponent($0).path,
                                               licence: "CC0-1.0") }
        var options = CorpusBuildOptions()
        options.mixtures = 4
        options.jobs = 2
        let warnings = WarningSink()
        let out1 = dir.appendingPathComponent("c1").path
        let rows = try CorpusBuilder.build(sources, output: out1, options: options, warn: warnings.add)
        XCTAssertEqual(warnings.lines.count, 3, "\(warnings.lines)")
        for bad in ["quiet.wav", "click.wav", "broken.ogg"] {
            XCTAssertTrue(warnings.lines.contains { $0.contains(bad) }, bad)
        }
        let plain = rows.filter { !$0.clip.hasPrefix("clips/mix/") }
        XCTAssertEqual(plain.filter { $0.source == "sounds/song.wav" }.map(\.start), ["0.000", "10.000"])
        XCTAssertEqual(plain.count, 1 + 2 + 6)
        XCTAssertEqual(rows.count - plain.count, 4)
        for r in rows where r.clip.hasPrefix("clips/mix/") {
            XCTAssertTrue(r.source.contains("*0."), r.source)
        }
        let corpus = try CorpusData(path: out1)
        XCTAssertEqual(corpus.clips.map(\.name), rows.map(\.clip))
        XCTAssertEqual(corpus.clips.map(\.split), rows.map(\.split))
        for c in corpus.clips {
            let audio = try loadAudio(path: c.path)
            XCTAssertEqual(audio.samples.count, 320_000, c.name)
            XCTAssertEqual(audio.sourceSampleRate, 32000)
        }
        let out2 = dir.appendingPathComponent("c2").path
        _ = try CorpusBuilder.build(sources, output: out2, options: options, warn: { _ in })
        for c in rows.map(\.clip) + ["manifest.csv"] {
            XCTAssertEqual(FileManager.default.contents(atPath: out1 + "/" + c), FileManager.default.contents(atPath: out2 + "/" + c), c)
        }
    }

    /// Checks: a plan line without four tab-separated fields is refused naming the line; an empty plan is refused.
    func testBadPlan() throws {
        let dir = try makeTemporaryDirectory("corpus-plan")
        defer { try? FileManager.default.removeItem(at: dir) }
        let plan = dir.appendingPathComponent("plan.tsv")
        try "pkg\tfile\t/p\tCC0\npkg only\n".write(to: plan, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CorpusBuilder.readPlan(plan.path)) { e in XCTAssertTrue("\(e)".contains("plan.tsv:2:"), "\(e)") }
        try "\n".write(to: plan, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CorpusBuilder.readPlan(plan.path)) { e in XCTAssertTrue("\(e)".contains("no recordings"), "\(e)") }
    }
}

/// Collects warnings from many threads.
final class WarningSink: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    /// The warnings so far.
    var lines: [String] { lock.lock(); defer { lock.unlock() }; return stored.map { $0 } }  // a copy: no buffer shared across threads
    /// Records one warning.
    @Sendable func add(_ line: String) { lock.lock(); stored.append(line); lock.unlock() }
}
