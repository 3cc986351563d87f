// Builds a distillation corpus of 10 s, 32 kHz mono clips from recordings of any length, format and rate:
// short recordings are tiled to 10 s, long ones cut into (at most N, evenly spread) 10 s segments, and seeded
// mixtures of two clips of the same split add variety (as EfficientAT's mixup). `make corpus` feeds it the sound
// files of Debian packages (tools/make-corpus); the manifest it writes is what `CorpusData` reads.
import Foundation
import EarTagAudio
import EarTagModel

/// One recording to cut into clips.
public struct CorpusSource: Sendable, Equatable {
    /// Where it comes from (e.g. the Debian package).
    public var package: String
    /// Its path as shown in the manifest (relative to the package).
    public var file: String
    /// Where it is on disk.
    public var path: String
    /// Its licence, as the package's copyright file states it.
    public var licence: String

    /// A source recording.
    public init(package: String, file: String, path: String, licence: String) {
        self.package = package
        self.file = file
        self.path = path
        self.licence = licence
    }
}

/// How sources become clips.
public struct CorpusBuildOptions: Sendable {
    /// Samples per clip (10 s at 32 kHz).
    public var clipSamples = CorpusData.defaultClipSamples
    /// Most 10 s segments taken from one long recording (spread evenly over it).
    public var maxSegmentsPerFile = 3
    /// Mixtures of two clips to add (split between train and validation in proportion).
    public var mixtures = 0
    /// Seed of the mixture choices.
    public var seed: UInt64 = 1
    /// Recordings shorter than this (seconds) are skipped: tiling a click for 10 s teaches nothing.
    public var minSourceSeconds = 0.2
    /// Segments quieter than this RMS are skipped as silence.
    public var silenceRMS: Float = 1e-4
    /// Decoding threads.
    public var jobs = 1

    /// The defaults.
    public init() {}
}

/// One line of the corpus manifest.
public struct CorpusManifestRow: Sendable, Equatable {
    /// The clip's path relative to the corpus folder.
    public var clip: String
    public var split: DataSplit
    public var package: String
    /// The source file (for a mixture: both clips and their weights).
    public var source: String
    /// Where the segment starts in the source, seconds (empty for mixtures).
    public var start: String
    /// The source recording's duration, seconds.
    public var duration: String
    public var licence: String
}

/// Cuts, tiles and mixes recordings into a corpus folder with `clips/` and `manifest.csv`.
public enum CorpusBuilder {
    /// Header of manifest.csv (`CorpusData` reads the `clip` and `split` columns).
    public static let manifestHeader = ["clip", "split", "package", "source", "start", "duration", "licence"]
    /// libsndfile's SF_FORMAT_WAV | SF_FORMAT_PCM_16.  // ref: sndfile.h
    static let wav16: Int32 = 0x01_0000 | 0x0002

    /// Reads a plan: tab-separated `package, file, path, licence` lines (as tools/make-corpus writes it).
    public static func readPlan(_ path: String) throws -> [CorpusSource] {
        let text = try CorpusCSV.readText(path)
        var out: [CorpusSource] = []
        for (number, line) in CorpusCSV.lines(text) {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 4, !f[0].isEmpty, !f[1].isEmpty, !f[2].isEmpty else {
                throw CorpusError.badFile(path, line: number, reason: "expected 4 tab-separated fields: package, file, path, licence")
            }
            out.append(CorpusSource(package: f[0], file: f[1], path: f[2], licence: f[3]))
        }
        guard !out.isEmpty else { throw CorpusError.empty(path, "the plan lists no recordings") }
        return out
    }

    /// Builds the corpus into `output` (clips/ and manifest.csv); `warn` gets one line per skipped recording.
    /// Returns the manifest rows. The result depends only on the sources and options (not on `jobs`).
    public static func build(_ sources: [CorpusSource], output: String, options: CorpusBuildOptions,
                             warn: @escaping @Sendable (String) -> Void) throws -> [CorpusManifestRow] {
        let root = URL(fileURLWithPath: output, isDirectory: true)
        do {
            try FileManager.default.createDirectory(at: root.appendingPathComponent("clips"), withIntermediateDirectories: true)
        } catch {
            throw CorpusError.unwritable(output, error.localizedDescription)
        }
        let perSource = try parallelMap(sources.count, jobs: options.jobs) { i -> [CorpusManifestRow] in
            do {
                return try clips(from: sources[i], root: root, options: options)
            } catch let e as CorpusError {
                throw e
            } catch {
                warn("\(sources[i].package)/\(sources[i].file): skipped: \(error)")
                return []
            }
        }
        var rows = perSource.flatMap { $0 }
        guard !rows.isEmpty else { throw CorpusError.empty(output, "no recording gave a clip") }
        rows += try mixtures(of: rows, root: root, options: options)
        let text = CorpusCSV.record(manifestHeader) + rows.map {
            CorpusCSV.record([$0.clip, $0.split.rawValue, $0.package, $0.source, $0.start, $0.duration, $0.licence])
        }.joined()
        try writeFileAtomically(Data(text.utf8), to: root.appendingPathComponent(CorpusData.manifestName).path)
        return rows
    }

    /// The start sample of each segment taken from a recording of `count` samples (tiled: one segment at 0).
    /// Invariant: every start + clipSamples <= count when count >= clipSamples; starts ascend.
    public static func segmentStarts(count: Int, clipSamples: Int, maxSegments: Int) -> [Int] {
        guard count > clipSamples else { return [0] }
        let whole = count / clipSamples
        let take = min(whole, max(1, maxSegments))
        guard take > 1 else { return [0] }
        // Evenly spread from the first whole segment to the last: k * (whole - 1) / (take - 1), k = 0 ..< take.
        return (0..<take).map { ($0 * (whole - 1) / (take - 1)) * clipSamples }
    }

    /// Decodes one recording and writes its clips.
    static func clips(from s: CorpusSource, root: URL, options: CorpusBuildOptions) throws -> [CorpusManifestRow] {
        guard !s.file.contains(where: \.isNewline), !s.package.contains(where: \.isNewline) else {
            throw AudioError.invalidParameters(file: s.path, detail: "a line break in its name")
        }
        let audio = try loadAudio(path: s.path, targetRate: CorpusData.sampleRate)
        let seconds = audio.durationSeconds
        guard seconds >= options.minSourceSeconds else {
            throw AudioError.invalidParameters(file: s.path, detail: String(format: "%.3f s is shorter than %.2f s",
                                                                            seconds, options.minSourceSeconds))
        }
        let split = CorpusData.split(forName: s.package + "/" + s.file)
        var rows: [CorpusManifestRow] = []
        for (k, start) in segmentStarts(count: audio.samples.count, clipSamples: options.clipSamples,
                                        maxSegments: options.maxSegmentsPerFile).enumerated() {
            let end = min(audio.samples.count, start + options.clipSamples)
            let clip = CorpusData.fit(Array(audio.samples[start..<end]), to: options.clipSamples)
            guard rms(clip) >= options.silenceRMS else { continue }
            let name = "clips/\(s.package)/\(s.file).\(k).wav"
            try writeClip(clip, to: root.appendingPathComponent(name))
            rows.append(CorpusManifestRow(clip: name, split: split, package: s.package, source: s.file,
                                          start: String(format: "%.3f", Double(start) / Double(CorpusData.sampleRate)),
                                          duration: String(format: "%.3f", seconds), licence: s.licence))
        }
        if rows.isEmpty { throw AudioError.noSamples(file: s.path) }
        return rows
    }

    /// Adds `options.mixtures` mixtures `w * a + (1 - w) * b` (w in [0.3, 0.7]) of two clips of the same split
    /// from different recordings; choices come from a seeded generator, so the corpus is reproducible.
    static func mixtures(of rows: [CorpusManifestRow], root: URL, options: CorpusBuildOptions) throws -> [CorpusManifestRow] {
        guard options.mixtures > 0 else { return [] }
        var rng = SplitMix64(seed: options.seed)
        var plan: [(a: CorpusManifestRow, b: CorpusManifestRow, w: Float, name: String)] = []
        for split in DataSplit.allCases {
            let pool = rows.filter { $0.split == split }
            let n = Int((Double(options.mixtures) * Double(pool.count) / Double(rows.count)).rounded())
            guard pool.count >= 2 else { continue }
            for _ in 0..<n {
                let a = pool[rng.below(pool.count)]
                var b = pool[rng.below(pool.count)]
                for _ in 0..<8 where b.package + b.source == a.package + a.source { b = pool[rng.below(pool.count)] }
                guard b.package + b.source != a.package + a.source else { continue }
                let w = 0.3 + 0.4 * Float(rng.unit())
                plan.append((a, b, w, String(format: "clips/mix/%@-%05d.wav", split.rawValue, plan.count)))
            }
        }
        return try parallelMap(plan.count, jobs: options.jobs) { i in
            let (a, b, w, name) = plan[i]
            let x = try loadAudio(path: root.appendingPathComponent(a.clip).path, targetRate: CorpusData.sampleRate).samples
            let y = try loadAudio(path: root.appendingPathComponent(b.clip).path, targetRate: CorpusData.sampleRate).samples
            let n = min(x.count, y.count)
            let mix = (0..<n).map { w * x[$0] + (1 - w) * y[$0] }
            try writeClip(CorpusData.fit(mix, to: options.clipSamples), to: root.appendingPathComponent(name))
            let licences = a.licence == b.licence ? a.licence : a.licence + "; " + b.licence
            return CorpusManifestRow(clip: name, split: a.split, package: a.package + " + " + b.package,
                                     source: String(format: "%@*%.3f + %@*%.3f", a.clip, w, b.clip, 1 - w),
                                     start: "", duration: String(format: "%.3f", Double(n) / Double(CorpusData.sampleRate)),
                                     licence: licences)
        }
    }

    /// Writes a clip as 16-bit mono WAV at 32 kHz (samples clamped to [-1, 1]).
    static func writeClip(_ samples: [Float], to url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let file = try SoundFile(writingPath: url.path, format: wav16, channels: 1, sampleRate: CorpusData.sampleRate)
        defer { file.close() }
        try file.writeFrames(samples.map { min(1, max(-1, $0)) })
    }

    /// Root mean square of samples.
    static func rms(_ x: [Float]) -> Float {
        guard !x.isEmpty else { return 0 }
        var s: Double = 0
        for v in x { s += Double(v) * Double(v) }
        return Float((s / Double(x.count)).squareRoot())
    }

    /// `body(i)` for i in 0..<count on up to `jobs` threads, results in index order; the first error is thrown.
    static func parallelMap<T>(_ count: Int, jobs: Int, _ body: @escaping (Int) throws -> T) throws -> [T] {
        let results = ResultBox<T>(count)
        DispatchQueue.concurrentPerform(iterations: max(1, min(jobs, count))) { worker in
            var i = worker
            while i < count {
                results.set(i, Result { try body(i) })
                i += max(1, min(jobs, count))
            }
        }
        return try results.values()
    }
}

/// Results of a parallel map, filled from many threads (each index written once, under a lock).
private final class ResultBox<T>: @unchecked Sendable {
    private var items: [Result<T, Error>?]
    private let lock = NSLock()

    /// Room for `count` results.
    init(_ count: Int) { items = Array(repeating: nil, count: count) }

    /// Stores result `i`.
    func set(_ i: Int, _ r: Result<T, Error>) { lock.lock(); items[i] = r; lock.unlock() }

    /// All results in order, throwing the first error.
    func values() throws -> [T] { try items.map { try $0!.get() } }
}

/// SplitMix64: a small seeded generator, identical on every platform.  // ref: Steele, Lea, Flood 2014 (SplitMix)
struct SplitMix64 {
    private var state: UInt64

    /// A generator from a seed.
    init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, n). Invariant: n > 0.
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
