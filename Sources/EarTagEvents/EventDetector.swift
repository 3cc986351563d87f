// Turns per-window class scores of overlapping windows into start/end events (k-of-n, hysteresis, hold, cooldown).

/// One label starting or ending, with stream times in samples.
///
/// Window k covers stream samples [windowStart, windowEnd); its new audio is [windowEnd - hop, windowEnd)
/// (clamped to windowStart). A window is a *hit* when its score >= on, and the label is *heard* in it when
/// its score >= off.
/// - `start.sample`: beginning of the new audio of the first of the k hits (within the last n windows) that
///   confirmed the label. The start is emitted from the window that brings the k-th hit.
/// - `end.sample`: windowEnd of the last window in which the label was heard (score >= off). The end is
///   emitted from the first window with score < off whose windowEnd - end.sample >= hold, i.e. once the audio
///   since the label was last heard spans at least the hold; hold 0 ends it at the first window below off.
///   `finish(at:)` ends active labels at max(start, min(last heard, at)).
/// - `peak`, `mean`, `windows`: over the windows from the first confirming hit through the current window for a
///   start, and through the last heard window for an end (dips below off in between are included).
/// Scores that are NaN count as 0 and are never hits nor heard.
public struct Event: Sendable, Equatable {
    /// Whether a label started or ended.
    public enum Kind: String, Sendable, Equatable { case start, end }

    /// Start or end.
    public var kind: Kind
    /// Class index in model order.
    public var classIndex: Int
    /// Stream time of the event in samples (see the type's documentation).
    public var sample: Int64
    /// Highest score over the event's windows.
    public var peak: Float
    /// Mean score over the event's windows.
    public var mean: Float
    /// Number of windows the peak and mean cover.
    public var windows: Int

    /// Memberwise initializer.
    public init(kind: Kind, classIndex: Int, sample: Int64, peak: Float, mean: Float, windows: Int) {
        self.kind = kind
        self.classIndex = classIndex
        self.sample = sample
        self.peak = peak
        self.mean = mean
        self.windows = windows
    }
}

/// Per-class detector state; plain values so the state array never allocates.
private struct ClassState {
    /// Hit bits of recent windows while inactive, bit 0 = newest.
    var history: UInt64 = 0
    /// Whether the label is active.
    var active = false
    /// Start time of the current activation.
    var start: Int64 = 0
    /// windowEnd of the last window with score >= off.
    var lastHeard: Int64 = 0
    /// Hits whose new audio starts before this are ignored.
    var cooldownUntil: Int64 = .min
    /// Stats from the first confirming hit through the last heard window.
    var peak: Float = 0
    var sum: Double = 0
    var count = 0
    /// Stats of the windows below off since the last heard window.
    var pendingPeak: Float = 0
    var pendingSum: Double = 0
    var pendingCount = 0
}

/// Streaming event detector: call `process` once per window in time order; it never allocates (times: see `Event`).
public final class EventDetector {
    /// The settings in use.
    public let config: EventConfig
    /// Number of classes per score vector.
    public let numClasses: Int
    private let watchedList: [Int]
    private let on: [Float]
    private let off: [Float]
    private let k: Int
    private let n: Int
    private let historyMask: UInt64
    private let state: UnsafeMutablePointer<ClassState>
    private let scoreRing: UnsafeMutablePointer<Float>
    private let timeRing: UnsafeMutablePointer<Int64>
    private var windowCount: Int64 = 0
    private var lastWindowEnd: Int64 = .min
    /// Number of labels currently active.
    public private(set) var activeCount = 0

    /// Preallocates per-class state; `config` must have been built for `numClasses` classes.
    public init(config: EventConfig, numClasses: Int) throws {
        guard numClasses == config.numClasses else {
            throw EventError.invalidConfig("config is for \(config.numClasses) classes but the model has \(numClasses)")
        }
        self.config = config
        self.numClasses = numClasses
        watchedList = config.watchedClasses
        on = config.on
        off = config.off
        k = config.confirmHits
        n = config.confirmWindows
        historyMask = n >= 64 ? ~0 : (UInt64(1) << UInt64(n)) - 1
        state = .allocate(capacity: numClasses)
        state.initialize(repeating: ClassState(), count: numClasses)
        scoreRing = .allocate(capacity: numClasses * n)
        scoreRing.initialize(repeating: 0, count: numClasses * n)
        timeRing = .allocate(capacity: n)
        timeRing.initialize(repeating: 0, count: n)
    }

    deinit {
        state.deinitialize(count: numClasses)
        state.deallocate()
        scoreRing.deallocate()
        timeRing.deallocate()
    }

    /// Feeds one window's scores (at least `numClasses`); windows must come with increasing `windowEnd`.
    public func process(scores: UnsafeBufferPointer<Float>, windowStart: Int64, windowEnd: Int64, hop: Int64,
                        emit: (Event) -> Void) {
        precondition(scores.count >= numClasses, "EventDetector: \(scores.count) scores for \(numClasses) classes")
        precondition(hop > 0 && windowEnd > windowStart, "EventDetector: empty window or non-positive hop")
        precondition(windowEnd > lastWindowEnd, "EventDetector: windows must be passed in increasing time order")
        lastWindowEnd = windowEnd
        let newStart = max(windowStart, windowEnd - hop)
        let slot = Int(windowCount % Int64(n))
        timeRing[slot] = newStart
        windowCount += 1
        let hold = config.holdSamples
        let cooldown = config.cooldownSamples
        for c in watchedList {
            let raw = scores[c]
            let valid = !raw.isNaN
            let s: Float = valid ? raw : 0
            scoreRing[c * n + slot] = s
            if state[c].active {
                if valid && s >= off[c] {
                    var st = state[c]
                    st.peak = max(st.peak, st.pendingPeak, s)
                    st.sum += st.pendingSum + Double(s)
                    st.count += st.pendingCount + 1
                    st.pendingPeak = 0; st.pendingSum = 0; st.pendingCount = 0
                    st.lastHeard = windowEnd
                    state[c] = st
                } else {
                    state[c].pendingPeak = max(state[c].pendingPeak, s)
                    state[c].pendingSum += Double(s)
                    state[c].pendingCount += 1
                    if windowEnd - state[c].lastHeard >= hold {
                        end(c, at: state[c].lastHeard, cooldown: cooldown, emit: emit)
                    }
                }
            } else {
                let hit = valid && s >= on[c] && newStart >= state[c].cooldownUntil
                let history = ((state[c].history << 1) | (hit ? 1 : 0)) & historyMask
                state[c].history = history
                if hit && history.nonzeroBitCount >= k {
                    start(c, history: history, windowEnd: windowEnd, emit: emit)
                }
            }
        }
    }

    /// Ends every active label at max(start, min(last heard, `sample`)) and clears confirmation histories.
    public func finish(at sample: Int64, emit: (Event) -> Void) {
        let cooldown = config.cooldownSamples
        for c in watchedList {
            if state[c].active {
                end(c, at: max(state[c].start, min(state[c].lastHeard, sample)), cooldown: cooldown, emit: emit)
            }
            state[c].history = 0
        }
    }

    /// Forgets everything: activity, histories, cooldowns and the window clock; emits nothing.
    public func reset() {
        for c in 0..<numClasses { state[c] = ClassState() }
        windowCount = 0
        lastWindowEnd = .min
        activeCount = 0
    }

    /// Whether class `classIndex` is currently active (false for indices out of range).
    public func isActive(_ classIndex: Int) -> Bool {
        classIndex >= 0 && classIndex < numClasses && state[classIndex].active
    }

    /// Active classes in index order (allocates; not for the per-window path).
    public var activeClasses: [Int] { watchedList.filter { state[$0].active } }

    /// Activates class `c`, confirmed by the hits in `history`, and emits its start.
    private func start(_ c: Int, history: UInt64, windowEnd: Int64, emit: (Event) -> Void) {
        let age = 63 - history.leadingZeroBitCount   // age of the first confirming hit, 0 = this window
        let nn = Int64(n)
        var peak: Float = 0
        var sum: Double = 0
        for a in 0...age {
            let slot = Int((windowCount - 1 - Int64(a)) % nn)
            let s = scoreRing[c * n + slot]
            peak = max(peak, s)
            sum += Double(s)
        }
        let firstSlot = Int((windowCount - 1 - Int64(age)) % nn)
        var st = ClassState()
        st.active = true
        st.start = timeRing[firstSlot]
        st.lastHeard = windowEnd
        st.cooldownUntil = state[c].cooldownUntil
        st.peak = peak
        st.sum = sum
        st.count = age + 1
        state[c] = st
        activeCount += 1
        emit(Event(kind: .start, classIndex: c, sample: st.start, peak: peak, mean: Float(sum / Double(age + 1)),
                   windows: age + 1))
    }

    /// Deactivates class `c`, emits its end at `time` and starts its cooldown.
    private func end(_ c: Int, at time: Int64, cooldown: Int64, emit: (Event) -> Void) {
        let st = state[c]
        var fresh = ClassState()
        fresh.cooldownUntil = time + cooldown
        state[c] = fresh
        activeCount -= 1
        emit(Event(kind: .end, classIndex: c, sample: time, peak: st.peak,
                   mean: Float(st.sum / Double(max(st.count, 1))), windows: st.count))
    }
}
