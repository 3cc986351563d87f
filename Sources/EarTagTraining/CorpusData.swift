// A corpus of audio clips as `TrainingData`: a folder (or its manifest.csv) or a CSV manifest `path[,labels]`,
// decoded to 32 kHz mono, fitted to 10 s, cached on disk as raw float32 so later epochs never decode again.
import Foundation
import EarTagAudio
import EarTagModel

/// One clip of a corpus.
public struct CorpusClip: Sendable, Equatable {
    /// The clip's name: its path relative to the corpus folder (or as the manifest writes it).
    public var name: String
    /// The absolute path of the audio file.
    public var path: String
    /// Class indices that are present, when the corpus has labels.
    public var labels: [Int]?
    public var split: DataSplit
}

/// A folder or manifest of audio clips, optionally with hard labels and a teacher's logits.
public final class CorpusData: TrainingData {
    /// Samples every waveform has: 10 s at 32 kHz, what the teacher saw and the trainer expects.
    public static let defaultClipSamples = 320_000
    /// Sample rate of every waveform.
    public static let sampleRate = 32_000
    /// Name of the manifest a corpus folder may hold (`make corpus` writes one).
    public static let manifestName = "manifest.csv"
    /// Audio file extensions found when a folder has no manifest.
    public static let audioExtensions: Set<String> = ["wav", "flac", "ogg", "oga", "mp3", "aif", "aiff", "au", "opus", "caf"]
    /// Percentage of clips held out for validation when the manifest does not say (by hash of the clip name).
    public static let validationPercent = 10

    /// The folder or manifest as given.
    public let source: String
    /// Every clip, in corpus order (what `teach` writes rows for).
    public let clips: [CorpusClip]
    public let classCount: Int
    /// Samples per waveform.
    public let clipSamples: Int
    /// The teacher store attached, if any.
    public let teacher: TeacherLogits?
    /// Clips left out because the teacher store records them as unreadable.
    public let excludedByTeacher: [String]
    /// Decoded-waveform cache folder (nil: no cache).
    public let cacheDirectory: String?
    /// Indices into `clips` of each split's examples.
    private let members: [DataSplit: [Int]]
    /// Teacher row of each clip (empty without a teacher).
    private let teacherRows: [Int?]

    /// Opens a corpus folder or manifest; with a teacher store, checks it matches (classes, one row per clip).
    /// `cacheDirectory` nil puts the cache in `.eartag-cache` beside the manifest or inside the folder.
    public init(path: String, classCount: Int = 527, teacher: TeacherLogits? = nil, cacheDirectory: String? = nil,
                clipSamples: Int = CorpusData.defaultClipSamples) throws {
        guard classCount > 0, clipSamples > 0 else {
            throw CorpusError.mismatch(path, "class count and clip length must be positive")
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw CorpusError.notFound(path) }
        let clips: [CorpusClip]
        let base: URL
        if isDir.boolValue {
            base = URL(fileURLWithPath: path, isDirectory: true).standardizedFileURL
            let manifest = base.appendingPathComponent(Self.manifestName).path
            clips = FileManager.default.fileExists(atPath: manifest)
                ? try Self.readManifest(manifest, classCount: classCount)
                : try Self.scanFolder(base, name: path)
        } else {
            base = URL(fileURLWithPath: path).standardizedFileURL.deletingLastPathComponent()
            clips = try Self.readManifest(path, classCount: classCount)
        }
        guard !clips.isEmpty else { throw CorpusError.empty(path, "the corpus holds no audio clips") }
        self.source = path
        self.clips = clips
        self.classCount = classCount
        self.clipSamples = clipSamples
        self.teacher = teacher
        var rows: [Int?] = []
        var excluded: [String] = []
        if let teacher {
            rows = try teacher.rows(forCorpus: clips.map(\.name), classCount: classCount, corpusName: path)
            excluded = zip(clips, rows).filter { $0.1 == nil }.map(\.0.name)
        }
        self.teacherRows = rows
        self.excludedByTeacher = excluded
        var members: [DataSplit: [Int]] = [.train: [], .validation: []]
        for (i, c) in clips.enumerated() where rows.isEmpty || rows[i] != nil { members[c.split, default: []].append(i) }
        self.members = members
        self.cacheDirectory = cacheDirectory ?? base.appendingPathComponent(".eartag-cache").path
    }

    /// Number of examples in a split.
    public func count(_ split: DataSplit) -> Int { members[split]?.count ?? 0 }

    /// The example at `index` of `split`: the fitted waveform, labels (multi-hot) and teacher logits when present.
    public func example(_ split: DataSplit, _ index: Int) throws -> TrainingExample {
        let i = members[split]![index]
        let clip = clips[i]
        var labels: [Float]? = nil
        if let l = clip.labels {
            var hot = [Float](repeating: 0, count: classCount)
            for c in l { hot[c] = 1 }
            labels = hot
        }
        let logits = teacherRows.isEmpty ? nil : teacherRows[i].map { teacher!.logits(row: $0) }
        return TrainingExample(name: clip.name, waveform: try waveform(clip), labels: labels, teacherLogits: logits)
    }

    /// The clip's samples: decoded to 32 kHz mono, then fitted to `clipSamples` (see `fit`), from the cache when there.
    public func waveform(_ clip: CorpusClip) throws -> [Float] {
        let key = try cacheKey(clip)
        if let key, let cached = DecodeCache.read(key, count: clipSamples) { return cached }
        let audio = try loadAudio(path: clip.path, targetRate: Self.sampleRate)
        let samples = Self.fit(audio.samples, to: clipSamples)
        if let key { DecodeCache.write(key, samples) }
        return samples
    }

    /// Fits samples to `count`: longer input keeps its first `count` samples, shorter input is tiled (repeated
    /// from its start) as the corpus builder tiles short recordings. Invariant: `samples` is not empty.
    public static func fit(_ samples: [Float], to count: Int) -> [Float] {
        precondition(!samples.isEmpty, "fit of an empty clip")
        if samples.count >= count { return Array(samples.prefix(count)) }
        var out = [Float]()
        out.reserveCapacity(count)
        while out.count < count { out.append(contentsOf: samples.prefix(count - out.count)) }
        return out
    }

    /// The cache file for a clip: keyed by its path, size, modification time and the clip length; nil without cache.
    private func cacheKey(_ clip: CorpusClip) throws -> String? {
        guard let cacheDirectory else { return nil }
        var st = stat()
        guard stat(clip.path, &st) == 0 else { throw AudioError.fileNotFound(file: clip.path) }
        let stamp = "\(clip.path)\n\(st.st_size)\n\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)\n\(clipSamples)\n\(Self.sampleRate)"
        return cacheDirectory + "/" + sha256Hex(of: Array(stamp.utf8)) + ".f32"
    }

    /// The split a clip name falls in when nothing says otherwise: fixed by a hash of the name.
    public static func split(forName name: String) -> DataSplit {
        let digest = sha256Hex(of: Array(name.utf8))
        let bucket = Int(digest.prefix(8), radix: 16)! % 100
        return bucket < validationPercent ? .validation : .train
    }

    /// Every audio file under a folder (hidden entries skipped), sorted by relative path.
    static func scanFolder(_ base: URL, name: String) throws -> [CorpusClip] {
        guard let walker = FileManager.default.enumerator(at: base, includingPropertiesForKeys: [.isRegularFileKey],
                                                          options: [.skipsHiddenFiles]) else {
            throw CorpusError.notFound(name)
        }
        var rel: [String] = []
        let prefix = base.path.hasSuffix("/") ? base.path : base.path + "/"
        for case let url as URL in walker where audioExtensions.contains(url.pathExtension.lowercased()) {
            let p = url.standardizedFileURL.path
            guard p.hasPrefix(prefix) else { continue }
            rel.append(String(p.dropFirst(prefix.count)))
        }
        return rel.sorted().map {
            CorpusClip(name: $0, path: prefix + $0, labels: nil, split: split(forName: $0))
        }
    }

    /// Reads a CSV manifest: either headerless `path[,labels]`, or with a header naming `path` (or `clip`) and
    /// optionally `labels` and `split` columns. Labels are class indices separated by `;` or blanks; paths are
    /// relative to the manifest's folder unless absolute.
    static func readManifest(_ path: String, classCount: Int) throws -> [CorpusClip] {
        let lines = CorpusCSV.lines(try CorpusCSV.readText(path))
        guard let first = lines.first else { throw CorpusError.empty(path, "the manifest lists no clips") }
        let base = URL(fileURLWithPath: path).standardizedFileURL.deletingLastPathComponent()
        let head = try CorpusCSV.fields(first.text, file: path, number: first.number).map { $0.lowercased() }
        var pathColumn = 0, labelColumn: Int? = nil, splitColumn: Int? = nil
        var body = lines[...]
        if let p = head.firstIndex(of: "path") ?? head.firstIndex(of: "clip") {
            pathColumn = p
            labelColumn = head.firstIndex(of: "labels")
            splitColumn = head.firstIndex(of: "split")
            body = body.dropFirst()
        } else if head.count > 1 {
            labelColumn = 1
        }
        var clips: [CorpusClip] = []
        var seen = Set<String>()
        for (number, line) in body {
            let f = try CorpusCSV.fields(line, file: path, number: number)
            guard pathColumn < f.count, !f[pathColumn].isEmpty else {
                throw CorpusError.badFile(path, line: number, reason: "no clip path")
            }
            let name = f[pathColumn]
            guard seen.insert(name).inserted else { throw CorpusError.badFile(path, line: number, reason: "'\(name)' listed twice") }
            var labels: [Int]? = nil
            if let c = labelColumn {
                let text = c < f.count ? f[c] : ""
                labels = try text.split(whereSeparator: { $0 == ";" || $0 == " " }).map { t in
                    guard let v = Int(t), v >= 0, v < classCount else {
                        throw CorpusError.badFile(path, line: number, reason: "label '\(t)' is not a class index in 0..<\(classCount)")
                    }
                    return v
                }
            }
            var split = Self.split(forName: name)
            if let c = splitColumn, c < f.count, !f[c].isEmpty {
                guard let s = DataSplit(rawValue: f[c]) else {
                    throw CorpusError.badFile(path, line: number, reason: "split '\(f[c])' is not train or validation")
                }
                split = s
            }
            let absolute = name.hasPrefix("/") ? name : base.appendingPathComponent(name).path
            clips.append(CorpusClip(name: name, path: absolute, labels: labels, split: split))
        }
        return clips
    }
}

/// The on-disk cache of decoded waveforms: one raw float32 file per clip (native byte order, little-endian on every
/// supported target; a cache is not moved between machines), written atomically.
enum DecodeCache {
    /// The cached samples, or nil when absent or of the wrong length (then the clip is decoded again).
    static func read(_ path: String, count: Int) -> [Float]? {
        guard let data = FileManager.default.contents(atPath: path), data.count == count * 4 else { return nil }
        var out = [Float](repeating: 0, count: count)
        _ = out.withUnsafeMutableBytes { data.copyBytes(to: $0) }
        return out
    }

    /// Stores samples (temporary file, then rename); a cache that cannot be written is silently not used.
    static func write(_ path: String, _ samples: [Float]) {
        let dir = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let tmp = path + ".tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        let data = samples.withUnsafeBytes { Data($0) }
        guard FileManager.default.createFile(atPath: tmp, contents: data) else { return }
        if rename(tmp, path) != 0 { unlink(tmp) }
    }
}
