import XCTest
import EarTagModel
import EarTagTestSupport

/// Round trips and golden reads of the `.npy` reader and writer.
final class NumpyArrayTests: XCTestCase {
    func testRoundTripKeepsShapeAndValues() throws {
        let a = NumpyArray(shape: [2, 3], data: [1, -2.5, 3, 4, .pi, -0])
        let b = try NumpyArray.parse(a.serialized(), name: "mem")
        XCTAssertEqual(a, b)
        let v = NumpyArray(shape: [4], data: [1, 2, 3, 4])
        XCTAssertEqual(try NumpyArray.parse(v.serialized(), name: "mem"), v)
    }

    func testGoldenMelHas128Bins() throws {
        let mel = try Reference.npy("golden/speech.mel.npy")
        XCTAssertEqual(mel.shape, [128, 1000])
        XCTAssertEqual(mel.data.count, 128 * 1000)
    }

    func testRejectsBadMagicAndTruncation() throws {
        XCTAssertThrowsError(try NumpyArray.parse([1, 2, 3], name: "x.npy")) { e in
            XCTAssertEqual(e as? NumpyArray.Error, .notNpy("x.npy"))
        }
        var bytes = NumpyArray(shape: [8], data: Array(repeating: 1, count: 8)).serialized()
        bytes.removeLast(5)
        XCTAssertThrowsError(try NumpyArray.parse(bytes, name: "t.npy")) { e in
            XCTAssertEqual(e as? NumpyArray.Error, .truncated("t.npy"))
        }
    }
}
