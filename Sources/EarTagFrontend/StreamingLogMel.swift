// The incremental sliding-window log-mel frontend: each window of W stream samples gets exactly the batch mel of
// those samples, while each hop computes only the frames its new samples complete plus a few edge frames.
//
// ref: LogMelFrontend.swift ("Incremental (streaming) form") and the EarTag streaming spec (brief "StreamingLogMel").
//
// Frame i of a window starting at stream sample s reads the span y[i*hop - 400 ..< i*hop + 400] of the window's
// pre-emphasized signal y[j] = x[s+j+1] - 0.97 x[s+j] (length W - 1), reflected at both window ends. When the span
// lies inside the window (i >= 2, i*hop + 400 <= W - 1, the window's "interior"), it equals the span of *global*
// frame g = s/hop + i of the whole stream, so interior frames are computed once per stream and kept by global index
// in a ring of columns; only the frames whose span leaves the window (two on the left, one or two on the right) are
// recomputed per window, from the window's samples with reflect padding, as the batch path does.
//
// Exact batch parity: the batch path computes frames in pairs (2k, 2k+1) with one complex FFT, so a frame's
// rounding depends on its partner. The stream computes global frames in the same (even, odd) pairs, and a window
// takes from the ring only whole window-local pairs that are interior; every other pair is computed directly from
// the window. Window-local pair (2k, 2k+1) is global pair (g0+2k, g0+2k+1), so a window starting on an even global
// frame g0 uses a ring of (even, odd) pairs. When the hop is an odd number of frames, windows alternately start on
// odd frames; a second ring of (odd, even) pairs serves those (each interior frame is then computed twice, still
// per hop, not per window). Every window is therefore bitwise equal to `LogMelFrontend.compute` of its samples.
// Ring frames are computed 8 at a time (four pairs in one SIMD block), as the batch path computes its frames.
//
// Cost per hop: hop / 320 ring frames (twice that for odd-frame hops), about 4 edge frames, and copying the window's
// 128 x frames values out (measured, x86-64 release: W 10 s, H 1 s ~0.19 ms per hop vs ~1.0 ms for a batch window).
import EarTagModel
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where one emitted window lies in the stream.
public struct WindowInfo: Sendable, Equatable {
    /// Ordinal of this window (0 for the first).
    public var index: Int
    /// Stream index of the window's first sample.
    public var start: Int64
    /// Stream index one past the window's last sample.
    public var end: Int64
    /// Frames written to the mel buffer ([bins][frames] row-major).
    public var frames: Int
    /// True for the single short window `finalPartialWindow` returns at end of stream.
    public var isPartial: Bool

    /// Builds a window description.
    public init(index: Int, start: Int64, end: Int64, frames: Int, isPartial: Bool) {
        self.index = index
        self.start = start
        self.end = end
        self.frames = frames
        self.isPartial = isPartial
    }
}

/// Incremental sliding-window log-mel: push stream samples, pull the mel of each complete window (W samples, hop H).
public final class StreamingLogMel {
    /// Samples per window.
    public let windowSamples: Int
    /// Samples between window starts (a multiple of the frame hop).
    public let hopSamples: Int
    /// Mel bins per frame.
    public let bins: Int
    /// Frames in each full window's mel: 1 + (W - 1) / 320.
    public let framesPerWindow: Int
    /// Samples this instance can buffer: the next window plus audio pushed ahead of it.
    public let bufferCapacity: Int
    /// Frames computed so far (ring and edge frames), to show that per-hop cost follows the hop, not the window.
    public private(set) var framesComputed = 0
    /// Windows emitted so far (full and partial).
    public private(set) var windowsEmitted = 0

    private let frontend: LogMelFrontend
    private let hop: Int
    private let spanLength: Int
    /// Offset of a frame's span start from frame index x hop (spanOffset - padding, -400 for EfficientAT).
    private let spanShift: Int
    private let preemphasis: Float
    /// Window-local frames [pairStart, pairEnd] come from the ring (whole interior pairs); the rest are computed directly.
    private let pairStart: Int
    private let pairEnd: Int

    /// Raw stream samples by absolute index (power-of-two ring).
    private let samples: UnsafeMutablePointer<Float>
    private let sampleMask: Int64
    /// Interior frames by global index, [bin][slot] row-major with `frameSlots` slots: computed in (even, odd) pairs
    /// in ring 0 and, only for odd-frame hops, in (odd, even) pairs in ring 1.
    private let rings: [UnsafeMutablePointer<Float>]
    private let frameSlots: Int
    /// Two pre-emphasized frame spans being assembled.
    private let spanA: UnsafeMutablePointer<Float>
    private let spanB: UnsafeMutablePointer<Float>
    /// Scratch for `computeFramePair`.
    private let pairScratch: UnsafeMutablePointer<Float>
    /// Up to 8 ring-frame spans and their mel block ([bin][lane]) for `computeFrameBlock`.
    private let blockSpans: UnsafeMutablePointer<Float>
    private let blockMel: UnsafeMutablePointer<Float>

    /// Samples pushed so far.
    public private(set) var totalSamples: Int64 = 0
    /// Stream index where the next window starts.
    public private(set) var nextWindowStart: Int64 = 0
    /// Next global frame each ring computes (frames below it are in the ring while they are still needed).
    private var nextGlobalFrame: [Int64] = [0, 0]

    /// Validates the geometry and allocates everything; throws `FrontendError.invalidSettings` for a bad window or hop.
    /// `bufferCapacity` (default 2 x window) bounds how far pushes may run ahead of the windows taken out.
    public init(settings: FrontendSettings = .efficientAT, windowSamples: Int, hopSamples: Int,
                bufferCapacity requestedCapacity: Int? = nil) throws {
        let fe = try LogMelFrontend(settings: settings)
        let frameHop = fe.hop
        guard hopSamples > 0, hopSamples % frameHop == 0 else {
            throw FrontendError.invalidSettings(
                "stream hop must be a positive multiple of the frame hop \(frameHop) samples, got \(hopSamples)")
        }
        guard windowSamples >= fe.minimumSampleCount else {
            throw FrontendError.invalidSettings(
                "stream window must hold at least \(fe.minimumSampleCount) samples, got \(windowSamples)")
        }
        guard hopSamples <= windowSamples else {
            throw FrontendError.invalidSettings(
                "stream hop (\(hopSamples)) must not exceed the window (\(windowSamples)): no audio may be skipped")
        }
        let capacity = requestedCapacity ?? 2 * windowSamples
        guard capacity >= windowSamples + hopSamples, capacity <= 1 << 30 else {
            throw FrontendError.invalidSettings(
                "buffer capacity must be in window + hop (\(windowSamples + hopSamples)) ... 2^30, got \(capacity)")
        }
        frontend = fe
        self.windowSamples = windowSamples
        self.hopSamples = hopSamples
        bins = fe.bins
        hop = frameHop
        spanLength = fe.spanLength
        spanShift = fe.spanOffset - fe.padding
        preemphasis = Float(settings.preemphasis)
        framesPerWindow = fe.frameCount(sampleCount: windowSamples)
        bufferCapacity = capacity

        // Interior frames i: span start i*hop + spanShift >= 0 and span end <= W - 1 (the pre-emphasized length).
        let firstInterior = max(0, (-spanShift + frameHop - 1) / frameHop)
        let lastInterior = (windowSamples - 1 - spanLength - spanShift) >= 0
            ? (windowSamples - 1 - spanLength - spanShift) / frameHop : -1
        let start = (firstInterior + 1) & ~1
        let end = lastInterior % 2 == 1 ? lastInterior : lastInterior - 1
        if end > start {
            pairStart = start
            pairEnd = min(end, framesPerWindow - 1)
        } else {
            pairStart = 0
            pairEnd = -1
        }

        var sampleCount = 1
        while sampleCount < capacity { sampleCount <<= 1 }
        samples = .allocate(capacity: sampleCount)
        samples.initialize(repeating: 0, count: sampleCount)
        sampleMask = Int64(sampleCount - 1)
        frameSlots = framesPerWindow + 2
        let ringCount = (hopSamples / frameHop) % 2 == 1 ? 2 : 1
        let ringValues = fe.bins * (fe.frameCount(sampleCount: windowSamples) + 2)
        rings = (0..<ringCount).map { _ in
            let ring = UnsafeMutablePointer<Float>.allocate(capacity: ringValues)
            ring.initialize(repeating: 0, count: ringValues)
            return ring
        }
        spanA = .allocate(capacity: spanLength)
        spanA.initialize(repeating: 0, count: spanLength)
        spanB = .allocate(capacity: spanLength)
        spanB.initialize(repeating: 0, count: spanLength)
        pairScratch = .allocate(capacity: 2 * bins)
        pairScratch.initialize(repeating: 0, count: 2 * bins)
        blockSpans = .allocate(capacity: LogMelFrontend.blockWidth * spanLength)
        blockSpans.initialize(repeating: 0, count: LogMelFrontend.blockWidth * spanLength)
        blockMel = .allocate(capacity: LogMelFrontend.blockWidth * bins)
        blockMel.initialize(repeating: 0, count: LogMelFrontend.blockWidth * bins)
    }

    deinit {
        samples.deallocate()
        for ring in rings { ring.deallocate() }
        spanA.deallocate()
        spanB.deallocate()
        pairScratch.deallocate()
        blockSpans.deallocate()
        blockMel.deallocate()
    }

    /// Samples that can still be pushed before the next `nextWindow` call must free space.
    public var freeCapacity: Int { bufferCapacity - Int(totalSamples - nextWindowStart) }

    /// Appends stream samples (no allocation); the buffered audio must stay within `bufferCapacity` (precondition).
    public func push(_ input: UnsafeBufferPointer<Float>) {
        let n = input.count
        guard n > 0, let src = input.baseAddress else { return }
        precondition(n <= freeCapacity,
                     "StreamingLogMel.push of \(n) samples overflows the buffer (\(freeCapacity) free of \(bufferCapacity)); take windows out first")
        var position = totalSamples
        var done = 0
        while done < n {
            let slot = Int(position & sampleMask)
            let run = min(n - done, Int(sampleMask) + 1 - slot)
            (samples + slot).update(from: src + done, count: run)
            done += run
            position += Int64(run)
        }
        totalSamples = position
    }

    /// Writes the next full window's mel ([bins][framesPerWindow] row-major) to `mel` and returns where it lies; nil until enough samples arrived.
    public func nextWindow(into mel: UnsafeMutableBufferPointer<Float>) -> WindowInfo? {
        precondition(mel.count >= bins * framesPerWindow,
                     "mel buffer holds \(mel.count) values, a window needs \(bins * framesPerWindow)")
        let s = nextWindowStart
        guard totalSamples >= s + Int64(windowSamples), let out = mel.baseAddress else { return nil }
        let frames = framesPerWindow
        let g0 = s / Int64(hop)

        // Interior pairs from the ring of global frames.
        if pairEnd >= pairStart {
            let parity = Int(g0 & 1)
            ensureGlobalFrames(ring: parity, from: g0 + Int64(pairStart), through: g0 + Int64(pairEnd))
            let columns = rings[parity]
            let count = pairEnd - pairStart + 1
            let firstSlot = Int((g0 + Int64(pairStart)) % Int64(frameSlots))
            let run = min(count, frameSlots - firstSlot)
            for m in 0..<bins {
                let row = out + m * frames + pairStart
                let ringRow = columns + m * frameSlots
                row.update(from: ringRow + firstSlot, count: run)
                if run < count { (row + run).update(from: ringRow, count: count - run) }
            }
        }
        // Edge pairs (and any pair that is not wholly interior) directly from the window's samples.
        var a = 0
        while a < frames {
            if pairEnd >= pairStart && a == pairStart {
                a = pairEnd + 1
                continue
            }
            let hasSecond = a + 1 < frames
            windowSpan(frame: a, windowStart: s, into: spanA)
            if hasSecond { windowSpan(frame: a + 1, windowStart: s, into: spanB) }
            frontend.computeFramePair(first: spanA, second: hasSecond ? UnsafePointer(spanB) : nil,
                                      into: out + a, hasSecond ? out + a + 1 : nil,
                                      stride: frames, scratch: pairScratch)
            framesComputed += hasSecond ? 2 : 1
            a += 2
        }

        let info = WindowInfo(index: windowsEmitted, start: s, end: s + Int64(windowSamples), frames: frames,
                              isPartial: false)
        windowsEmitted += 1
        nextWindowStart = s + Int64(hopSamples)
        return info
    }

    /// At end of stream: if no window was ever emitted and none is pending, writes the mel of all buffered samples
    /// (at least 514) as [bins][frames] row-major to the front of `mel` and returns it once; a short recording thus
    /// still gets one result. Returns nil otherwise (including when a full window is available: use `nextWindow`).
    public func finalPartialWindow(into mel: UnsafeMutableBufferPointer<Float>) -> WindowInfo? {
        guard windowsEmitted == 0, totalSamples < Int64(windowSamples),
              totalSamples >= Int64(frontend.minimumSampleCount), let out = mel.baseAddress else { return nil }
        let n = Int(totalSamples)
        let frames = frontend.frameCount(sampleCount: n)
        precondition(mel.count >= bins * frames, "mel buffer holds \(mel.count) values, need \(bins * frames)")
        // With nothing emitted the buffer starts at stream index 0 and n < window <= capacity: it is contiguous.
        do {
            try frontend.compute(UnsafeBufferPointer(start: samples, count: n),
                                 into: UnsafeMutableBufferPointer(start: out, count: bins * frames))
        } catch {
            preconditionFailure("partial window of \(n) samples failed: \(error)")
        }
        framesComputed += frames
        windowsEmitted += 1
        return WindowInfo(index: 0, start: 0, end: Int64(n), frames: frames, isPartial: true)
    }

    /// Computes global frames up to `last` (from `first` if the ring is behind) into ring `parity`, in pairs (g, g+1)
    /// with g of that parity (the window's first frame's), as the batch path pairs that window's frames.
    private func ensureGlobalFrames(ring parity: Int, from first: Int64, through last: Int64) {
        let columns = rings[parity]
        if nextGlobalFrame[parity] < first { nextGlobalFrame[parity] = first }
        let width = Int64(LogMelFrontend.blockWidth)
        let slots = Int64(frameSlots)
        while nextGlobalFrame[parity] <= last {
            let g = nextGlobalFrame[parity]
            // Whole pairs, up to 8 frames per block (the batch path's SIMD width): same values, a quarter of the
            // mel-filterbank passes of pair-by-pair computation.
            var n: Int64 = 0
            while n < width && g + n <= last && Int((g + n) & 1) == parity && globalFrameReady(g + n + 1) {
                globalSpan(frame: g + n, into: blockSpans + Int(n) * spanLength)
                globalSpan(frame: g + n + 1, into: blockSpans + Int(n + 1) * spanLength)
                n += 2
            }
            if n > 0 {
                frontend.computeFrameBlock(spans: blockSpans, count: Int(n), into: blockMel)
                for l in 0..<Int(n) {
                    let column = columns + Int((g + Int64(l)) % slots)
                    for m in 0..<bins { column[m * frameSlots] = blockMel[m * LogMelFrontend.blockWidth + l] }
                }
                framesComputed += Int(n)
                nextGlobalFrame[parity] = g + n
                continue
            }
            // A whole pair when the partner's samples are there (always, for the frames a window takes); else one frame.
            let pair = Int(g & 1) == parity && globalFrameReady(g + 1)
            globalSpan(frame: g, into: spanA)
            if pair { globalSpan(frame: g + 1, into: spanB) }
            let slotA = Int(g % Int64(frameSlots))
            let slotB = Int((g + 1) % Int64(frameSlots))
            frontend.computeFramePair(first: spanA, second: pair ? UnsafePointer(spanB) : nil,
                                      into: columns + slotA, pair ? columns + slotB : nil,
                                      stride: frameSlots, scratch: pairScratch)
            framesComputed += pair ? 2 : 1
            nextGlobalFrame[parity] = g + (pair ? 2 : 1)
        }
    }

    /// True when global frame g's span lies inside the pre-emphasized stream received so far.
    @inline(__always)
    private func globalFrameReady(_ g: Int64) -> Bool {
        let start = g * Int64(hop) + Int64(spanShift)
        return start >= 0 && start + Int64(spanLength) <= totalSamples - 1
    }

    /// Builds global frame g's span of the stream's pre-emphasized signal (no padding: it lies inside the stream).
    @inline(__always)
    private func globalSpan(frame g: Int64, into span: UnsafeMutablePointer<Float>) {
        // ref: EfficientAT preprocess.py: y[j] = x[j+1] - 0.97 x[j], here with j absolute in the stream.
        let c = preemphasis
        let start = g * Int64(hop) + Int64(spanShift)
        let x = samples, mask = sampleMask
        for k in 0..<spanLength {
            let j = start + Int64(k)
            span[k] = x[Int((j + 1) & mask)] - c * x[Int(j & mask)]
        }
    }

    /// Builds window-local frame i's span of the window's pre-emphasized signal, reflect-padded at both window ends.
    @inline(__always)
    private func windowSpan(frame i: Int, windowStart s: Int64, into span: UnsafeMutablePointer<Float>) {
        // ref: torch.stft center=True, pad_mode='reflect' on the window's own signal: y[-j] = y[j], y[L-1+j] = y[L-1-j].
        let c = preemphasis
        let length = windowSamples - 1
        let start = i * hop + spanShift
        let x = samples, mask = sampleMask
        for k in 0..<spanLength {
            var j = start + k
            if j < 0 { j = -j } else if j >= length { j = 2 * (length - 1) - j }
            let p = s + Int64(j)
            span[k] = x[Int((p + 1) & mask)] - c * x[Int(p & mask)]
        }
    }
}
