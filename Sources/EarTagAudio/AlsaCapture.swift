// Live capture from an ALSA PCM on a dedicated thread: read a period, convert to float, downmix, resample to 32 kHz,
// write to a `SampleSink`; survives overruns, suspends, unplugged devices and silent streams for months.
// ref: https://www.alsa-project.org/alsa-doc/alsa-lib/group___p_c_m.html (snd_pcm_readi, snd_pcm_wait,
//      snd_pcm_recover, hw/sw params); https://www.alsa-project.org/alsa-doc/alsa-lib/pcm.html (xrun, suspend)
import CALSA
import Atomics
import FoundationEssentials
import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagPlatform

// MARK: - Public value types

/// Where to capture from: a PCM name for `snd_pcm_open`, or a PCM defined in a private configuration text.
public enum CaptureSource: Sendable, Equatable, CustomStringConvertible {
    /// A PCM name from the global ALSA configuration, e.g. `default` or `hw:CARD=Device,DEV=0`.
    case device(String)
    /// PCM `pcm` defined in ALSA configuration text `text`, opened with `snd_pcm_open_lconf` (tests, special setups).
    case configuration(text: String, pcm: String)

    /// The PCM name, for messages.
    public var description: String {
        switch self {
        case .device(let n): return n
        case .configuration(_, let pcm): return pcm
        }
    }
}

/// A sample format the capture can negotiate, in preference order.
public enum CaptureSampleFormat: UInt8, Sendable, CaseIterable, CustomStringConvertible, AtomicValue {
    /// Signed 16-bit little endian.
    case s16LE = 1
    /// Signed 32-bit little endian.
    case s32LE
    /// IEEE float 32-bit little endian, nominal range [-1, 1].
    case floatLE
    /// Signed 24-bit in the low three bytes of a 32-bit little-endian word.
    case s24LE
    /// Signed 24-bit packed in three bytes, little endian.
    case s24_3LE

    /// Bytes one sample occupies in the interleaved buffer.
    public var bytesPerSample: Int {
        switch self {
        case .s16LE: return 2
        case .s24_3LE: return 3
        case .s32LE, .floatLE, .s24LE: return 4
        }
    }

    /// The ALSA format constant.  // ref: pcm.h snd_pcm_format_t
    var alsa: snd_pcm_format_t {
        switch self {
        case .s16LE: return SND_PCM_FORMAT_S16_LE
        case .s32LE: return SND_PCM_FORMAT_S32_LE
        case .floatLE: return SND_PCM_FORMAT_FLOAT_LE
        case .s24LE: return SND_PCM_FORMAT_S24_LE
        case .s24_3LE: return SND_PCM_FORMAT_S24_3LE
        }
    }

    /// The ALSA spelling, e.g. "S16_LE".
    public var description: String {
        switch self {
        case .s16LE: return "S16_LE"
        case .s32LE: return "S32_LE"
        case .floatLE: return "FLOAT_LE"
        case .s24LE: return "S24_LE"
        case .s24_3LE: return "S24_3LE"
        }
    }
}

/// What the capture asks the device for; `nil` preferences mean "the output rate if exact, else nearest" and
/// "mono if possible, else the device minimum".
public struct CaptureRequest: Sendable, Equatable {
    /// Rate delivered to the sink in Hz (EfficientAT: 32000).
    public var outputRate: Int
    /// Device rate to try first instead of `outputRate` (nil: `outputRate`); the nearest one is taken if refused.
    public var preferredRate: Int?
    /// Channel count to try first (nil: 1); otherwise 1, otherwise the device minimum.
    public var preferredChannels: Int?
    /// Wanted period length in milliseconds (the device may round it).
    public var periodMilliseconds: Int
    /// Wanted buffer length in periods.
    public var periodsPerBuffer: Int

    /// Defaults: 32 kHz output, 16 ms periods, 4 periods per buffer.
    public init(outputRate: Int = 32000, preferredRate: Int? = nil, preferredChannels: Int? = nil,
                periodMilliseconds: Int = 16, periodsPerBuffer: Int = 4) {
        self.outputRate = outputRate
        self.preferredRate = preferredRate
        self.preferredChannels = preferredChannels
        self.periodMilliseconds = periodMilliseconds
        self.periodsPerBuffer = periodsPerBuffer
    }
}

/// The hardware parameters a backend negotiated.
public struct CaptureParameters: Sendable, Equatable, CustomStringConvertible {
    /// Sample format of the interleaved read buffer.
    public var format: CaptureSampleFormat
    /// Device frame rate in Hz.
    public var rate: Int
    /// Interleaved channels per frame.
    public var channels: Int
    /// Frames per period (one read).
    public var periodFrames: Int
    /// Frames in the device buffer.
    public var bufferFrames: Int

    /// Memberwise initialiser.
    public init(format: CaptureSampleFormat, rate: Int, channels: Int, periodFrames: Int, bufferFrames: Int) {
        self.format = format
        self.rate = rate
        self.channels = channels
        self.periodFrames = periodFrames
        self.bufferFrames = bufferFrames
    }

    /// e.g. "S16_LE 48000 Hz 2 ch, period 768, buffer 3072".
    public var description: String {
        "\(format) \(rate) Hz \(channels) ch, period \(periodFrames), buffer \(bufferFrames)"
    }
}

/// Lifecycle of a capture, readable lock-free.
public enum CaptureState: UInt8, Sendable, AtomicValue, CustomStringConvertible {
    /// `start()` not called yet, or the first open is in progress.
    case starting
    /// The device is open and delivering samples.
    case listening
    /// No device (lost, never opened, or silent): retrying with backoff; the sink receives nothing.
    case deaf
    /// `stop()` was called; the thread has ended or is ending.
    case stopped

    /// Lower-case name.
    public var description: String {
        switch self {
        case .starting: return "starting"
        case .listening: return "listening"
        case .deaf: return "deaf"
        case .stopped: return "stopped"
        }
    }
}

/// Why the capture went deaf.
public enum CaptureFault: Error, Sendable, Equatable, CustomStringConvertible {
    /// An ALSA call failed (open, negotiation, read, recover).
    case alsa(ALSAError)
    /// The open stream delivered no frames for `seconds`.
    case stalled(device: String, seconds: Double)
    /// The resampler for the negotiated rate could not be built.
    case resampler(device: String, detail: String)

    /// One line.
    public var description: String {
        switch self {
        case .alsa(let e): return e.description
        case .stalled(let d, let s): return "\(d): no audio frames for \(s) s (stream treated as lost)"
        case .resampler(let d, let detail): return "\(d): cannot resample: \(detail)"
        }
    }
}

// MARK: - Backend seam

/// The few PCM operations the capture loop needs; `ALSACaptureBackend` is libasound, tests script a fake.
/// All calls come from the capture thread only.
public protocol PCMCaptureBackend: AnyObject {
    /// Opens and configures the PCM (closing any previous one); returns the negotiated parameters.
    func open(_ source: CaptureSource, request: CaptureRequest) throws -> CaptureParameters
    /// Reads up to `frames` interleaved frames into `buffer`: frames read (0 = none yet) or a negative errno
    /// (-EAGAIN: nothing available, -EPIPE overrun, -ESTRPIPE suspended, -ENODEV/-EBADFD/-EIO gone). Never blocks long.
    func read(into buffer: UnsafeMutableRawPointer, frames: Int) -> Int
    /// Recovers from -EPIPE / -ESTRPIPE (`snd_pcm_recover`): 0 or a negative errno.
    func recover(_ error: Int32) -> Int32
    /// Waits until a period is readable: 1 ready, 0 timeout, or a negative errno.
    func wait(timeoutMilliseconds: Int32) -> Int32
    /// Closes the PCM if open (idempotent).
    func close()
}

/// The libasound backend: non-blocking capture PCM, RW interleaved, format/rate/channel negotiation per `CaptureRequest`.
public final class ALSACaptureBackend: PCMCaptureBackend {
    /// The open PCM, if any.
    private var pcm: OpaquePointer?
    /// The local configuration tree a `.configuration` PCM was opened from (kept alive until close).
    private var config: OpaquePointer?
    /// Name of the open PCM, for errors.
    private var name = ""

    /// A closed backend.
    public init() {}

    /// Closes the PCM on release.
    deinit { close() }

    /// Opens the PCM non-blocking (a busy device fails with -EBUSY instead of hanging), then negotiates:
    /// RW interleaved; first of S16_LE, S32_LE, FLOAT_LE, S24_LE, S24_3LE; the wanted rate exactly if possible
    /// (alsa-lib software resampling disabled where allowed) else the nearest; preferred channels, else 1, else
    /// the minimum; period ~`periodMilliseconds`; buffer `periodsPerBuffer` periods; start threshold 1; avail_min 1 period.
    // ref: pcm.c snd_pcm_hw_params_* / snd_pcm_sw_params_*; pcm.h SND_PCM_NONBLOCK
    public func open(_ source: CaptureSource, request: CaptureRequest) throws -> CaptureParameters {
        close()
        name = source.description
        let handle: OpaquePointer
        switch source {
        case .device(let n):
            handle = try ALSA.pcmOpenCapture(name: n, mode: SND_PCM_NONBLOCK)
        case .configuration(let text, let pcmName):
            let tree = try ALSA.configTop()
            do {
                let input = try ALSA.inputBufferOpen(text)
                defer { ALSA.inputClose(input) }
                try ALSA.configLoad(tree, input)
                handle = try ALSA.pcmOpenCaptureLconf(name: pcmName, config: tree, mode: SND_PCM_NONBLOCK)
            } catch {
                ALSA.configDelete(tree)
                throw error
            }
            config = tree
        }
        pcm = handle
        do {
            return try negotiate(handle, request)
        } catch {
            close()
            throw error
        }
    }

    /// hw and sw parameter negotiation on a freshly opened PCM, then `snd_pcm_prepare`.
    private func negotiate(_ pcm: OpaquePointer, _ request: CaptureRequest) throws -> CaptureParameters {
        let hw = try ALSA.hwParamsMalloc()
        defer { ALSA.hwParamsFree(hw) }
        try ALSA.hwParamsAny(pcm, hw, device: name)
        try ALSA.hwParamsSetAccess(pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED, device: name)
        guard let format = CaptureSampleFormat.allCases.first(where: { ALSA.hwParamsTestFormat(pcm, hw, $0.alsa) }) else {
            throw ALSAError(function: "snd_pcm_hw_params_test_format", code: EINVAL, device: name)
        }
        try ALSA.hwParamsSetFormat(pcm, hw, format.alsa, device: name)
        // Prefer the device's own rate plus our soxr HQ over alsa-lib's linear resampler (plug devices only).
        try? ALSA.hwParamsSetRateResample(pcm, hw, false, device: name)
        let wantedRate = request.preferredRate ?? request.outputRate
        let rate: Int
        if ALSA.hwParamsTestRate(pcm, hw, wantedRate) {
            try ALSA.hwParamsSetRate(pcm, hw, wantedRate, device: name)
            rate = wantedRate
        } else {
            rate = try ALSA.hwParamsSetRateNear(pcm, hw, wantedRate, device: name)
        }
        let channels: Int
        if let p = request.preferredChannels, p > 0, ALSA.hwParamsTestChannels(pcm, hw, p) {
            channels = p
        } else if ALSA.hwParamsTestChannels(pcm, hw, 1) {
            channels = 1
        } else {
            channels = try ALSA.hwParamsGetChannelsMin(hw, device: name)
        }
        try ALSA.hwParamsSetChannels(pcm, hw, channels, device: name)
        let wantedPeriod = max(32, rate * max(1, request.periodMilliseconds) / 1000)
        _ = try ALSA.hwParamsSetPeriodSizeNear(pcm, hw, wantedPeriod, device: name)
        _ = try ALSA.hwParamsSetBufferSizeNear(pcm, hw, wantedPeriod * max(2, request.periodsPerBuffer), device: name)
        try ALSA.hwParamsInstall(pcm, hw, device: name)
        let period = try ALSA.hwParamsGetPeriodSize(hw, device: name)
        let buffer = try ALSA.hwParamsGetBufferSize(hw, device: name)

        let sw = try ALSA.swParamsMalloc()
        defer { ALSA.swParamsFree(sw) }
        try ALSA.swParamsCurrent(pcm, sw, device: name)
        try ALSA.swParamsSetStartThreshold(pcm, sw, 1, device: name)
        try ALSA.swParamsSetAvailMin(pcm, sw, period, device: name)
        try ALSA.swParamsInstall(pcm, sw, device: name)
        try ALSA.pcmPrepare(pcm, device: name)
        return CaptureParameters(format: format, rate: rate, channels: channels, periodFrames: period,
                                 bufferFrames: buffer)
    }

    /// `snd_pcm_readi` (non-blocking; the first read of a prepared stream starts it).  // ref: pcm.c snd_pcm_readi
    public func read(into buffer: UnsafeMutableRawPointer, frames: Int) -> Int {
        guard let pcm else { return -Int(EBADFD) }
        return ALSA.pcmReadi(pcm, buffer, frames: frames)
    }

    /// `snd_pcm_recover(err, silent)`.  // ref: pcm.c snd_pcm_recover
    public func recover(_ error: Int32) -> Int32 {
        guard let pcm else { return -EBADFD }
        return ALSA.pcmRecover(pcm, error)
    }

    /// `snd_pcm_wait(timeout)`.  // ref: pcm.c snd_pcm_wait
    public func wait(timeoutMilliseconds: Int32) -> Int32 {
        guard let pcm else { return -EBADFD }
        return ALSA.pcmWait(pcm, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// `snd_pcm_drop` + `snd_pcm_close`, then frees a local configuration tree.  // ref: pcm.c snd_pcm_close
    public func close() {
        if let pcm {
            ALSA.pcmDrop(pcm)
            ALSA.pcmClose(pcm)
        }
        pcm = nil
        if let config { ALSA.configDelete(config) }
        config = nil
    }
}

// MARK: - alsa-lib diagnostics

/// Thread-dictionary key of the latest alsa-lib diagnostic caught on a capture thread.
private let alsaLibDiagnostic = ThreadLocalString()

/// Thread-local alsa-lib error handler of capture threads: formats the message and keeps it in the thread dictionary
/// (fault path only; alsa-lib calls it when a call fails, e.g. "Unknown PCM foo").
// ref: error.h snd_local_error_handler_t
private let alsaLibDiagnosticHandler: snd_local_error_handler_t = { _, _, _, err, fmt, args in
    // va_list imports as `CVaListPointer?` on x86_64 and may be non-optional elsewhere: accept both.
    let list: CVaListPointer? = args
    guard let fmt, let list else { return }
    var buffer = [CChar](repeating: 0, count: 512)
    _ = buffer.withUnsafeMutableBufferPointer { vsnprintf($0.baseAddress, $0.count, fmt, list) }
    var text = String(cString: buffer)
    if err != 0 { text += ": " + String(cString: snd_strerror(err)) }
    alsaLibDiagnostic.set(AudioError.oneLine(text))
}

/// Returns and clears the latest alsa-lib diagnostic caught on the calling thread.
private func takeALSALibDiagnostic() -> String? {
    alsaLibDiagnostic.take()
}

// MARK: - Capture

/// Settings of one `AlsaCapture`.
public struct AlsaCaptureConfiguration: Sendable {
    /// The PCM to capture from.
    public var source: CaptureSource
    /// Format/rate/channel/period wishes.
    public var request: CaptureRequest
    /// An open stream that delivers no frames for this long (seconds) is treated as lost and reopened.
    public var stallTimeout: Double
    /// First delay (seconds) before reopening a lost or unopenable device; doubles per failure.
    public var initialBackoff: Double
    /// Upper bound (seconds) of the reopen delay.
    public var maxBackoff: Double
    /// Longest single `wait` (ms): bounds how late `stop()` and the stall check are noticed.
    public var waitSliceMilliseconds: Int

    /// Defaults: 2 s stall timeout, backoff 0.25 s doubling to 5 s, 50 ms wait slices.
    public init(source: CaptureSource, request: CaptureRequest = CaptureRequest(), stallTimeout: Double = 2,
                initialBackoff: Double = 0.25, maxBackoff: Double = 5, waitSliceMilliseconds: Int = 50) {
        self.source = source
        self.request = request
        self.stallTimeout = stallTimeout
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.waitSliceMilliseconds = waitSliceMilliseconds
    }
}

/// Captures a PCM on its own thread into a `SampleSink` as mono float at `request.outputRate`, forever: overruns and
/// suspends are recovered (`xruns`), a vanished or silent device makes the state `deaf` and is reopened with
/// exponential backoff (`reconnects`). The steady-state loop neither allocates nor takes locks; the sink must not block.
/// One-shot: `start()` once, `stop()` once (the running thread keeps the object alive until `stop()`).
public final class AlsaCapture: @unchecked Sendable {
    /// The settings.
    public let configuration: AlsaCaptureConfiguration
    /// Receives every converted sample, on the capture thread.
    private let sink: SampleSink
    /// The PCM operations (libasound or a test fake); used only on the capture thread.
    private let backend: PCMCaptureBackend
    /// Called on the capture thread at every state change (never per period), with the fault that caused `deaf`.
    private let onStateChange: (@Sendable (CaptureState, CaptureFault?) -> Void)?

    private let stateValue = ManagedAtomic<CaptureState>(.starting)
    private let framesValue = ManagedAtomic<Int>(0)
    private let samplesValue = ManagedAtomic<Int>(0)
    private let xrunsValue = ManagedAtomic<Int>(0)
    private let reconnectsValue = ManagedAtomic<Int>(0)
    private let lossesValue = ManagedAtomic<Int>(0)
    private let openFailuresValue = ManagedAtomic<Int>(0)
    private let stallsValue = ManagedAtomic<Int>(0)
    private let formatValue = ManagedAtomic<UInt8>(0)
    private let rateValue = ManagedAtomic<Int>(0)
    private let channelsValue = ManagedAtomic<Int>(0)
    private let periodValue = ManagedAtomic<Int>(0)
    private let bufferValue = ManagedAtomic<Int>(0)
    private let startedFlag = ManagedAtomic<Bool>(false)
    private let stopFlag = ManagedAtomic<Bool>(false)
    /// Signalled by `stop()` to cut short a backoff or idle sleep.
    private let wake = DispatchSemaphore(value: 0)
    /// Signalled by the thread when it has closed the PCM and ended.
    private let finished = DispatchSemaphore(value: 0)
    /// Guards `lastFaultValue` (written only on faults, never in the steady loop).
    private let faultLock = Lock()
    private var lastFaultValue: CaptureFault?

    // Capture-thread-only state.
    /// Interleaved read buffer (one period), reallocated only when a (re)open negotiates a larger period.
    private var raw = UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 16)
    private var rawCapacity = 16
    /// Mono float scratch (one period).
    private var mono = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private var monoCapacity = 1
    /// The streaming resampler when the device rate differs from the output rate.
    private var resampler: StreamResampler?
    private var resamplerKey: (rate: Int, chunk: Int) = (0, 0)

    /// A capture that will read `configuration.source` through `backend` into `sink` once started.
    public init(configuration: AlsaCaptureConfiguration, sink: SampleSink,
                backend: PCMCaptureBackend = ALSACaptureBackend(),
                onStateChange: (@Sendable (CaptureState, CaptureFault?) -> Void)? = nil) {
        self.configuration = configuration
        self.sink = sink
        self.backend = backend
        self.onStateChange = onStateChange
    }

    /// Frees the buffers (the thread holds `self`, so this runs only after it has ended).
    deinit {
        raw.deallocate()
        mono.deallocate()
    }

    // MARK: lock-free observation

    /// Current lifecycle state.
    public var state: CaptureState { stateValue.load(ordering: .acquiring) }
    /// Device frames read since start (at the device rate).
    public var framesCaptured: Int { framesValue.load(ordering: .relaxed) }
    /// Mono samples written to the sink (at the output rate).
    public var samplesDelivered: Int { samplesValue.load(ordering: .relaxed) }
    /// Overruns and suspends recovered with `snd_pcm_recover`.
    public var xruns: Int { xrunsValue.load(ordering: .relaxed) }
    /// Successful reopens after the first successful open.
    public var reconnects: Int { reconnectsValue.load(ordering: .relaxed) }
    /// Open streams lost (device gone, unrecoverable error, or stall).
    public var losses: Int { lossesValue.load(ordering: .relaxed) }
    /// Failed open attempts (including the first).
    public var openFailures: Int { openFailuresValue.load(ordering: .relaxed) }
    /// Streams lost because they delivered nothing for `stallTimeout`.
    public var stalls: Int { stallsValue.load(ordering: .relaxed) }
    /// The parameters of the latest successful open (nil before one); fields are read one by one, not as a snapshot.
    public var negotiated: CaptureParameters? {
        guard let f = CaptureSampleFormat(rawValue: formatValue.load(ordering: .acquiring)) else { return nil }
        return CaptureParameters(format: f, rate: rateValue.load(ordering: .relaxed),
                                 channels: channelsValue.load(ordering: .relaxed),
                                 periodFrames: periodValue.load(ordering: .relaxed),
                                 bufferFrames: bufferValue.load(ordering: .relaxed))
    }
    /// The most recent fault (takes a lock; for logs and status pages, not for per-period polling).
    public var lastFault: CaptureFault? {
        faultLock.lock()
        defer { faultLock.unlock() }
        return lastFaultValue
    }

    // MARK: control

    /// Starts the capture thread (once; later calls do nothing). Open failures do not throw: the state becomes `deaf`
    /// and opening is retried with backoff.
    public func start() {
        if startedFlag.exchange(true, ordering: .acquiringAndReleasing) { return }
        DetachedThread.start(name: "eartag-capture", stackSize: 1 << 20) { [self] in
            run()
            finished.signal()
        }
    }

    /// Asks the thread to end, waits up to `timeout` seconds for it to close the PCM, and returns whether it did.
    /// The loop notices within one wait slice (50 ms by default) or immediately when sleeping.
    @discardableResult
    public func stop(timeout: Double = 2) -> Bool {
        if stopFlag.exchange(true, ordering: .acquiringAndReleasing) { return true }
        wake.signal()
        guard startedFlag.load(ordering: .acquiring) else {
            setState(.stopped, nil)
            return true
        }
        let done = finished.wait(timeout: .now() + timeout) == .success
        return done
    }

    // MARK: capture thread

    /// Open / pump / reopen loop; runs until `stop()`.
    private func run() {
        // alsa-lib would print a diagnostic to stderr on every failed reopen (every 5 s for months with the mic
        // unplugged); on this thread keep the latest one instead and attach it to the fault.
        ALSA.libErrorSetLocal(alsaLibDiagnosticHandler)
        defer { ALSA.libErrorSetLocal(nil) }
        var backoff = configuration.initialBackoff
        var openedBefore = false
        while !stopping {
            let params: CaptureParameters
            do {
                params = try backend.open(configuration.source, request: configuration.request)
                try prepareBuffers(params)
            } catch {
                backend.close()
                openFailuresValue.wrappingIncrement(ordering: .relaxed)
                setState(.deaf, fault(error))
                sleep(seconds: backoff)
                backoff = min(backoff * 2, configuration.maxBackoff)
                continue
            }
            if openedBefore { reconnectsValue.wrappingIncrement(ordering: .relaxed) }
            openedBefore = true
            publish(params)
            setState(.listening, nil)
            let (lost, delivered) = pump(params)
            backend.close()
            guard let lost else { break }
            lossesValue.wrappingIncrement(ordering: .relaxed)
            if case .stalled = lost { stallsValue.wrappingIncrement(ordering: .relaxed) }
            setState(.deaf, lost)
            if delivered { backoff = configuration.initialBackoff }
            sleep(seconds: backoff)
            backoff = min(backoff * 2, configuration.maxBackoff)
        }
        backend.close()
        setState(.stopped, nil)
    }

    /// Whether `stop()` was called.
    private var stopping: Bool { stopFlag.load(ordering: .relaxed) }

    /// Reads periods until the stream is lost (returns the fault) or `stop()` (returns nil); also reports whether any
    /// frames arrived. Allocation-free.
    private func pump(_ p: CaptureParameters) -> (CaptureFault?, Bool) {
        let stallNanos = UInt64(max(0.001, configuration.stallTimeout) * 1e9)
        let slice = max(1, configuration.waitSliceMilliseconds)
        let idleSeconds = max(0.001, min(0.01, Double(p.periodFrames) / Double(p.rate) / 2))
        let readBytes = p.periodFrames * p.channels * p.format.bytesPerSample
        var lastData = monotonicNanos()
        var delivered = false
        var wasReady = false
        while !stopping {
            // Zeroed before every read: a plugin that reports frames it did not write (alsa-lib 1.2.8's `file` PCM
            // past the end of its `infile`) then yields silence instead of a repeat of the previous period.
            raw.initializeMemory(as: UInt8.self, repeating: 0, count: readBytes)
            var rc = backend.read(into: raw, frames: p.periodFrames)
            if rc > 0 {
                process(min(rc, p.periodFrames), p)
                lastData = monotonicNanos()
                delivered = true
                wasReady = false
                continue
            }
            var function = "snd_pcm_readi"
            if rc == 0 || rc == -Int(EAGAIN) {
                let now = monotonicNanos()
                let idle = now &- lastData
                if idle >= stallNanos {
                    return (.stalled(device: configuration.source.description,
                                     seconds: configuration.stallTimeout), delivered)
                }
                if wasReady {
                    // The PCM said "ready" but gave nothing: do not spin on it.
                    sleep(seconds: idleSeconds)
                    wasReady = false
                    continue
                }
                let left = Int((stallNanos - idle) / 1_000_000) + 1
                let w = backend.wait(timeoutMilliseconds: Int32(min(slice, left)))
                if w >= 0 {
                    wasReady = w > 0
                    continue
                }
                rc = Int(w)
                function = "snd_pcm_wait"
            }
            wasReady = false
            let err = Int32(truncatingIfNeeded: -rc)
            switch err {
            case EINTR:
                continue
            case EPIPE, ESTRPIPE:
                xrunsValue.wrappingIncrement(ordering: .relaxed)
                let r = backend.recover(-err)
                if r < 0 {
                    return (.alsa(ALSAError(function: "snd_pcm_recover", code: r,
                                            device: configuration.source.description)), delivered)
                }
            default:
                // -ENODEV (unplugged), -EBADFD, -EIO and anything unknown: close and reopen.
                return (.alsa(ALSAError(function: function, code: err, device: configuration.source.description)),
                        delivered)
            }
        }
        return (nil, delivered)
    }

    /// Converts `frames` interleaved frames to mono float and hands them (resampled if needed) to the sink.
    private func process(_ frames: Int, _ p: CaptureParameters) {
        Self.convertToMono(UnsafeRawPointer(raw), frames: frames, channels: p.channels, format: p.format, into: mono)
        framesValue.wrappingIncrement(by: frames, ordering: .relaxed)
        let input = UnsafeBufferPointer(start: UnsafePointer(mono), count: frames)
        if let resampler {
            resampler.process(input) { out in
                sink.write(out)
                samplesValue.wrappingIncrement(by: out.count, ordering: .relaxed)
            }
        } else {
            sink.write(input)
            samplesValue.wrappingIncrement(by: frames, ordering: .relaxed)
        }
    }

    /// Grows the buffers for `p` and (re)builds the resampler when the device rate or period changed. Runs after each
    /// open, never in the steady loop. A stream that resumes at the same rate continues through the same resampler.
    private func prepareBuffers(_ p: CaptureParameters) throws {
        guard p.rate > 0, p.channels > 0, p.periodFrames > 0 else {
            throw ALSAError(function: "snd_pcm_hw_params", code: EINVAL, device: configuration.source.description)
        }
        let bytes = p.periodFrames * p.channels * p.format.bytesPerSample
        if bytes > rawCapacity {
            raw.deallocate()
            raw = .allocate(byteCount: bytes, alignment: 16)
            rawCapacity = bytes
        }
        if p.periodFrames > monoCapacity {
            mono.deallocate()
            mono = .allocate(capacity: p.periodFrames)
            monoCapacity = p.periodFrames
        }
        let out = configuration.request.outputRate
        if p.rate == out {
            resampler = nil
            resamplerKey = (0, 0)
        } else if resampler == nil || resamplerKey.rate != p.rate || resamplerKey.chunk < p.periodFrames {
            do {
                resampler = try StreamResampler(from: p.rate, to: out, maxInputChunk: p.periodFrames)
            } catch {
                resampler = nil
                throw CaptureFault.resampler(device: configuration.source.description, detail: "\(error)")
            }
            resamplerKey = (p.rate, p.periodFrames)
        }
    }

    /// Stores the negotiated parameters in the atomics (format last, so a reader seeing it sees the rest).
    private func publish(_ p: CaptureParameters) {
        rateValue.store(p.rate, ordering: .relaxed)
        channelsValue.store(p.channels, ordering: .relaxed)
        periodValue.store(p.periodFrames, ordering: .relaxed)
        bufferValue.store(p.bufferFrames, ordering: .relaxed)
        formatValue.store(p.format.rawValue, ordering: .releasing)
    }

    /// Sets the state, remembers the fault, and calls `onStateChange` when the state changed or a fault came with it.
    private func setState(_ s: CaptureState, _ f: CaptureFault?) {
        if let f {
            faultLock.lock()
            lastFaultValue = f
            faultLock.unlock()
        }
        let old = stateValue.exchange(s, ordering: .acquiringAndReleasing)
        if old != s || f != nil { onStateChange?(s, f) }
    }

    /// Wraps any error from open/negotiation as a `CaptureFault`, with alsa-lib's latest diagnostic on this thread.
    private func fault(_ error: Error) -> CaptureFault {
        let diagnostic = takeALSALibDiagnostic()
        if let f = error as? CaptureFault { return f }
        if var e = error as? ALSAError {
            if e.detail == nil { e.detail = diagnostic }
            return .alsa(e)
        }
        return .alsa(ALSAError(function: "open", code: EIO, device: "\(configuration.source): \(error)"))
    }

    /// Sleeps up to `seconds`, returning early when `stop()` signals.
    private func sleep(seconds: Double) {
        if stopping { return }
        _ = wake.wait(timeout: .now() + seconds)
    }

    /// CLOCK_MONOTONIC in nanoseconds.
    private func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    // MARK: conversion

    /// Interleaved `format` samples -> mono float: each sample scaled to [-1, 1) (integers divided by 2^(bits-1)),
    /// channels summed in order and divided by the count (as `downmixToMono`).
    static func convertToMono(_ raw: UnsafeRawPointer, frames: Int, channels: Int, format: CaptureSampleFormat,
                              into out: UnsafeMutablePointer<Float>) {
        let scale = Float(channels)
        for f in 0..<frames {
            let base = f * channels
            if channels == 1 {
                out[f] = sample(raw, base, format)
            } else {
                var sum: Float = 0
                for c in 0..<channels { sum += sample(raw, base + c, format) }
                out[f] = sum / scale
            }
        }
    }

    /// Sample `i` of an interleaved buffer as float.
    @inline(__always)
    static func sample(_ raw: UnsafeRawPointer, _ i: Int, _ format: CaptureSampleFormat) -> Float {
        switch format {
        case .s16LE:
            return Float(Int16(littleEndian: raw.load(fromByteOffset: i * 2, as: Int16.self))) * (1.0 / 32768.0)
        case .s32LE:
            return Float(Int32(littleEndian: raw.load(fromByteOffset: i * 4, as: Int32.self))) * (1.0 / 2147483648.0)
        case .floatLE:
            return Float(bitPattern: UInt32(littleEndian: raw.load(fromByteOffset: i * 4, as: UInt32.self)))
        case .s24LE:
            let v = Int32(littleEndian: raw.load(fromByteOffset: i * 4, as: Int32.self))
            return Float((v << 8) >> 8) * (1.0 / 8388608.0)
        case .s24_3LE:
            let o = i * 3
            let v = Int32(raw.load(fromByteOffset: o, as: UInt8.self))
                | (Int32(raw.load(fromByteOffset: o + 1, as: UInt8.self)) << 8)
                | (Int32(raw.load(fromByteOffset: o + 2, as: UInt8.self)) << 16)
            return Float((v << 8) >> 8) * (1.0 / 8388608.0)
        }
    }
}
