// The ring between a source and the processing loop is sized by the hop, not by the window.
import XCTest
import EarTagPipeline

/// Checks `ListenRunner.ringCapacity`.
final class RingSizingTests: XCTestCase {
    /// Lossless sources hold two hops; live capture one hop plus the 2 s of lateness tolerated before dropping.
    func testRingHoldsHopsNotWindows() {
        XCTAssertEqual(ListenRunner.ringCapacity(hopSamples: 32000, live: false), 64000)
        XCTAssertEqual(ListenRunner.ringCapacity(hopSamples: 32000, live: true), 32000 + 64000)
        XCTAssertEqual(ListenRunner.ringCapacity(hopSamples: 320, live: true), 320 + 64000, "a tiny hop keeps the slack")
        XCTAssertEqual(ListenRunner.liveSlackSeconds, 2)
    }
}
