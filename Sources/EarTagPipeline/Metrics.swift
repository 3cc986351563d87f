// The listener's metrics: atomics updated by the processing thread, rendered in Prometheus text exposition format.
// ref: Prometheus "Exposition formats", text-based format version 0.0.4 (HELP/TYPE lines, histogram _bucket/_sum/_count).
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagPlatform
import Atomics
import EarTagModel

/// Counters and gauges of one `eartag listen` run; updates are lock-free atomics, rendering reads them.
public final class ListenMetrics: ListenObserver, @unchecked Sendable {
    /// Upper bounds of the inference latency histogram, in seconds.
    public static let latencyBuckets: [Double] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2]

    private let labels: [Label]
    private let windows = ManagedAtomic<Int>(0)
    private let skipped = ManagedAtomic<Int>(0)
    private let overruns = ManagedAtomic<Int>(0)
    private let samples = ManagedAtomic<Int>(0)
    private let busyNanos = ManagedAtomic<Int>(0)
    private let ringFill = ManagedAtomic<Int>(0)
    private let ringCapacity = ManagedAtomic<Int>(0)
    private let dropped = ManagedAtomic<Int>(0)
    private let xruns = ManagedAtomic<Int>(0)
    private let reconnects = ManagedAtomic<Int>(0)
    private let deaf = ManagedAtomic<Int>(0)
    /// Bit pattern of the last window's level in dBFS (NaN before the first window).
    private let levelBits = ManagedAtomic<UInt64>(Double.nan.bitPattern)
    /// Per-bucket (not cumulative) inference counts; the last slot is +Inf.
    private let latencyCounts: [ManagedAtomic<Int>]
    private let latencyNanos = ManagedAtomic<Int>(0)
    /// Start events per class.
    private let starts: [ManagedAtomic<Int>]
    /// End events per class.
    private let ends: [ManagedAtomic<Int>]
    /// The MQTT publisher's counters, when it runs.
    public var mqtt: MqttStats?
    /// Text files giving the SoC temperature (millidegrees) and the firmware throttling flags, when readable.
    public var temperaturePath = "/sys/class/thermal/thermal_zone0/temp"
    /// Raspberry Pi firmware throttling flags (the same as `vcgencmd get_throttled`).
    public var throttledPath = "/sys/devices/platform/soc/soc:firmware/get_throttled"
    /// `eartag_build_info` labels.
    private let version: String, model: String

    /// Metrics for a model with these labels.
    public init(labels: [Label], version: String, model: String) {
        self.labels = labels
        self.version = version
        self.model = model
        latencyCounts = (0...Self.latencyBuckets.count).map { _ in ManagedAtomic<Int>(0) }
        starts = labels.map { _ in ManagedAtomic<Int>(0) }
        ends = labels.map { _ in ManagedAtomic<Int>(0) }
    }

    public func window(_ w: WindowStats, scores: UnsafeBufferPointer<Float>) {
        windows.wrappingIncrement(ordering: .relaxed)
        levelBits.store(w.levelDBFS.bitPattern, ordering: .relaxed)
        if w.analysisSeconds > w.hopSeconds { overruns.wrappingIncrement(ordering: .relaxed) }
        if w.skipped {
            skipped.wrappingIncrement(ordering: .relaxed)
            return
        }
        var bucket = Self.latencyBuckets.count
        for (i, bound) in Self.latencyBuckets.enumerated() where w.inferenceSeconds <= bound {
            bucket = i
            break
        }
        latencyCounts[bucket].wrappingIncrement(ordering: .relaxed)
        latencyNanos.wrappingIncrement(by: Int(w.inferenceSeconds * 1e9), ordering: .relaxed)
    }

    public func record(_ r: StreamRecord) {
        switch r {
        case let .start(label, _, _, _): starts[label].wrappingIncrement(ordering: .relaxed)
        case let .end(label, _, _, _, _, _): ends[label].wrappingIncrement(ordering: .relaxed)
        case .window: break
        }
    }

    public func hop(_ h: HopStats) {
        samples.store(Int(h.samplesConsumed), ordering: .relaxed)
        busyNanos.store(Int(h.busySeconds * 1e9), ordering: .relaxed)
        ringFill.store(h.ringFill, ordering: .relaxed)
        ringCapacity.store(h.ringCapacity, ordering: .relaxed)
        dropped.store(Int(h.droppedSamples), ordering: .relaxed)
        xruns.store(h.xruns, ordering: .relaxed)
        reconnects.store(h.reconnects, ordering: .relaxed)
        deaf.store(h.deaf ? 1 : 0, ordering: .relaxed)
    }

    public func finish() {}

    /// The exposition text (version 0.0.4), every family with HELP and TYPE lines.
    public func render() -> String {
        var out = ""
        /// Appends one family with its samples.
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP eartag_\(name) \(help)\n# TYPE eartag_\(name) \(type)\n"
            for (suffix, value) in samples { out += "eartag_\(name)\(suffix) \(Self.number(value))\n" }
        }
        /// A family with one unlabelled sample.
        func single(_ name: String, _ type: String, _ help: String, _ value: Double) { family(name, type, help, [("", value)]) }
        /// An atomic's value.
        func v(_ a: ManagedAtomic<Int>) -> Double { Double(a.load(ordering: .relaxed)) }

        family("build_info", "gauge", "Version and model of the running listener.",
               [("{version=\"\(Self.escape(version))\",model=\"\(Self.escape(model))\"}", 1)])
        single("windows_processed_total", "counter", "Windows analysed (including those the level gate skipped).", v(windows))
        single("windows_skipped_total", "counter", "Windows whose inference the level gate (--min-dbfs) skipped.", v(skipped))
        single("audio_samples_total", "counter", "Audio samples (32 kHz) consumed by the processor.", v(samples))
        let audioSeconds = v(samples) / 32000
        let busy = v(busyNanos) / 1e9
        single("processing_seconds_total", "counter", "Seconds the processing thread spent on audio.", busy)
        single("real_time_factor", "gauge", "Processing seconds per second of audio since the start.",
               audioSeconds > 0 ? busy / audioSeconds : 0)
        var cumulative = 0.0
        var buckets: [(String, Double)] = []
        for (i, bound) in Self.latencyBuckets.enumerated() {
            cumulative += v(latencyCounts[i])
            buckets.append(("_bucket{le=\"\(Self.number(bound))\"}", cumulative))
        }
        cumulative += v(latencyCounts[Self.latencyBuckets.count])
        buckets.append(("_bucket{le=\"+Inf\"}", cumulative))
        buckets.append(("_sum", v(latencyNanos) / 1e9))
        buckets.append(("_count", cumulative))
        family("inference_seconds", "histogram", "Engine time per analysed window.", buckets)
        single("deadline_overruns_total", "counter",
               "Windows whose analysis took longer than one hop (finished after the next window was due).", v(overruns))
        single("ring_fill_samples", "gauge", "Samples waiting in the capture ring buffer.", v(ringFill))
        single("ring_capacity_samples", "gauge", "Capacity of the capture ring buffer (0 for files).", v(ringCapacity))
        single("dropped_samples_total", "counter", "Samples the live ring dropped because processing fell behind.", v(dropped))
        single("xruns_total", "counter", "ALSA capture overruns recovered.", v(xruns))
        single("device_reconnects_total", "counter", "ALSA capture device reopens after a loss.", v(reconnects))
        single("deaf", "gauge", "1 while the capture device is lost or silent.", v(deaf))
        let level = Double(bitPattern: levelBits.load(ordering: .relaxed))
        if !level.isNaN { single("input_level_dbfs", "gauge", "RMS level of the last window in dBFS.", level) }
        var eventSamples: [(String, Double)] = []
        for i in labels.indices {
            let s = v(starts[i]), e = v(ends[i])
            guard s > 0 || e > 0 else { continue }
            let l = "label=\"\(Self.escape(labels[i].displayName))\",mid=\"\(Self.escape(labels[i].mid))\""
            eventSamples.append(("{\(l),type=\"start\"}", s))
            eventSamples.append(("{\(l),type=\"end\"}", e))
        }
        family("events_total", "counter", "Start and end events per label.", eventSamples)
        if let mqtt {
            single("mqtt_connected", "gauge", "1 while connected to the MQTT broker.", v(mqtt.connected))
            single("mqtt_queue_depth", "gauge", "MQTT messages queued or awaiting PUBACK.", v(mqtt.queueDepth))
            single("mqtt_dropped_total", "counter", "MQTT messages dropped because the queue was full.", v(mqtt.dropped))
            single("mqtt_reconnects_total", "counter", "MQTT reconnections after the first connection.", v(mqtt.reconnects))
            single("mqtt_delivered_total", "counter", "MQTT messages handed to the broker (QoS 1: acknowledged).",
                   v(mqtt.delivered))
        }
        if let t = Self.readNumber(temperaturePath) {
            single("soc_temperature_celsius", "gauge", "SoC temperature (\(temperaturePath)).", t / 1000)
        }
        if let flags = Self.readNumber(throttledPath, hex: true) {
            let bits = Int(flags)
            family("throttled", "gauge", "Raspberry Pi firmware throttling flags (get_throttled), one sample per flag.",
                   Self.throttleFlags.map { ("{flag=\"\($0.name)\"}", Double((bits >> $0.bit) & 1)) })
        }
        return out
    }

    /// The bits of `get_throttled` (ref: Raspberry Pi documentation, `vcgencmd get_throttled`).
    static let throttleFlags: [(bit: Int, name: String)] = [
        (0, "under_voltage"), (1, "arm_frequency_capped"), (2, "throttled"), (3, "soft_temperature_limit"),
        (16, "under_voltage_occurred"), (17, "arm_frequency_capping_occurred"), (18, "throttling_occurred"),
        (19, "soft_temperature_limit_occurred"),
    ]

    /// A number from a small text file (decimal, or hex with or without 0x), nil when unreadable.
    static func readNumber(_ path: String, hex: Bool = false) -> Double? {
        guard let data = FileManager.default.contents(atPath: path),
              let text = String(data: data.prefix(64), encoding: .utf8)?.trimmingWhitespace(),
              !text.isEmpty else { return nil }
        if hex {
            let digits = text.lowercased().hasPrefix("0x") ? String(text.dropFirst(2)) : text
            return UInt64(digits, radix: 16).map { Double($0) }
        }
        return Double(text)
    }

    /// A sample value: integers without a fraction, others in shortest round-trip form.
    static func number(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }

    /// A label value with `\`, `"` and newlines escaped.
    static func escape(_ s: String) -> String {
        s.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"")
            .replacing("\n", with: "\\n")
    }
}
