// Streaming sample-rate conversion with libsoxr (chunk by chunk, for live input), mono float32 at SOXR_HQ.
// ref: /usr/include/soxr.h (libsoxr 0.1.3): soxr_create, soxr_process (NULL input = end of input), soxr_clear
import CSoxr

/// A mono float32 stream resampler (libsoxr SOXR_HQ, the quality `Resampler.resample` uses); equal rates pass through.
/// `process` and `flush` never allocate: output goes through one buffer allocated at init. Not thread-safe.
public final class StreamResampler {
    /// Input rate in Hz.
    public let inputRate: Int
    /// Output rate in Hz.
    public let outputRate: Int
    /// The largest input chunk `process` is tuned for (larger chunks work, in more soxr calls).
    public let maxInputChunk: Int
    /// The soxr handle; nil in pass-through mode.
    private let handle: soxr_t?
    /// Preallocated output buffer.
    private let output: UnsafeMutableBufferPointer<Float>
    /// One readable float, given to soxr_process as a non-NULL input pointer when there is no input (NULL means flush).
    private let dummyInput: UnsafeMutablePointer<Float>
    /// Samples fed in since creation or the last flush.
    public private(set) var samplesIn: Int = 0
    /// Samples emitted since creation or the last flush.
    public private(set) var samplesOut: Int = 0

    /// True when no conversion happens (equal rates): `process` emits its input unchanged.
    public var isPassThrough: Bool { handle == nil }

    /// Creates a resampler `from` -> `to` Hz with an output buffer sized for `maxInputChunk` input samples.
    public init(from: Int, to: Int, maxInputChunk: Int) throws {
        guard (1...10_000_000).contains(from), (1...10_000_000).contains(to) else {
            throw AudioError.invalidParameters(file: "<resampler>", detail: "resampling from \(from) Hz to \(to) Hz")
        }
        guard maxInputChunk > 0, maxInputChunk <= 1 << 26 else {
            throw AudioError.invalidParameters(file: "<resampler>", detail: "maximum input chunk \(maxInputChunk)")
        }
        inputRate = from
        outputRate = to
        self.maxInputChunk = maxInputChunk
        dummyInput = .allocate(capacity: 1)
        dummyInput.initialize(to: 0)
        if from == to {
            handle = nil
            output = .allocate(capacity: 0)
            return
        }
        // Room for one chunk's worth of output plus what soxr may release from its pipeline at once; capped, since
        // `process` loops while the buffer fills (a smaller buffer only means more soxr calls).
        let capacity = min(Int((Double(maxInputChunk) * Double(to) / Double(from)).rounded(.up)) + 256, 1 << 18)
        output = .allocate(capacity: capacity)
        output.initialize(repeating: 0)
        do {
            handle = try Soxr.create(inputRate: Double(from), outputRate: Double(to), channels: 1,
                                     io: Soxr.ioSpec(input: SOXR_FLOAT32_I, output: SOXR_FLOAT32_I),
                                     quality: Soxr.qualitySpec(recipe: SOXR_HQ, flags: 0))
        } catch let e as SoxrError {
            output.deallocate()
            dummyInput.deallocate()
            throw AudioError.resampleFailed(file: "<resampler>", detail: e.message)
        }
    }

    /// Frees the soxr handle and the buffers.
    deinit {
        if let handle { Soxr.delete(handle) }
        output.deallocate()
        dummyInput.deallocate()
    }

    /// Resamples one chunk; `emit` receives the output produced so far (zero or more calls, each valid only during
    /// the call). soxr keeps a filter delay's worth of samples until more input or `flush`.
    public func process(_ input: UnsafeBufferPointer<Float>, emit: (UnsafeBufferPointer<Float>) throws -> Void) rethrows {
        samplesIn += input.count
        guard let handle else {
            if !input.isEmpty {
                samplesOut += input.count
                try emit(input)
            }
            return
        }
        guard let base = input.baseAddress, !input.isEmpty else { return }
        var offset = 0
        // soxr_process takes at most ceil(olen * io_ratio) input per call, so loop until all input is consumed
        // and the output buffer is no longer filled completely.  // ref: soxr.c soxr_process
        while true {
            let r = processCall(handle, input: base + offset, inputFrames: input.count - offset)
            offset += r.consumed
            if r.produced > 0 {
                samplesOut += r.produced
                try emit(UnsafeBufferPointer(rebasing: output[0..<r.produced]))
            }
            if offset >= input.count && r.produced < output.count { break }
        }
    }

    /// Ends the stream: emits the samples soxr still holds, then resets for a fresh stream with the same rates.
    public func flush(emit: (UnsafeBufferPointer<Float>) throws -> Void) rethrows {
        defer { samplesIn = 0; samplesOut = 0 }
        guard let handle else { return }
        while true {
            let r = processCall(handle, input: nil, inputFrames: 0)
            if r.produced > 0 {
                samplesOut += r.produced
                try emit(UnsafeBufferPointer(rebasing: output[0..<r.produced]))
            }
            if r.produced == 0 { break }
        }
        _ = try? Soxr.clear(handle)
    }

    /// Discards any buffered signal without emitting it (fresh stream, same rates).
    public func reset() {
        samplesIn = 0
        samplesOut = 0
        if let handle { _ = try? Soxr.clear(handle) }
    }

    /// One soxr_process call into the output buffer. soxr only fails here on invalid arguments (its creation
    /// was checked), so a failure is a programming error.
    private func processCall(_ handle: soxr_t, input: UnsafePointer<Float>?, inputFrames: Int) -> (consumed: Int, produced: Int) {
        do {
            return try Soxr.process(handle, input: input, inputFrames: inputFrames,
                                    output: output.baseAddress ?? dummyInput, outputFrames: output.count)
        } catch {
            preconditionFailure("soxr_process failed: \(error)")
        }
    }
}
