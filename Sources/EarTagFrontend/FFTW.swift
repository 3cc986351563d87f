// A thin, typed wrapper over the few FFTW (single precision) calls the frontend uses.
// Every FFTW entry point used by EarTag goes through exactly one function in this file.
import CFFTW
import Foundation

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
        case .planCreationFailed(let size): return "FFTW could not create a real-to-complex plan of size \(size)"
        case .invalidSize(let size): return "invalid FFT size \(size)"
        }
    }
}

/// Serialises every FFTW planner call: only `fftwf_execute*` is thread-safe in FFTW.
let fftwPlannerLock = NSLock()

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

/// Wraps `fftwf_plan_dft_r2c_1d` (called under the planner lock).
func fftwPlanR2C(size: Int, input: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<fftwf_complex>,
                 flags: UInt32) throws -> fftwf_plan {
    guard size > 0, size <= Int(Int32.max) else { throw FFTWError.invalidSize(size) }
    fftwPlannerLock.lock()
    defer { fftwPlannerLock.unlock() }
    guard let plan = fftwf_plan_dft_r2c_1d(Int32(size), input, output, flags) else {
        throw FFTWError.planCreationFailed(size: size)
    }
    return plan
}

/// Wraps `fftwf_execute_dft_r2c` (new-array execute; thread-safe in FFTW, no lock).
@inline(__always)
func fftwExecuteR2C(_ plan: fftwf_plan, input: UnsafeMutablePointer<Float>,
                    output: UnsafeMutablePointer<fftwf_complex>) {
    fftwf_execute_dft_r2c(plan, input, output)
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

/// How much time FFTW may spend finding a fast plan.
public enum FFTPlanning: Sendable {
    /// `FFTW_ESTIMATE`: instant planning, possibly slower transforms.
    case estimate
    /// `FFTW_MEASURE`: times candidate algorithms once (tens of ms per new size per process).
    case measure

    /// The FFTW planner flag.
    var flag: UInt32 { self == .estimate ? UInt32(FFTW_ESTIMATE) : UInt32(FFTW_MEASURE) }
}

/// A real-to-complex forward FFT plan of one size, reusable on any FFTW-aligned buffers; destroyed on deinit.
final class RealFFTPlan {
    /// Transform length (real input samples).
    let size: Int
    /// Number of complex outputs, `size / 2 + 1`.
    var outputCount: Int { size / 2 + 1 }
    private let plan: fftwf_plan

    /// Plans with the given buffers (MEASURE overwrites them, so plan before filling); input is preserved on execute.
    init(size: Int, input: FFTWBuffer<Float>, output: FFTWBuffer<fftwf_complex>, planning: FFTPlanning) throws {
        precondition(input.count >= size && output.count >= size / 2 + 1, "FFT buffers too small")
        self.size = size
        plan = try fftwPlanR2C(size: size, input: input.pointer, output: output.pointer,
                               flags: planning.flag | UInt32(FFTW_PRESERVE_INPUT))
    }

    /// Transforms `input` (`size` reals) into `output` (`size/2+1` complex); both must be FFTW-aligned like the planning buffers.
    @inline(__always)
    func execute(input: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<fftwf_complex>) {
        fftwExecuteR2C(plan, input: input, output: output)
    }

    deinit { fftwDestroyPlan(plan) }
}
