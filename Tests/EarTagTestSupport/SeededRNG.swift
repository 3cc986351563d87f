// The seeded random generator every randomized test uses, so that a failure can be replayed from its printed seed.

/// SplitMix64 (Steele, Lea and Flood 2014): a small, fast, seeded generator; the same sequence on every platform.
/// ref: https://prng.di.unimi.it/splitmix64.c
public struct SeededRNG: RandomNumberGenerator {
    public var state: UInt64
    /// Starts the sequence at `state`.
    public init(state: UInt64) { self.state = state }
    /// Starts the sequence at `seed` (the same as `init(state:)`).
    public init(seed: UInt64) { state = seed }
    /// Next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
