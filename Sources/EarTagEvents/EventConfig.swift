// Validated settings of the event detector: thresholds, watched classes, k-of-n, hold and cooldown.
import EarTagModel

/// Validated, immutable settings of an `EventDetector`; durations are stored in samples.
public struct EventConfig: Sendable, Equatable {
    /// Default on threshold.
    public static let defaultOn: Float = 0.3
    /// Default off threshold as a fraction of the on threshold.
    public static let defaultOffRatio: Float = 0.75
    /// Default k of k-of-n confirmation.
    public static let defaultConfirmHits = 2
    /// Default n of k-of-n confirmation.
    public static let defaultConfirmWindows = 3
    /// Default hold (seconds).
    public static let defaultHold = 2.0
    /// Default cooldown (seconds).
    public static let defaultCooldown = 0.0
    /// Largest n accepted (the hit history is a 64-bit mask).
    public static let maxConfirmWindows = 64

    /// Samples per second of the stream whose sample counts are passed to the detector.
    public let sampleRate: Int
    /// Number of classes the config was built for.
    public let numClasses: Int
    /// On threshold of each class.
    public let on: [Float]
    /// Off threshold of each class (<= on).
    public let off: [Float]
    /// Whether each class is watched (may produce events).
    public let watched: [Bool]
    /// k: hits needed among the last n windows to start a label.
    public let confirmHits: Int
    /// n: windows considered for confirmation.
    public let confirmWindows: Int
    /// Hold in samples: a label ends at the first window below off whose windowEnd - last heard >= this.
    public let holdSamples: Int64
    /// Cooldown in samples: hits whose new audio starts before end time + this are ignored.
    public let cooldownSamples: Int64

    /// Builds and validates a config; `watched` nil means every class, `excluded` is then removed from it.
    public init(numClasses: Int,
                sampleRate: Int = 32_000,
                on: Float = EventConfig.defaultOn,
                off: Float? = nil,
                classThresholds: [Int: ClassThresholds] = [:],
                watched: Set<Int>? = nil,
                excluded: Set<Int> = [],
                confirmHits: Int = EventConfig.defaultConfirmHits,
                confirmWindows: Int = EventConfig.defaultConfirmWindows,
                hold: Double = EventConfig.defaultHold,
                cooldown: Double = EventConfig.defaultCooldown) throws {
        func bad(_ s: String) -> EventError { .invalidConfig(s) }
        guard numClasses >= 1 else { throw bad("number of classes \(numClasses) must be at least 1") }
        guard sampleRate >= 1 else { throw bad("sample rate \(sampleRate) must be positive") }
        try EventConfig.checkPair(on: on, off: off ?? on * EventConfig.defaultOffRatio, what: "default")
        guard confirmWindows >= 1, confirmWindows <= EventConfig.maxConfirmWindows else {
            throw bad("n (confirmation windows) \(confirmWindows) must be in 1...\(EventConfig.maxConfirmWindows)")
        }
        guard confirmHits >= 1, confirmHits <= confirmWindows else {
            throw bad("k (confirmation hits) \(confirmHits) must be in 1...n (n = \(confirmWindows))")
        }
        guard hold.isFinite, hold >= 0 else { throw bad("hold \(hold) s must be a finite number >= 0") }
        guard cooldown.isFinite, cooldown >= 0 else { throw bad("cooldown \(cooldown) s must be a finite number >= 0") }
        let limit = Double(Int64.max / 4) / Double(sampleRate)
        guard hold <= limit, cooldown <= limit else { throw bad("hold or cooldown is too long") }

        var onArray = [Float](repeating: on, count: numClasses)
        var offArray = [Float](repeating: off ?? on * EventConfig.defaultOffRatio, count: numClasses)
        for (c, t) in classThresholds.sorted(by: { $0.key < $1.key }) {
            guard c >= 0, c < numClasses else { throw bad("threshold given for class \(c), outside 0..<\(numClasses)") }
            try EventConfig.checkPair(on: t.on, off: t.off, what: "class \(c)")
            onArray[c] = t.on
            offArray[c] = t.off
        }
        var watch = [Bool](repeating: watched == nil, count: numClasses)
        for c in (watched ?? []).sorted() {
            guard c >= 0, c < numClasses else { throw bad("watched class \(c) is outside 0..<\(numClasses)") }
            watch[c] = true
        }
        for c in excluded.sorted() {
            guard c >= 0, c < numClasses else { throw bad("excluded class \(c) is outside 0..<\(numClasses)") }
            watch[c] = false
        }
        guard watch.contains(true) else { throw bad("no class left to watch (allow list minus deny list is empty)") }

        self.sampleRate = sampleRate
        self.numClasses = numClasses
        self.on = onArray
        self.off = offArray
        self.watched = watch
        self.confirmHits = confirmHits
        self.confirmWindows = confirmWindows
        self.holdSamples = Int64((hold * Double(sampleRate)).rounded())
        self.cooldownSamples = Int64((cooldown * Double(sampleRate)).rounded())
    }

    /// Builds a config from user options, resolving label names and reading the threshold file.
    public init(options: EventOptions, labels: [Label], sampleRate: Int = 32_000) throws {
        let selector = LabelSelector(labels: labels)
        let allow = try options.labels.map { Set(try selector.indices(of: $0)) }
        let deny = Set(try selector.indices(of: options.exclude))
        let perClass = try options.thresholdFile.map { try ThresholdFile.read(path: $0, selector: selector) } ?? [:]
        try self.init(numClasses: labels.count, sampleRate: sampleRate, on: options.on, off: options.off,
                      classThresholds: perClass, watched: allow, excluded: deny,
                      confirmHits: options.confirmHits, confirmWindows: options.confirmWindows,
                      hold: options.hold, cooldown: options.cooldown)
    }

    /// Classes that are watched, in index order.
    public var watchedClasses: [Int] { watched.indices.filter { watched[$0] } }

    /// Checks that both thresholds are in [0, 1] and off <= on.
    private static func checkPair(on: Float, off: Float, what: String) throws {
        guard on.isFinite, on >= 0, on <= 1 else { throw EventError.invalidConfig("\(what) on threshold \(on) is outside [0, 1]") }
        guard off.isFinite, off >= 0, off <= 1 else { throw EventError.invalidConfig("\(what) off threshold \(off) is outside [0, 1]") }
        guard off <= on else { throw EventError.invalidConfig("\(what) off threshold \(off) is above on threshold \(on)") }
    }
}

/// User-facing event options as the command line gives them (names unresolved, durations in seconds).
public struct EventOptions: Sendable, Equatable {
    /// Allow list of label names or mids (`--labels`); nil watches every class.
    public var labels: [String]?
    /// Deny list of label names or mids (`--exclude`).
    public var exclude: [String]
    /// Path of a per-label threshold file, if any.
    public var thresholdFile: String?
    /// Default on threshold.
    public var on: Float
    /// Default off threshold; nil means 0.75 x `on`.
    public var off: Float?
    /// k of k-of-n confirmation.
    public var confirmHits: Int
    /// n of k-of-n confirmation.
    public var confirmWindows: Int
    /// Hold in seconds.
    public var hold: Double
    /// Cooldown in seconds.
    public var cooldown: Double

    /// Options with the documented defaults unless given.
    public init(labels: [String]? = nil, exclude: [String] = [], thresholdFile: String? = nil,
                on: Float = EventConfig.defaultOn, off: Float? = nil,
                confirmHits: Int = EventConfig.defaultConfirmHits,
                confirmWindows: Int = EventConfig.defaultConfirmWindows,
                hold: Double = EventConfig.defaultHold, cooldown: Double = EventConfig.defaultCooldown) {
        self.labels = labels
        self.exclude = exclude
        self.thresholdFile = thresholdFile
        self.on = on
        self.off = off
        self.confirmHits = confirmHits
        self.confirmWindows = confirmWindows
        self.hold = hold
        self.cooldown = cooldown
    }
}
