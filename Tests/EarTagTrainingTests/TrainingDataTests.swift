// Tests for the trainer's data boundary types.
import XCTest
@testable import EarTagTraining

final class TrainingDataTests: XCTestCase {
    /// The two splits are distinct and named as the metrics files name them.
    func testSplitNames() {
        XCTAssertEqual(DataSplit.allCases.map(\.rawValue), ["train", "validation"])
    }
}
