import XCTest
import EarTagModel
@testable import EarTagEvents
import EarTagTestSupport

/// Replays the `labels` fuzz seeds and regressions through the threshold-file parser (docs/robustness.md).
final class ThresholdFuzzRegressionTests: XCTestCase {
    /// Checks: each input parses or throws, with the labels it defines or a small fixed set.
    func testThresholdInputs() {
        let fallback = (0..<4).map { Label(index: $0, mid: "/m/\($0)", displayName: "Class \($0)") }
        let inputs = FuzzInputs.files("labels")
        XCTAssertFalse(inputs.isEmpty)
        for (path, bytes) in inputs {
            let text = String(decoding: bytes, as: UTF8.self)
            let labels = (try? LabelFile.parse(text, path: path)) ?? fallback
            _ = try? ThresholdFile.parse(text, path: path, selector: LabelSelector(labels: labels))
        }
        let t = FuzzInputs.file("corpus/labels/thresholds.csv") ?? []
        XCTAssertEqual(try ThresholdFile.parse(String(decoding: t, as: UTF8.self), path: "t",
                                               selector: LabelSelector(labels: fallback)).count, 3)
    }
}
