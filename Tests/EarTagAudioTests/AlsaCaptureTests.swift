// AlsaCapture tests: real libasound through the `file` PCM plugin (no sound card needed), a scripted fake backend
// for faults (xrun, unplug, stall, open failing), sample conversion, and device listing.
// ref: alsa-lib src/pcm/pcm_file.c (infile "virtual mic"), src/pcm/pcm_null.c
import XCTest
import Foundation
@testable import EarTagAudio
import EarTagTestSupport

/// A sink that keeps the first `capacity` samples (later ones are only counted); thread-safe, test-only.
final class CollectingSink: SampleSink, @unchecked Sendable {
    /// Guards everything below.
    private let lock = NSLock()
    /// Kept samples.
    private var kept: [Float] = []
    /// Samples received in total.
    private var total = 0
    /// How many samples are kept.
    let capacity: Int

    /// A sink keeping up to `capacity` samples.
    init(capacity: Int) {
        self.capacity = capacity
        kept.reserveCapacity(capacity)
    }

    /// Appends what fits, counts everything.
    func write(_ samples: UnsafeBufferPointer<Float>) {
        lock.lock()
        let room = capacity - kept.count
        if room > 0 { kept.append(contentsOf: samples.prefix(room)) }
        total += samples.count
        lock.unlock()
    }

    /// A copy of the kept samples.
    var samples: [Float] {
        lock.lock()
        defer { lock.unlock() }
        return kept
    }

    /// Samples received in total.
    var received: Int {
        lock.lock()
        defer { lock.unlock() }
        return total
    }

    /// Polls until `count` samples were received or `timeout` seconds pass; returns whether they were.
    func wait(for count: Int, timeout: Double) -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if received >= count { return true }
            usleep(2000)
        }
        return received >= count
    }
}

/// Records state changes reported through `onStateChange`, with times.
final class StateLog: @unchecked Sendable {
    /// Guards `entries`.
    private let lock = NSLock()
    /// (state, fault, time) in order.
    private var entries: [(CaptureState, CaptureFault?, Date)] = []

    /// The callback to hand to `AlsaCapture`.
    var callback: @Sendable (CaptureState, CaptureFault?) -> Void {
        { [self] s, f in
            lock.lock()
            entries.append((s, f, Date()))
            lock.unlock()
        }
    }

    /// A copy of the entries.
    var all: [(CaptureState, CaptureFault?, Date)] {
        lock.lock()
        defer { lock.unlock() }
        return entries
    }

    /// Just the states.
    var states: [CaptureState] { all.map(\.0) }
}

/// A scripted `PCMCaptureBackend`: S16 mono 32 kHz, 64-frame periods, samples are a running frame counter so gaps
/// and duplicates are visible. Data is paced (one period per `pace` seconds) so the loop waits like on hardware.
final class FakeBackend: PCMCaptureBackend, @unchecked Sendable {
    /// What `open` does.
    enum OpenOutcome { case succeed, fail(Int32) }
    /// What a `read` does once data is due.
    enum ReadStep {
        /// Deliver one period of counter samples.
        case period
        /// Return this negative errno once.
        case error(Int32)
        /// Jump the counter (frames lost in an overrun).
        case skip(Int)
        /// Deliver nothing (reads -EAGAIN, waits time out) until the next open.
        case stallUntilReopen
    }

    /// Guards the script and records.
    private let lock = NSLock()
    /// Outcomes of the next opens; when empty, `defaultOpen`.
    var openPlan: [OpenOutcome] = []
    /// What opens do after the plan.
    var defaultOpen: OpenOutcome = .succeed
    /// Steps of the next reads; when empty, `.period` forever.
    var readPlan: [ReadStep] = []
    /// Times of every open attempt.
    private(set) var openTimes: [Date] = []
    /// `recover` calls with their errors.
    private(set) var recovered: [Int32] = []
    /// Whether a PCM is "open".
    private(set) var isOpen = false
    /// Closes seen.
    private(set) var closes = 0
    /// Seconds per period of data.
    let pace: Double
    /// Frames per period.
    let period = 64
    /// The next sample value.
    private var counter = 0
    /// When the next period is due.
    private var nextDue = Date()
    /// Whether reads deliver nothing until reopened.
    private var stalled = false

    /// A fake delivering a period every `pace` seconds.
    init(pace: Double = 0.002) { self.pace = pace }

    /// Runs `body` under the lock.
    func locked<R>(_ body: () -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    /// Follows `openPlan`, then `defaultOpen`.
    func open(_ source: CaptureSource, request: CaptureRequest) throws -> CaptureParameters {
        let outcome: OpenOutcome = locked {
            openTimes.append(Date())
            return openPlan.isEmpty ? defaultOpen : openPlan.removeFirst()
        }
        if case .fail(let e) = outcome { throw ALSAError(function: "snd_pcm_open", code: e, device: "\(source)") }
        locked {
            isOpen = true
            stalled = false
            nextDue = Date()
        }
        return CaptureParameters(format: .s16LE, rate: 32000, channels: 1, periodFrames: period,
                                 bufferFrames: 4 * period)
    }

    /// Applies the next step when a period is due; -EAGAIN before that.
    func read(into buffer: UnsafeMutableRawPointer, frames: Int) -> Int {
        lock.lock()
        defer { lock.unlock() }
        guard isOpen else { return -Int(EBADFD) }
        if stalled || Date() < nextDue { return -Int(EAGAIN) }
        var step = readPlan.isEmpty ? ReadStep.period : readPlan.removeFirst()
        while case .skip(let n) = step {
            counter += n
            step = readPlan.isEmpty ? .period : readPlan.removeFirst()
        }
        switch step {
        case .period, .skip:
            let n = min(frames, period)
            for i in 0..<n {
                buffer.storeBytes(of: Int16(truncatingIfNeeded: counter % 30000).littleEndian,
                                  toByteOffset: 2 * i, as: Int16.self)
                counter += 1
            }
            nextDue = nextDue.addingTimeInterval(pace)
            return n
        case .error(let e):
            return -Int(e)
        case .stallUntilReopen:
            stalled = true
            return -Int(EAGAIN)
        }
    }

    /// Counts the recovery.
    func recover(_ error: Int32) -> Int32 {
        locked { recovered.append(error) }
        return 0
    }

    /// Sleeps until the next period is due (or the whole timeout when stalled).
    func wait(timeoutMilliseconds: Int32) -> Int32 {
        let (open, due, stall) = locked { (isOpen, nextDue, stalled) }
        guard open else { return -EBADFD }
        let timeout = Double(timeoutMilliseconds) / 1000
        let delay = stall ? timeout : max(0, due.timeIntervalSinceNow)
        if delay > timeout {
            usleep(UInt32(timeout * 1e6))
            return 0
        }
        usleep(UInt32(delay * 1e6))
        return 1
    }

    /// Marks the fake closed.
    func close() {
        locked {
            if isOpen { closes += 1 }
            isOpen = false
        }
    }
}

/// Tests of `AlsaCapture`, `ALSACaptureBackend` and `listCaptureDevices`.
final class AlsaCaptureTests: XCTestCase {
    /// A fresh temporary directory removed after the test.
    private func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("eartag-alsa-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// Float samples in [-1, 1) -> little-endian s16 raw bytes (exact for values that are k/32768).
    private func s16Bytes(_ x: [Float]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(x.count * 2)
        for v in x {
            let q = Int16(clamping: Int((v * 32768).rounded()))
            let u = UInt16(bitPattern: q.littleEndian)
            out.append(UInt8(u & 0xFF))
            out.append(UInt8(u >> 8))
        }
        return out
    }

    /// ALSA configuration defining PCM `eartagtest`: the `file` plugin over an inline `null` slave, reading capture
    /// data from `infile` (raw, interpreted in the negotiated format), writing the stream to /dev/null.
    static func filePluginConfig(infile: String) -> String {
        """
        pcm.eartagtest {
            type file
            slave { pcm { type null } }
            file "/dev/null"
            infile "\(infile)"
            format "raw"
        }
        """
    }

    /// A PCM `eartagtest` that refuses 32 kHz and mono like many USB microphones: the `file` plugin (reading `infile`)
    /// over `multi` (exactly 2 channels) over `plug` pinned to 48 kHz stereo S16_LE over `null`; with alsa-lib
    /// resampling disabled by the capture, only 48 kHz is left. (`file` must be on top: `multi` reads its slaves by
    /// mmap, which bypasses the file plugin's `infile`.)
    static func native48kStereoConfig(infile: String) -> String {
        """
        pcm.eartagtest {
            type file
            file "/dev/null"
            infile "\(infile)"
            format "raw"
            slave.pcm {
                type multi
                slaves.a {
                    pcm { type plug slave { pcm { type null } rate 48000 channels 2 format S16_LE } }
                    channels 2
                }
                bindings { 0 { slave a channel 0 } 1 { slave a channel 1 } }
            }
        }
        """
    }

    /// Runs a capture of `source` until `count` samples arrived; returns the sink and the capture (stopped).
    private func capture(_ source: CaptureSource, request: CaptureRequest, count: Int,
                         backend: PCMCaptureBackend = ALSACaptureBackend()) throws -> (CollectingSink, AlsaCapture) {
        let sink = CollectingSink(capacity: count)
        let cap = AlsaCapture(configuration: AlsaCaptureConfiguration(source: source, request: request),
                              sink: sink, backend: backend)
        cap.start()
        let got = sink.wait(for: count, timeout: 30)
        XCTAssertTrue(cap.stop(), "capture thread did not end")
        XCTAssertTrue(got, "only \(sink.received) of \(count) samples; state \(cap.state), fault \(String(describing: cap.lastFault))")
        return (sink, cap)
    }

    // MARK: real libasound via the file plugin

    /// speech.wav (16-bit 32 kHz mono) as s16 raw through the file plugin: S16_LE/32000/1 is negotiated, no
    /// resampling, and the captured samples equal the file's exactly; after the infile's end, silence follows.
    func testFilePluginS16At32kMonoIsBitExact() throws {
        let speech = try loadAudio(path: Reference.path("audio/speech.wav"))
        XCTAssertEqual(speech.sourceSampleRate, 32000)
        let dir = try tempDir()
        let raw = dir.appendingPathComponent("speech-s16-32k-mono.raw").path
        try Data(s16Bytes(speech.samples)).write(to: URL(fileURLWithPath: raw))
        let n = speech.samples.count
        let extra = 4096
        let (sink, cap) = try capture(.configuration(text: Self.filePluginConfig(infile: raw), pcm: "eartagtest"),
                                      request: CaptureRequest(), count: n + extra)
        XCTAssertEqual(cap.negotiated?.format, .s16LE)
        XCTAssertEqual(cap.negotiated?.rate, 32000)
        XCTAssertEqual(cap.negotiated?.channels, 1)
        XCTAssertEqual(cap.xruns, 0)
        XCTAssertEqual(cap.state, .stopped)
        let got = sink.samples
        XCTAssertEqual(Array(got[0..<n]), speech.samples, "captured samples differ from the file")
        // alsa-lib 1.2.8 pcm_file: past the infile's end readi still reports full periods but writes nothing;
        // AlsaCapture zeroes its buffer before every read, so that reads as silence (not a repeat of old audio).
        XCTAssertEqual(Array(got[n..<(n + extra)]), [Float](repeating: 0, count: extra))
    }

    /// 48 kHz stereo s16 through the file plugin (rate/channels requested, the null slave accepts anything):
    /// downmix + streaming resample to 32 kHz matches the oneshot `Resampler.resample` of the downmixed signal.
    func testFilePluginS16At48kStereoDownmixesAndResamples() throws {
        let left = try loadAudio(path: Reference.path("audio/speech.wav"), targetRate: 48000).samples
        let right = try loadAudio(path: Reference.path("audio/music.wav"), targetRate: 48000).samples
        let frames = min(left.count, right.count)
        var interleaved = [Float](repeating: 0, count: frames * 2)
        for f in 0..<frames {
            interleaved[2 * f] = (left[f] * 0.8 * 32768).rounded() / 32768
            interleaved[2 * f + 1] = (right[f] * 0.8 * 32768).rounded() / 32768
        }
        let dir = try tempDir()
        let raw = dir.appendingPathComponent("mix-s16-48k-stereo.raw").path
        try Data(s16Bytes(interleaved)).write(to: URL(fileURLWithPath: raw))
        let expected = try Resampler.resample(downmixToMono(interleaved, channels: 2), from: 48000, to: 32000)
        let request = CaptureRequest(preferredRate: 48000, preferredChannels: 2)
        let (sink, cap) = try capture(.configuration(text: Self.filePluginConfig(infile: raw), pcm: "eartagtest"),
                                      request: request, count: expected.count)
        XCTAssertEqual(cap.negotiated?.rate, 48000)
        XCTAssertEqual(cap.negotiated?.channels, 2)
        XCTAssertEqual(cap.negotiated?.format, .s16LE)
        let got = sink.samples
        var maxErr: Float = 0
        for i in 0..<expected.count { maxErr = max(maxErr, abs(got[i] - expected[i])) }
        print("48k stereo -> 32k mono: max |stream - oneshot| = \(maxErr) over \(expected.count) samples")
        // Measured 0: StreamResampler is bit-exact with soxr_oneshot, and after the infile's end the capture feeds
        // silence, which matches oneshot's zero-padded tail.
        XCTAssertEqual(maxErr, 0)
    }

    /// A device that refuses 32000 Hz and mono: the default request falls back to the nearest rate (48000) and the
    /// minimum channel count (2), then downmixes and resamples; the result equals the oneshot path bit for bit.
    func testDeviceRefusing32kAndMonoFallsBackToNativeRateAndChannels() throws {
        let left = try loadAudio(path: Reference.path("audio/typing.wav"), targetRate: 48000).samples
        let right = try loadAudio(path: Reference.path("audio/speech.wav"), targetRate: 48000).samples
        let frames = min(left.count, right.count)
        var interleaved = [Float](repeating: 0, count: frames * 2)
        for f in 0..<frames {
            interleaved[2 * f] = (left[f] * 0.9 * 32768).rounded() / 32768
            interleaved[2 * f + 1] = (right[f] * 0.9 * 32768).rounded() / 32768
        }
        let dir = try tempDir()
        let raw = dir.appendingPathComponent("native-s16-48k-stereo.raw").path
        try Data(s16Bytes(interleaved)).write(to: URL(fileURLWithPath: raw))
        let expected = try Resampler.resample(downmixToMono(interleaved, channels: 2), from: 48000, to: 32000)
        let (sink, cap) = try capture(.configuration(text: Self.native48kStereoConfig(infile: raw), pcm: "eartagtest"),
                                      request: CaptureRequest(), count: expected.count)
        XCTAssertEqual(cap.negotiated?.rate, 48000)
        XCTAssertEqual(cap.negotiated?.channels, 2)
        XCTAssertEqual(cap.negotiated?.format, .s16LE)
        print("refusing device negotiated: \(cap.negotiated.map { "\($0)" } ?? "nil")")
        let got = sink.samples
        var maxErr: Float = 0
        for i in 0..<expected.count { maxErr = max(maxErr, abs(got[i] - expected[i])) }
        print("native 48k stereo -> 32k mono: max |stream - oneshot| = \(maxErr)")
        XCTAssertEqual(maxErr, 0)
    }

    /// Real libasound, device appearing late: while the infile is missing, opening fails (deaf, retried with
    /// backoff); once it exists the next attempt opens it and capture starts with the file's first sample.
    func testFilePluginDeviceAppearingLaterIsPickedUp() throws {
        let speech = try loadAudio(path: Reference.path("audio/speech.wav"))
        let dir = try tempDir()
        let raw = dir.appendingPathComponent("late.raw").path
        let sink = CollectingSink(capacity: 32000)
        let log = StateLog()
        let config = AlsaCaptureConfiguration(source: .configuration(text: Self.filePluginConfig(infile: raw),
                                                                     pcm: "eartagtest"),
                                              initialBackoff: 0.01, maxBackoff: 0.04)
        let cap = AlsaCapture(configuration: config, sink: sink, onStateChange: log.callback)
        cap.start()
        usleep(150_000)
        XCTAssertEqual(cap.state, .deaf)
        XCTAssertGreaterThanOrEqual(cap.openFailures, 2)
        if case .alsa(let e)? = cap.lastFault {
            XCTAssertEqual(e.code, ENOENT, "\(e)")
            print("missing infile: \(e)")
        } else {
            XCTFail("expected an ALSA open fault, got \(String(describing: cap.lastFault))")
        }
        // Atomic write (temp file + rename): the retrying capture must never open a half-written infile.
        try Data(s16Bytes(speech.samples)).write(to: URL(fileURLWithPath: raw), options: .atomic)
        XCTAssertTrue(sink.wait(for: 32000, timeout: 5))
        XCTAssertTrue(cap.stop())
        XCTAssertEqual(sink.samples, Array(speech.samples.prefix(32000)))
        XCTAssertEqual(log.states.first, .deaf)
        XCTAssertTrue(log.states.contains(.listening))
        XCTAssertEqual(cap.reconnects, 0, "the first successful open is not a reconnect")
    }

    /// A PCM name that does not exist: open fails, the capture is deaf and keeps retrying without crashing.
    func testUnknownPCMNameIsDeafAndRetries() throws {
        let sink = CollectingSink(capacity: 16)
        let log = StateLog()
        let cap = AlsaCapture(configuration: AlsaCaptureConfiguration(source: .device("eartag_no_such_pcm"),
                                                                      initialBackoff: 0.01, maxBackoff: 0.05),
                              sink: sink, onStateChange: log.callback)
        cap.start()
        usleep(300_000)
        XCTAssertEqual(cap.state, .deaf)
        XCTAssertGreaterThanOrEqual(cap.openFailures, 3)
        if case .alsa(let e)? = cap.lastFault {
            XCTAssertEqual(e.function, "snd_pcm_open")
            XCTAssertFalse(e.message.isEmpty)
            XCTAssertEqual(e.detail, "Unknown PCM eartag_no_such_pcm", "alsa-lib's diagnostic is kept, not printed")
            print("unknown PCM: \(e)")
        } else {
            XCTFail("expected an ALSA open fault, got \(String(describing: cap.lastFault))")
        }
        XCTAssertTrue(cap.stop())
        XCTAssertEqual(cap.state, .stopped)
        XCTAssertEqual(sink.received, 0)
    }

    // MARK: fake backend: faults

    /// Builds a capture on a fake with fast backoff.
    private func fakeCapture(_ fake: FakeBackend, sink: CollectingSink, log: StateLog, stall: Double = 2,
                             initial: Double = 0.02, max: Double = 0.16) -> AlsaCapture {
        AlsaCapture(configuration: AlsaCaptureConfiguration(source: .device("fake"), stallTimeout: stall,
                                                            initialBackoff: initial, maxBackoff: max),
                    sink: sink, backend: fake, onStateChange: log.callback)
    }

    /// Sample values (frame counter) back from the sink.
    private func counters(_ x: [Float]) -> [Int] { x.map { Int(($0 * 32768).rounded()) } }

    /// An overrun is recovered with `recover(-EPIPE)`, counted, the stream stays open, and no sample is duplicated.
    func testXrunIsRecoveredCountedAndDoesNotDuplicate() throws {
        let fake = FakeBackend()
        fake.readPlan = Array(repeating: .period, count: 5) + [.error(EPIPE), .skip(100)]
            + Array(repeating: .period, count: 5) + [.error(ESTRPIPE)] + Array(repeating: .period, count: 5)
        let sink = CollectingSink(capacity: 64 * 15)
        let log = StateLog()
        let cap = fakeCapture(fake, sink: sink, log: log)
        cap.start()
        XCTAssertTrue(sink.wait(for: 64 * 15, timeout: 5))
        XCTAssertTrue(cap.stop())
        XCTAssertEqual(cap.xruns, 2)
        XCTAssertEqual(fake.locked { fake.recovered }, [-EPIPE, -ESTRPIPE])
        XCTAssertEqual(cap.reconnects, 0)
        XCTAssertEqual(cap.losses, 0)
        XCTAssertEqual(fake.locked { fake.openTimes.count }, 1)
        let c = counters(sink.samples)
        XCTAssertEqual(c.count, 64 * 15)
        for i in 1..<c.count { XCTAssertGreaterThan(c[i], c[i - 1], "duplicate or reorder at \(i)") }
        XCTAssertEqual(c[64 * 5] - c[64 * 5 - 1], 101, "the overrun's lost frames show as a gap, nothing else")
        XCTAssertEqual(cap.framesCaptured, cap.samplesDelivered)
        XCTAssertEqual(log.states.first, .listening)
        XCTAssertFalse(log.states.contains(.deaf))
    }

    /// A device that disappears (-ENODEV) -> deaf, reopened with growing backoff through failed opens, back to
    /// listening; reconnect counted once.
    func testDeviceLossGoesDeafAndReconnectsWithBackoff() throws {
        let fake = FakeBackend()
        fake.readPlan = Array(repeating: .period, count: 3) + [.error(ENODEV)]
        fake.openPlan = [.succeed, .fail(ENODEV), .fail(ENOENT), .fail(ENODEV), .succeed]
        let sink = CollectingSink(capacity: 64 * 10)
        let log = StateLog()
        let cap = fakeCapture(fake, sink: sink, log: log, initial: 0.02, max: 1)
        cap.start()
        XCTAssertTrue(sink.wait(for: 64 * 10, timeout: 5))
        XCTAssertEqual(cap.state, .listening)
        XCTAssertTrue(cap.stop())
        XCTAssertEqual(cap.reconnects, 1)
        XCTAssertEqual(cap.losses, 1)
        XCTAssertEqual(cap.openFailures, 3)
        XCTAssertEqual(Array(log.states.prefix(6)), [.listening, .deaf, .deaf, .deaf, .deaf, .listening])
        if case .alsa(let e)? = log.all[1].1 {
            XCTAssertEqual(e.code, ENODEV)
            XCTAssertEqual(e.function, "snd_pcm_readi")
        } else {
            XCTFail("loss should carry the -ENODEV fault")
        }
        // Gaps between open attempts: 0.02 (after the loss), then 0.04, 0.08, 0.16 after each failed open.
        let t = fake.locked { fake.openTimes }
        XCTAssertEqual(t.count, 5)
        let gaps = zip(t.dropFirst(), t).map { $0.timeIntervalSince($1) }
        let wanted = [0.02, 0.04, 0.08, 0.16]
        for (g, w) in zip(gaps.dropFirst(), wanted.dropFirst()) {
            XCTAssertGreaterThanOrEqual(g, w * 0.9, "gaps \(gaps)")
            XCTAssertLessThan(g, w + 0.25, "gaps \(gaps)")
        }
        let c = counters(sink.samples)
        for i in 1..<c.count { XCTAssertGreaterThan(c[i], c[i - 1]) }
        XCTAssertEqual(fake.locked { fake.isOpen }, false)
    }

    /// A stream that delivers nothing for `stallTimeout` is treated as lost: deaf, closed, reopened, listening again.
    func testStallIsTreatedAsLost() throws {
        let fake = FakeBackend()
        fake.readPlan = Array(repeating: .period, count: 3) + [.stallUntilReopen]
        let sink = CollectingSink(capacity: 64 * 8)
        let log = StateLog()
        let cap = fakeCapture(fake, sink: sink, log: log, stall: 0.2)
        let t0 = Date()
        cap.start()
        XCTAssertTrue(sink.wait(for: 64 * 8, timeout: 5))
        XCTAssertTrue(cap.stop())
        XCTAssertEqual(cap.stalls, 1)
        XCTAssertEqual(cap.losses, 1)
        XCTAssertEqual(cap.reconnects, 1)
        let entries = log.all
        XCTAssertEqual(Array(entries.map(\.0).prefix(3)), [.listening, .deaf, .listening])
        guard entries.count >= 2, case .stalled(_, let s)? = entries[1].1 else {
            return XCTFail("expected a stall fault, got \(entries.map(\.1))")
        }
        XCTAssertEqual(s, 0.2)
        let deafAfter = entries[1].2.timeIntervalSince(t0)
        XCTAssertGreaterThanOrEqual(deafAfter, 0.2)
        XCTAssertLessThan(deafAfter, 1.0)
    }

    /// `stop()` returns within ~100 ms whether the loop is streaming, stalled in a wait, or sleeping a long backoff.
    func testStopIsPrompt() throws {
        /// Starts, lets it run, stops, returns the stop duration.
        func timeStop(_ fake: FakeBackend, initial: Double = 0.02, max: Double = 0.16) -> Double {
            let sink = CollectingSink(capacity: 1 << 16)
            let cap = fakeCapture(fake, sink: sink, log: StateLog(), stall: 30, initial: initial, max: max)
            cap.start()
            usleep(200_000)
            let t = Date()
            XCTAssertTrue(cap.stop())
            let d = Date().timeIntervalSince(t)
            XCTAssertEqual(cap.state, .stopped)
            XCTAssertEqual(fake.locked { fake.isOpen }, false, "PCM left open")
            return d
        }
        let streaming = timeStop(FakeBackend())
        let stalledFake = FakeBackend()
        stalledFake.readPlan = [.stallUntilReopen]
        let stalled = timeStop(stalledFake)
        let deadFake = FakeBackend()
        deadFake.defaultOpen = .fail(ENODEV)
        let backingOff = timeStop(deadFake, initial: 5, max: 5)
        print("stop latency: streaming \(streaming) s, stalled \(stalled) s, in 5 s backoff \(backingOff) s")
        // Target ~100 ms (one 50 ms wait slice at worst); slack for a loaded 2-core test machine.
        XCTAssertLessThan(streaming, 0.15)
        XCTAssertLessThan(stalled, 0.15)
        XCTAssertLessThan(backingOff, 0.15)
    }

    /// Open failing forever: stays deaf, retries on the backoff schedule (capped), never spins, never crashes.
    func testOpenFailingForeverStaysDeafWithoutSpinning() throws {
        let fake = FakeBackend()
        fake.defaultOpen = .fail(ENODEV)
        let sink = CollectingSink(capacity: 16)
        let log = StateLog()
        let cap = fakeCapture(fake, sink: sink, log: log, initial: 0.01, max: 0.08)
        cap.start()
        usleep(800_000)
        XCTAssertEqual(cap.state, .deaf)
        XCTAssertTrue(cap.stop())
        let attempts = fake.locked { fake.openTimes.count }
        // 0.01 + 0.02 + 0.04 + 0.08 * k within 0.8 s: about 10 attempts; a hot loop would make thousands.
        XCTAssertGreaterThanOrEqual(attempts, 6)
        XCTAssertLessThanOrEqual(attempts, 14)
        XCTAssertEqual(cap.openFailures, attempts)
        XCTAssertEqual(cap.reconnects, 0)
        XCTAssertNil(cap.negotiated)
        XCTAssertEqual(sink.received, 0)
        XCTAssertEqual(log.states.last, .stopped)
        XCTAssertTrue(log.states.dropLast().allSatisfy { $0 == .deaf })
    }

    // MARK: conversion and listing

    /// Every format converts to the expected float and stereo downmix is the channel mean.
    func testSampleConversionAllFormats() {
        var out = [Float](repeating: 0, count: 4)
        /// Converts `bytes` (2 frames x `ch` channels) and returns the mono result.
        func convert(_ bytes: [UInt8], _ format: CaptureSampleFormat, _ ch: Int, frames: Int = 2) -> [Float] {
            bytes.withUnsafeBytes { raw in
                out.withUnsafeMutableBufferPointer {
                    AlsaCapture.convertToMono(raw.baseAddress!, frames: frames, channels: ch, format: format,
                                              into: $0.baseAddress!)
                }
            }
            return Array(out[0..<frames])
        }
        // s16: -32768, 16384
        XCTAssertEqual(convert([0x00, 0x80, 0x00, 0x40], .s16LE, 1), [-1, 0.5])
        // s32: 0x40000000 = 0.5, 0xC0000000 = -0.5
        XCTAssertEqual(convert([0, 0, 0, 0x40, 0, 0, 0, 0xC0], .s32LE, 1), [0.5, -0.5])
        // float: 0.25, -2 (out of range passes through)
        let fl = [Float(0.25), -2].flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
        XCTAssertEqual(convert(fl, .floatLE, 1), [0.25, -2])
        // s24 in 32-bit container: 0x400000 = 0.5; 0xC00000 = -0.5 (top byte ignored)
        XCTAssertEqual(convert([0, 0, 0x40, 0x00, 0, 0, 0xC0, 0x7F], .s24LE, 1), [0.5, -0.5])
        // s24 packed: 0x200000 = 0.25, 0x800000 = -1
        XCTAssertEqual(convert([0, 0, 0x20, 0, 0, 0x80], .s24_3LE, 1), [0.25, -1])
        // s16 stereo: (16384 + 0) / 2 = 0.25; (-32768 + 16384) / 2 = -0.25
        XCTAssertEqual(convert([0x00, 0x40, 0x00, 0x00, 0x00, 0x80, 0x00, 0x40], .s16LE, 2), [0.25, -0.25])
    }

    /// Error text comes from snd_strerror and names the call and device.
    func testALSAErrorDescription() {
        let e = ALSAError(function: "snd_pcm_open", code: -ENODEV, device: "hw:CARD=Mic,DEV=0")
        XCTAssertEqual(e.code, ENODEV)
        XCTAssertEqual(e.description, "hw:CARD=Mic,DEV=0: snd_pcm_open failed: No such device [errno 19]")
    }

    /// Listing works on a machine with no sound card (hints only) and never names a card it cannot open.
    func testListCaptureDevicesWithoutCards() throws {
        let devices = try listCaptureDevices()
        for d in devices { print("capture device: \(d.name) - \(d.description) hw=\(d.isHardware)") }
        for d in devices where d.isHardware {
            XCTAssertTrue(d.name.hasPrefix("hw:CARD="), d.name)
        }
        XCTAssertEqual(Set(devices.map(\.name)).count, devices.count, "duplicate names")
    }
}
