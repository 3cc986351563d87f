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
import EarTagAudio
import Atomics
import Dispatch

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
    /// Processing-thread CPU time per second of audio, as a percentage of one core, per hop.
    public var cpuMedianPercent: Double
    public var cpuP99Percent: Double
    /// CPU time of the whole process (producer and processing threads) over the stream per second of audio, in
    /// percent of one core.
    public var processCPUPercent: Double
    /// Incremental frontend cost per hop (median) against the batch frontend on one whole window (median).
    public var frontendPerHopMs: Double
    public var batchFrontendPerWindowMs: Double
    public var peakRSSMB: Double

    /// One JSON object.
    public var json: String {
        "{\"model\":\(jsonString(model)),\"window_s\":\(f(windowSeconds)),\"hop_s\":\(f(hopSeconds)),"
            + "\"audio_s\":\(f(audioSeconds)),\"hops\":\(hops),\"latency_ms_p50\":\(f(latencyMedianMs)),"
            + "\"latency_ms_p99\":\(f(latencyP99Ms)),\"cpu_percent_p50\":\(f(cpuMedianPercent)),"
            + "\"cpu_percent_p99\":\(f(cpuP99Percent)),\"process_cpu_percent\":\(f(processCPUPercent)),\"frontend_ms_per_hop\":\(f(frontendPerHopMs)),"
            + "\"batch_frontend_ms_per_window\":\(f(batchFrontendPerWindowMs)),\"peak_rss_mb\":\(f(peakRSSMB))}"
    }

    /// Human-readable lines.
    public var text: String {
        """
        model: \(model)  window \(f(windowSeconds)) s  hop \(f(hopSeconds)) s  \(hops) hops (\(f(audioSeconds)) s of audio)
        latency (hop's last sample -> records written): median \(f(latencyMedianMs)) ms, p99 \(f(latencyP99Ms)) ms
        CPU per second of audio: median \(f(cpuMedianPercent)) %, p99 \(f(cpuP99Percent)) % of one core (processing thread per hop); whole process \(f(processCPUPercent)) %
        frontend per hop: \(f(frontendPerHopMs)) ms incremental vs \(f(batchFrontendPerWindowMs)) ms batch per window
        peak RSS: \(f(peakRSSMB)) MB
        """
    }

    private func f(_ v: Double) -> String { String(printf: "%.3f", v) }
}

extension Bench {
    /// Streams `seconds` of synthetic audio through the live path as a capture would deliver it: a producer thread
    /// writes 20 ms periods into the live `SampleRing`; the processing thread waits on the ring as `eartag listen`
    /// does, runs the processor and writes every record (each window's and each event's JSON line) to /dev/null.
    /// The producer starts the next hop once the previous one is written, so each hop meets an idle consumer, as
    /// at real time; latency runs from the hop's last period being handed to the ring (ring wake-up included).
    public static func runStream(model: AnyModel, seconds: Double, windowSeconds: Double, hopSeconds: Double,
                                 threads: Int) throws -> StreamBenchResult {
        var settings = StreamSettings()
        settings.windowSeconds = windowSeconds
        settings.hopSeconds = hopSeconds
        settings.threads = threads
        settings.printWindows = true
        let events = try EventConfig(numClasses: model.architecture.numClasses, sampleRate: model.frontend.sampleRate)
        let printer = StreamRecordPrinter(format: .jsonl, top: 5, allScores: false, labels: model.labels)
        let devNull = open("/dev/null", O_WRONLY | O_CLOEXEC)
        guard devNull >= 0 else { throw StreamSettingsError(description: "/dev/null: cannot open for writing") }
        defer { close(devNull) }
        let out = LineWriter(fd: devNull)
        let processor = try StreamProcessor(model: model, settings: settings, events: events) { record in
            out.write(printer.render(record))
        }
        let hop = processor.hopSamples
        let rate = model.frontend.sampleRate
        let clip = syntheticClip(rate: rate)
        let hops = Int(seconds * Double(rate)) / hop
        let ring = SampleRing(capacity: ListenRunner.ringCapacity(hopSamples: hop, live: true, sampleRate: rate),
                              policy: .dropOldest)
        let handedOver = ManagedAtomic<UInt64>(0)  // bit pattern of the time the hop's last period was written
        let consumed = DispatchSemaphore(value: 0)
        let period = max(1, rate / 50)
        DetachedThread.start(stackSize: 1 << 20) {
            clip.withUnsafeBufferPointer { all in
                var position = 0
                for _ in 0..<hops {
                    var left = hop
                    while left > 0 {
                        let n = min(period, left, all.count - position)
                        if left == n { handedOver.store(now().bitPattern, ordering: .releasing) }
                        ring.write(UnsafeBufferPointer(rebasing: all[position..<(position + n)]))
                        position = (position + n) % all.count
                        left -= n
                    }
                    consumed.wait()
                }
            }
            ring.close()
        }
        var latencies: [Double] = []
        var cpu: [Double] = []
        latencies.reserveCapacity(hops)
        cpu.reserveCapacity(hops)
        var buffer = [Float](repeating: 0, count: hop)
        let processCPU0 = processCPUSeconds()
        buffer.withUnsafeMutableBufferPointer { buf in
            for _ in 0..<hops {
                let c0 = threadCPUSeconds()
                // The processing loop of `eartag listen` (ListenRunner.pump): wait for the samples that complete the
                // next window, read what is there, consume it; until this hop's samples are all consumed.
                let hopEnd = processor.samplesConsumed + Int64(hop)
                while processor.samplesConsumed < hopEnd {
                    ListenRunner.awaitNextWindow(ring, processor, limit: buf.count, timeout: .milliseconds(50))
                    let r = ring.read(into: buf)
                    if r.count > 0 { processor.consume(UnsafeBufferPointer(rebasing: buf[0..<r.count])) }
                    if r.isEndOfStream && r.count == 0 { break }
                }
                let t1 = now()
                let c1 = threadCPUSeconds()
                if processor.windowsProcessed > 0 {
                    latencies.append((t1 - Double(bitPattern: handedOver.load(ordering: .acquiring))) * 1e3)
                    cpu.append((c1 - c0) / (Double(hop) / Double(rate)) * 100)
                }
                consumed.signal()
            }
        }
        let processCPU = (processCPUSeconds() - processCPU0) / (Double(hops * hop) / Double(rate)) * 100
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
            cpuMedianPercent: percentile(cpu, 0.5), cpuP99Percent: percentile(cpu, 0.99), processCPUPercent: processCPU,
            frontendPerHopMs: percentile(perHop, 0.5), batchFrontendPerWindowMs: percentile(batchTimes, 0.5),
            peakRSSMB: peakRSSMegabytes())
    }

    /// The q-quantile (nearest rank) of a list; 0 for an empty list.
    static func percentile(_ v: [Double], _ q: Double) -> Double {
        guard !v.isEmpty else { return 0 }
        let s = v.sorted()
        return s[min(s.count - 1, max(0, Int((q * Double(s.count)).rounded(.up)) - 1))]
    }

    /// CPU time consumed by the whole process (every thread), in seconds.
    static func processCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// CPU time consumed by the calling thread, in seconds.
    static func threadCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
