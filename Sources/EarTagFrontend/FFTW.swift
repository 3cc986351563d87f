// A thin, typed wrapper over the few FFTW (single precision) calls the frontend uses.
// Every FFTW entry point used by EarTag goes through exactly one function in this file.
import CFFTW
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagPlatform

/// Errors raised by the FFTW wrapper.
public enum FFTWError: Error, Equatable, CustomStringConvertible {
    /// `fftwf_malloc` returned NULL for a request of `bytes` bytes.
    case allocationFailed(bytes: Int)
    /// An `fftwf_plan_*` call returned NULL (FFTW could not plan this transform).
    case planCreationFailed(size: Int)
    /// A transform size FFTW cannot take (non-positive or beyond Int32).
    case invalidSize(Int)

    /// Human-readable description.
    public var description: String {
        switch self {
        case .allocationFailed(let bytes): return "fftwf_malloc failed to allocate \(bytes) bytes"
        case .planCreationFailed(let size): return "FFTW could not create a plan of size \(size)"
        case .invalidSize(let size): return "invalid FFT size \(size)"
        }
    }
}

/// Serialises every FFTW planner call: only `fftwf_execute*` is thread-safe in FFTW.
let fftwPlannerLock = Lock()

/// Wraps `fftwf_malloc`: SIMD-aligned, uninitialised memory for `count` elements of `T`.
func fftwAllocate<T>(_ type: T.Type, count: Int) throws -> UnsafeMutablePointer<T> {
    let bytes = max(1, count) * MemoryLayout<T>.stride
    guard let raw = fftwf_malloc(bytes) else { throw FFTWError.allocationFailed(bytes: bytes) }
    return raw.bindMemory(to: T.self, capacity: max(1, count))
}

/// Wraps `fftwf_free`.
func fftwFree<T>(_ pointer: UnsafeMutablePointer<T>) {
    fftwf_free(UnsafeMutableRawPointer(pointer))
}

/// Wraps `fftwf_plan_guru_split_dft` for one forward complex transform of `size` points on split (re, im)
/// arrays with unit stride (called under the planner lock).
func fftwPlanSplitDFT(size: Int, realIn: UnsafeMutablePointer<Float>, imagIn: UnsafeMutablePointer<Float>,
                      realOut: UnsafeMutablePointer<Float>, imagOut: UnsafeMutablePointer<Float>,
                      flags: UInt32) throws -> fftwf_plan {
    guard size > 0, size <= Int(Int32.max) else { throw FFTWError.invalidSize(size) }
    fftwPlannerLock.lock()
    defer { fftwPlannerLock.unlock() }
    var dim = fftwf_iodim(n: Int32(size), is: 1, os: 1)
    // A forward transform on split arrays is requested by passing (re, im); FFTW has no sign argument here.
    guard let plan = fftwf_plan_guru_split_dft(1, &dim, 0, nil, realIn, imagIn, realOut, imagOut, flags) else {
        throw FFTWError.planCreationFailed(size: size)
    }
    return plan
}

/// Wraps `fftwf_execute_split_dft` (new-array execute; thread-safe in FFTW, no lock).
@inline(__always)
func fftwExecuteSplitDFT(_ plan: fftwf_plan, realIn: UnsafeMutablePointer<Float>, imagIn: UnsafeMutablePointer<Float>,
                         realOut: UnsafeMutablePointer<Float>, imagOut: UnsafeMutablePointer<Float>) {
    fftwf_execute_split_dft(plan, realIn, imagIn, realOut, imagOut)
}

/// Wraps `fftwf_destroy_plan` (called under the planner lock, as FFTW requires).
func fftwDestroyPlan(_ plan: fftwf_plan) {
    fftwPlannerLock.lock()
    defer { fftwPlannerLock.unlock() }
    fftwf_destroy_plan(plan)
}

/// An owned, FFTW-aligned buffer of `count` elements, zero-filled at creation; freed on deinit.
final class FFTWBuffer<Element> {
    /// Start of the buffer.
    let pointer: UnsafeMutablePointer<Element>
    /// Number of elements.
    let count: Int

    /// Allocates `count` elements with `fftwf_malloc` and zero-fills them.
    init(count: Int) throws {
        pointer = try fftwAllocate(Element.self, count: count)
        self.count = count
        UnsafeMutableRawPointer(pointer).initializeMemory(as: UInt8.self, repeating: 0,
                                                          count: max(1, count) * MemoryLayout<Element>.stride)
    }

    deinit { fftwFree(pointer) }
}

/// A forward complex FFT plan of one size on split (re, im) arrays, reusable on any FFTW-aligned buffers.
/// Destroyed on deinit. The frontend packs two real frames into one complex input (frame a as the real part,
/// frame b as the imaginary part) and separates their spectra afterwards: half the transforms of r2c.
final class SplitComplexFFTPlan {
    /// Transform length (complex points).
    let size: Int
    private let plan: fftwf_plan

    /// Plans with the given buffers; input is preserved on execute.
    /// Always `FFTW_ESTIMATE`: every plan of a size in the process is then the same algorithm, so every frontend
    /// (batch and streaming) rounds identically. An `FFTW_MEASURE` plan would leave wisdom that later ESTIMATE plans
    /// reuse, changing their rounding depending on what the process did before; it was also no faster here.
    init(size: Int, realIn: FFTWBuffer<Float>, imagIn: FFTWBuffer<Float>, realOut: FFTWBuffer<Float>,
         imagOut: FFTWBuffer<Float>) throws {
        precondition(min(realIn.count, imagIn.count, realOut.count, imagOut.count) >= size, "FFT buffers too small")
        self.size = size
        plan = try fftwPlanSplitDFT(size: size, realIn: realIn.pointer, imagIn: imagIn.pointer,
                                    realOut: realOut.pointer, imagOut: imagOut.pointer,
                                    flags: UInt32(FFTW_ESTIMATE) | UInt32(FFTW_PRESERVE_INPUT))
    }

    /// Transforms (realIn, imagIn) into (realOut, imagOut), `size` values each; all FFTW-aligned like the planning buffers.
    @inline(__always)
    func execute(realIn: UnsafeMutablePointer<Float>, imagIn: UnsafeMutablePointer<Float>,
                 realOut: UnsafeMutablePointer<Float>, imagOut: UnsafeMutablePointer<Float>) {
        fftwExecuteSplitDFT(plan, realIn: realIn, imagIn: imagIn, realOut: realOut, imagOut: imagOut)
    }

    deinit { fftwDestroyPlan(plan) }
}
