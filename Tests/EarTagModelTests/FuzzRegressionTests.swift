import XCTest
@testable import EarTagModel
import EarTagTestSupport

/// Replays every fuzz seed and every input that once crashed a model-file parser (Fuzz/corpus, Fuzz/regressions):
/// each must parse or throw, never trap, hang or over-allocate (docs/robustness.md).
final class FuzzRegressionTests: XCTestCase {
    /// Checks: the corpora are where the tests look (an empty replay would prove nothing).
    func testCorporaArePresent() {
        for t in ["checkpoint", "pickle", "safetensors", "npy", "labels"] {
            XCTAssertFalse(FuzzInputs.files(t).isEmpty, "Fuzz/corpus/\(t)")
        }
    }

    /// Checks: checkpoint seeds and regressions go through the zip reader, the unpickler and the tensor gather.
    func testCheckpointInputs() {
        for (path, bytes) in FuzzInputs.files("checkpoint") {
            _ = try? CheckpointImporter.readStateDict(bytes: bytes, name: path)
        }
        // The synthetic seed is a valid checkpoint: the replay reaches the tensor values.
        let tiny = FuzzInputs.file("corpus/checkpoint/tiny.pt") ?? []
        XCTAssertEqual(try CheckpointImporter.readStateDict(bytes: tiny, name: "tiny.pt")["conv.weight"]?.data, [1, 2, 3, 4])
    }

    /// Checks: a zero-stride view claiming 2^30 elements of a one-element storage is refused, not allocated.
    func testZeroStrideHugeTensorIsRefused() throws {
        let bytes = try XCTUnwrap(FuzzInputs.file("regressions/checkpoint/zero_stride_huge.pt"))
        XCTAssertThrowsError(try CheckpointImporter.readStateDict(bytes: bytes, name: "zero_stride_huge.pt")) { e in
            XCTAssertTrue("\(e)".contains("holds only 1"), "\(e)")
        }
    }

    /// Checks: a storage offset of Int.max is refused (offset + 1 used to trap).
    func testHugeStorageOffsetIsRefused() throws {
        let bytes = try XCTUnwrap(FuzzInputs.file("regressions/checkpoint/offset_overflow.pt"))
        XCTAssertThrowsError(try CheckpointImporter.readStateDict(bytes: bytes, name: "offset_overflow.pt")) { e in
            XCTAssertTrue("\(e)".contains("offset overflows"), "\(e)")
        }
    }

    /// Checks: pickle seeds and regressions through the restricted unpickler and the state-dict lookup.
    func testPickleInputs() {
        for (path, bytes) in FuzzInputs.files("pickle") {
            if let root = try? Unpickler(path: path).load(bytes[...]) {
                _ = try? CheckpointReader.stateDictEntries(root, path: path)
            }
        }
        let seed = FuzzInputs.file("corpus/pickle/state_dict.pkl") ?? []
        XCTAssertNoThrow(try CheckpointReader.stateDictEntries(try Unpickler(path: "s").load(seed[...]), path: "s"))
    }

    /// Checks: 200 000 nested tuples are refused at depth 100 (freeing them used to overflow the stack).
    func testDeepNestingIsRefused() throws {
        let bytes = try XCTUnwrap(FuzzInputs.file("regressions/pickle/deep_tuple_nesting.pkl"))
        XCTAssertThrowsError(try Unpickler(path: "deep").load(bytes[...])) { e in
            XCTAssertTrue("\(e)".contains("nested deeper than 100"), "\(e)")
        }
    }

    /// Checks: a list appended to itself and a dict changed after being nested are refused (no cycles, exact depths).
    func testCyclesAndLateChangesAreRefused() throws {
        for (name, expected) in [("list_cycle.pkl", "appended to itself"), ("nested_then_changed.pkl", "already placed")] {
            let bytes = try XCTUnwrap(FuzzInputs.file("regressions/pickle/\(name)"))
            XCTAssertThrowsError(try Unpickler(path: name).load(bytes[...])) { e in
                XCTAssertTrue("\(e)".contains(expected), "\(name): \(e)")
            }
        }
    }

    /// Checks: safetensors seeds and regressions through the parser and the float / int8 model validation.
    func testSafetensorsInputs() {
        for (path, bytes) in FuzzInputs.files("safetensors") {
            if let file = try? SafetensorsFile.parse(bytes, path: path) {
                _ = try? AnyModel.load(file: file, path: path)
                _ = try? QuantizedModel.load(file: file, path: path)
                for t in file.tensors.values { _ = t.float32Values() }
            }
        }
        let plain = FuzzInputs.file("corpus/safetensors/plain.safetensors") ?? []
        XCTAssertEqual(try SafetensorsFile.parse(plain, path: "plain").tensors["w"]?.float32Values(), [1, 2, 3, 4])
    }

    /// Checks: .npy seeds and regressions.
    func testNumpyInputs() {
        for (path, bytes) in FuzzInputs.files("npy") { _ = try? NumpyArray.parse(bytes, name: path) }
        let f4 = FuzzInputs.file("corpus/npy/f4.npy") ?? []
        XCTAssertEqual(try NumpyArray.parse(f4, name: "f4").shape, [2, 3])
    }

    /// Checks: label CSV seeds and regressions.
    func testLabelInputs() {
        for (path, bytes) in FuzzInputs.files("labels") {
            _ = try? LabelFile.parse(String(decoding: bytes, as: UTF8.self), path: path)
        }
        let csv = FuzzInputs.file("corpus/labels/labels.csv") ?? []
        XCTAssertEqual(try LabelFile.parse(String(decoding: csv, as: UTF8.self), path: "l").map(\.displayName),
                       ["Speech", "Dog", "Say \"hi\", then"])
    }
}

extension FuzzRegressionTests {
    /// Checks: a `.npy` header whose shape has ")" before "(" is refused (it trapped on an inverted range).
    func testNumpyShapeWithCloseBeforeOpenIsRefused() throws {
        let bytes = try XCTUnwrap(FuzzInputs.file("regressions/npy/shape_close_before_open.npy"))
        XCTAssertThrowsError(try NumpyArray.parse(bytes, name: "bad.npy"))
    }
}
