// The quantizer's range helpers: the radix sort behind the percentile and MSE ranges against Swift's sort.
import XCTest
import EarTagTestSupport
@testable import EarTagEngine

final class QuantizerRangeTests: XCTestCase {
    /// `Observer.radixSorted` equals `sorted()` over random arrays mixing signs, zeros of both signs, infinities,
    /// subnormals, duplicates and lengths 0, 1, 2 and odd sizes (compared as bit patterns, where -0 sorts first).
    func testRadixSortEqualsSorted() {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRNG(state: seed)
        let specials: [Float] = [0, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude, -.leastNonzeroMagnitude,
                                 .greatestFiniteMagnitude, -.greatestFiniteMagnitude, 1, -1]
        for n in [0, 1, 2, 3, 17, 1000, 4097, 100_003] {
            let values: [Float] = (0..<n).map { _ in
                switch rng.next() % 4 {
                case 0: return specials[Int(rng.next() % UInt64(specials.count))]
                case 1: return Float(Int(rng.next() % 7) - 3)            // duplicates
                default: return Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()) & 0xBFFF_FFFF)  // no NaN
                }
            }
            let got = Observer.radixSorted(values)
            // Reference: sorted(), with -0 before +0 where they meet (they compare equal).
            let want = values.sorted { $0 < $1 || ($0 == 0 && $1 == 0 && $0.sign == .minus && $1.sign == .plus) }
            XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "n \(n), seed \(seed)")
        }
    }
}
