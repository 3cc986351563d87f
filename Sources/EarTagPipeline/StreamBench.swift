// `eartag bench --stream`: latency and CPU cost of the live pipeline on a long synthetic stream.
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagPlatform
import EarTagFrontend
import EarTagModel
import EarTagEvents

/// Figures of one streaming benchmark run.
public struct StreamBenchResult: Sendable {
    public var model: String
    public var windowSeconds: Double
    public var hopSeconds: Double
    public var audioSeconds: Double
    public var hops: Int
    /// Time from a hop's last sample being handed over to its records being written, per hop.
    public var latencyMedianMs: Double
    public var latencyP99Ms: Double
    /// Thread CPU time per second of audio, as a percentage of one core, per hop.
    public var cpuMedianPercent: Double
    public var cpuP99Percent: Double
    /// Incremental frontend cost per hop (median) against the batch frontend on one whole window (median).
    public var frontendPerHopMs: Double
    public var batchFrontendPerWindowMs: Double
    public var peakRSSMB: Double

    /// One JSON object.
    public var json: String {
        "{\"model\":\(jsonString(model)),\"window_s\":\(f(windowSeconds)),\"hop_s\":\(f(hopSeconds)),"
            + "\"audio_s\":\(f(audioSeconds)),\"hops\":\(hops),\"latency_ms_p50\":\(f(latencyMedianMs)),"
            + "\"latency_ms_p99\":\(f(latencyP99Ms)),\"cpu_percent_p50\":\(f(cpuMedianPercent)),"
            + "\"cpu_percent_p99\":\(f(cpuP99Percent)),\"frontend_ms_per_hop\":\(f(frontendPerHopMs)),"
            + "\"batch_frontend_ms_per_window\":\(f(batchFrontendPerWindowMs)),\"peak_rss_mb\":\(f(peakRSSMB))}"
    }

    /// Human-readable lines.
    public var text: String {
        """
        model: \(model)  window \(f(windowSeconds)) s  hop \(f(hopSeconds)) s  \(hops) hops (\(f(audioSeconds)) s of audio)
        latency (hop's last sample -> records written): median \(f(latencyMedianMs)) ms, p99 \(f(latencyP99Ms)) ms
        CPU per second of audio: median \(f(cpuMedianPercent)) %, p99 \(f(cpuP99Percent)) % of one core
        frontend per hop: \(f(frontendPerHopMs)) ms incremental vs \(f(batchFrontendPerWindowMs)) ms batch per window
        peak RSS: \(f(peakRSSMB)) MB
        """
    }

    private func f(_ v: Double) -> String { String(printf: "%.3f", v) }
}

extension Bench {
    /// Streams `seconds` of synthetic audio through the live processor as fast as it goes, one hop at a time.
    public static func runStream(model: AnyModel, seconds: Double, windowSeconds: Double, hopSeconds: Double,
                                 threads: Int) throws -> StreamBenchResult {
        var settings = StreamSettings()
        settings.windowSeconds = windowSeconds
        settings.hopSeconds = hopSeconds
        settings.threads = threads
        let events = try EventConfig(numClasses: model.architecture.numClasses, sampleRate: model.frontend.sampleRate)
        var written = 0
        let processor = try StreamProcessor(model: model, settings: settings, events: events) { _ in written += 1 }
        let hop = processor.hopSamples
        let rate = model.frontend.sampleRate
        let clip = syntheticClip(rate: rate)
        let hops = Int(seconds * Double(rate)) / hop
        var latencies: [Double] = []
        var cpu: [Double] = []
        latencies.reserveCapacity(hops)
        cpu.reserveCapacity(hops)
        clip.withUnsafeBufferPointer { all in
            var position = 0
            for _ in 0..<hops {
                if position + hop > all.count { position = 0 }
                let chunk = UnsafeBufferPointer(rebasing: all[position..<(position + hop)])
                position += hop
                let c0 = threadCPUSeconds()
                let t0 = now()
                processor.consume(chunk)
                let t1 = now()
                let c1 = threadCPUSeconds()
                if processor.windowsProcessed > 0 {
                    latencies.append((t1 - t0) * 1e3)
                    cpu.append((c1 - c0) / (Double(hop) / Double(rate)) * 100)
                }
            }
        }
        processor.finish()
        // The frontend alone: incremental per hop against batch per window.
        let streaming = try StreamingLogMel(settings: model.frontend, windowSamples: processor.windowSamples,
                                            hopSamples: hop)
        var mel = [Float](repeating: 0, count: model.frontend.nMels * streaming.framesPerWindow)
        var perHop: [Double] = []
        clip.withUnsafeBufferPointer { all in
            mel.withUnsafeMutableBufferPointer { m in
                var position = 0
                for _ in 0..<max(40, processor.windowSamples / hop * 3) {
                    if position + hop > all.count { position = 0 }
                    let t0 = now()
                    streaming.push(UnsafeBufferPointer(rebasing: all[position..<(position + hop)]))
                    let got = streaming.nextWindow(into: m)
                    let t1 = now()
                    position += hop
                    if got != nil { perHop.append((t1 - t0) * 1e3) }
                }
            }
        }
        let batch = try LogMelFrontend(settings: model.frontend)
        let window = Array(clip.prefix(processor.windowSamples))
        var batchTimes: [Double] = []
        for _ in 0..<20 {
            let t0 = now()
            _ = try batch.compute(window)
            batchTimes.append((now() - t0) * 1e3)
        }
        return StreamBenchResult(
            model: model.name, windowSeconds: windowSeconds, hopSeconds: hopSeconds,
            audioSeconds: Double(hops * hop) / Double(rate), hops: hops,
            latencyMedianMs: percentile(latencies, 0.5), latencyP99Ms: percentile(latencies, 0.99),
            cpuMedianPercent: percentile(cpu, 0.5), cpuP99Percent: percentile(cpu, 0.99),
            frontendPerHopMs: percentile(perHop, 0.5), batchFrontendPerWindowMs: percentile(batchTimes, 0.5),
            peakRSSMB: peakRSSMegabytes())
    }

    /// The q-quantile (nearest rank) of a list; 0 for an empty list.
    static func percentile(_ v: [Double], _ q: Double) -> Double {
        guard !v.isEmpty else { return 0 }
        let s = v.sorted()
        return s[min(s.count - 1, max(0, Int((q * Double(s.count)).rounded(.up)) - 1))]
    }

    /// CPU time consumed by the calling thread, in seconds.
    static func threadCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
