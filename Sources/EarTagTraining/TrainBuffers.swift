// Storage, parameters, the seeded random generator and the fork-join helper shared by the trainer's layers.
import Foundation

/// A zero-initialised heap float buffer owned by this object (freed on deinit).
final class FloatStorage {
    /// Number of floats.
    let count: Int
    /// Start of the buffer (valid for `max(count, 1)` floats).
    let pointer: UnsafeMutablePointer<Float>

    /// Allocates `count` zeroed floats.
    init(_ count: Int) {
        self.count = count
        pointer = .allocate(capacity: max(1, count))
        pointer.initialize(repeating: 0, count: max(1, count))
    }

    /// A buffer holding a copy of `values`.
    convenience init(copying values: [Float]) {
        self.init(values.count)
        load(values)
    }

    deinit { pointer.deallocate() }

    /// Sets every element to zero.
    func zero() { pointer.update(repeating: 0, count: count) }

    /// Copies `values` (exactly `count` of them) into the buffer.
    func load(_ values: [Float]) {
        precondition(values.count == count, "loading \(values.count) values into a buffer of \(count)")
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: count) }
    }

    /// The contents as an array.
    var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}

/// A trainable tensor: its state-dict name and shape, value and gradient of the last backward pass.
public final class Parameter {
    /// EfficientAT state-dict name, e.g. `features.1.block.0.0.weight`.
    public let name: String
    /// PyTorch shape.
    public let shape: [Int]
    /// Current value (PyTorch layout).
    let value: FloatStorage
    /// Gradient written by the last backward pass (PyTorch layout).
    let grad: FloatStorage
    /// True for weights that weight decay applies to in AdamW (every parameter, as torch.optim does by default).
    public var decays = true

    /// A zero parameter of `shape`.
    init(_ name: String, _ shape: [Int]) {
        self.name = name
        self.shape = shape
        let n = shape.reduce(1, *)
        value = FloatStorage(n)
        grad = FloatStorage(n)
    }

    /// Number of elements.
    public var count: Int { value.count }
    /// The value as an array.
    public var values: [Float] { value.array }
    /// The last gradient as an array.
    public var gradient: [Float] { grad.array }
    /// Replaces the value (exactly `count` floats).
    public func setValues(_ v: [Float]) { value.load(v) }
}

/// xoshiro256** seeded through SplitMix64: deterministic, fast, good enough for initialisation and augmentation.
public struct TrainingRandom: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    /// A generator whose whole sequence is fixed by `seed`.
    /// The state comes from SplitMix64 (ref: Vigna, "xoshiro / xoroshiro generators", seeding recommendation).
    public init(seed: UInt64) {
        var seeder = SplitMix64(seed: seed)
        s = (seeder.next(), seeder.next(), seeder.next(), seeder.next())
    }

    /// Next 64 random bits. ref: https://prng.di.unimi.it/xoshiro256starstar.c
    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// Uniform in [0, 1).
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Standard normal (Box-Muller).
    public mutating func normal() -> Double {
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }

    /// Gamma(shape, 1) (Marsaglia-Tsang; shape < 1 through the boost u^(1/shape)).
    public mutating func gamma(_ shape: Double) -> Double {
        if shape < 1 { return gamma(shape + 1) * Foundation.pow(max(uniform(), 1e-300), 1 / shape) }
        let d = shape - 1.0 / 3, c = 1 / (9 * d).squareRoot()
        while true {
            var x = 0.0, v = 0.0
            repeat { x = normal(); v = 1 + c * x } while v <= 0
            v = v * v * v
            let u = uniform()
            if u < 1 - 0.0331 * x * x * x * x { return d * v }
            if Foundation.log(max(u, 1e-300)) < 0.5 * x * x + d * (1 - v + Foundation.log(v)) { return d * v }
        }
    }

    /// Beta(a, b) from two gammas.
    public mutating func beta(_ a: Double, _ b: Double) -> Double {
        let x = gamma(a), y = gamma(b)
        return x / (x + y)
    }
}

/// Fork-join over a fixed number of parts (the `--threads` setting), on Dispatch's worker threads.
public struct Parallel: Sendable {
    /// Number of parts work is split into (1: run inline).
    public let threads: Int

    /// A splitter over `threads` parts (at least one).
    public init(threads: Int) { self.threads = max(1, threads) }

    /// Runs `body(part)` for part in 0..<parts (parts <= threads), concurrently when parts > 1.
    func run(_ parts: Int, _ body: (Int) -> Void) {
        if parts <= 1 { body(0); return }
        DispatchQueue.concurrentPerform(iterations: parts, execute: body)
    }

    /// Splits 0..<count into at most `threads` contiguous ranges (a multiple of `align` long, except the last)
    /// and runs `body(part, range)` for each.
    func split(_ count: Int, align: Int = 1, minimum: Int = 1, _ body: (Int, Range<Int>) -> Void) {
        let parts = max(1, min(threads, count / max(1, minimum)))
        if parts == 1 { body(0, 0..<count); return }
        let units = (count + align - 1) / align
        run(parts) { p in
            let lo = min(count, units * p / parts * align), hi = min(count, units * (p + 1) / parts * align)
            if lo < hi { body(p, lo..<hi) }
        }
    }
}

/// Accumulates wall time per label (layer kind) when enabled; the benchmark prints the split.
public final class LayerTimer {
    /// Whether timing is recorded (off: `measure` only runs the body).
    public var enabled = false
    /// Nanoseconds per label.
    public private(set) var nanoseconds: [String: UInt64] = [:]
    /// Labels in first-seen order.
    public private(set) var order: [String] = []
    /// Appended to every label (the student sets " (backward)" during its backward pass).
    var suffix = ""

    /// A timer, off until `enabled` is set.
    public init() {}

    /// Runs `body`, adding its wall time to `label` when enabled.
    @inline(__always)
    func measure<T>(_ label: String, _ body: () throws -> T) rethrows -> T {
        guard enabled else { return try body() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let r = try body()
        let dt = DispatchTime.now().uptimeNanoseconds - t0
        let key = suffix.isEmpty ? label : label + suffix
        if nanoseconds[key] == nil { order.append(key) }
        nanoseconds[key, default: 0] += dt
        return r
    }

    /// Clears every total.
    public func reset() { nanoseconds = [:]; order = [] }
}
