import XCTest
@testable import EarTagModel
import EarTagTestSupport

/// Safetensors writer/reader and the EarTag float model file: round trips and refusal of corrupt files.
final class SafetensorsTests: XCTestCase {
    var dir: URL!

    /// Creates a fresh temporary directory.
    override func setUpWithError() throws { dir = try makeTemporaryDirectory("eartag-st") }
    /// Removes the temporary directory.
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A small synthetic model (width 0.1, 3 classes) with deterministic values.
    func smallModel() throws -> FloatModel {
        let arch = try Architecture.efficientAT(widthMult: 0.1, head: .mlp, numClasses: 3, channelSE: true)
        var tensors: [String: Tensor] = [:]
        var k: Float = 0
        for (name, shape) in arch.expectedTensorShapes().sorted(by: { $0.key < $1.key }) {
            let n = shape.reduce(1, *)
            tensors[name] = Tensor(shape: shape, data: (0..<n).map { i in k += 1; return sin(k) * Float(i % 5) })
        }
        let labels = [Label(index: 0, mid: "/m/a", displayName: "A, with comma"),
                      Label(index: 1, mid: "", displayName: "Quote \" and \\ backslash"),
                      Label(index: 2, mid: "/m/c", displayName: "Ünïcödé")]
        return FloatModel(architecture: arch, frontend: .efficientAT, labels: labels, tensors: tensors,
                          sourceSHA256: String(repeating: "ab", count: 32), name: "tiny")
    }

    /// Asserts two models are equal field by field.
    func assertEqualModels(_ a: FloatModel, _ b: FloatModel, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.architecture, b.architecture, file: file, line: line)
        XCTAssertEqual(a.frontend, b.frontend, file: file, line: line)
        XCTAssertEqual(a.labels, b.labels, file: file, line: line)
        XCTAssertEqual(a.tensors, b.tensors, file: file, line: line)
        XCTAssertEqual(a.sourceSHA256, b.sourceSHA256, file: file, line: line)
        XCTAssertEqual(a.name, b.name, file: file, line: line)
    }

    /// Checks: model round trip.
    func testModelRoundTrip() throws {
        let model = try smallModel()
        let path = dir.appendingPathComponent("tiny.safetensors").path
        try ModelFile.save(model, to: path)
        let loaded = try ModelFile.load(path: path)
        assertEqualModels(model, loaded)
        // The header is 8-byte aligned and carries the documented metadata keys.
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let n = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        XCTAssertEqual((8 + n) % 8, 0)
        let file = try SafetensorsFile.read(path: path)
        XCTAssertEqual(file.metadata["format"], "eartag.float.v1")
        XCTAssertEqual(Set(file.metadata.keys), ["format", "eartag.architecture", "eartag.frontend", "eartag.labels",
                                                 "eartag.name", "eartag.source_sha256"])
        XCTAssertTrue(file.tensors.values.allSatisfy { $0.dtype == .f32 })
        // Saving again gives identical bytes (deterministic layout).
        let path2 = dir.appendingPathComponent("tiny2.safetensors").path
        try ModelFile.save(loaded, to: path2)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path2)), Data(bytes))
    }

    /// Checks: MN 04 round trip.
    func testMN04RoundTrip() throws {
        let model = try CheckpointImporter.importCheckpoint(
            path: try Reference.path("efficientat/mn04_as_mAP_432.pt"),
            labelsPath: try Reference.path("efficientat/class_labels_indices.csv"), name: nil)
        let path = dir.appendingPathComponent("mn04_as.safetensors").path
        try ModelFile.save(model, to: path)
        assertEqualModels(model, try ModelFile.load(path: path))
    }

    /// Checks: generic tensors round trip.
    func testGenericTensorsRoundTrip() throws {
        let file = SafetensorsFile(metadata: ["k": "v"], tensors: [
            "a": SafetensorsTensor(dtype: .i8, shape: [3], bytes: [1, 2, 255]),
            "b": SafetensorsTensor(dtype: .i32, shape: [1, 2], bytes: [1, 0, 0, 0, 2, 0, 0, 0]),
            "empty": SafetensorsTensor(dtype: .u8, shape: [0, 4], bytes: []),
            "s": SafetensorsTensor(float32: Tensor(shape: [], data: [1.5])),
        ])
        XCTAssertEqual(try SafetensorsFile.parse(file.serialized(), path: "mem"), file)
    }

    /// Builds a raw safetensors file from a header string and data bytes.
    func raw(_ header: String, _ data: [UInt8] = [], length: UInt64? = nil) -> [UInt8] {
        let h = Array(header.utf8)
        let n = length ?? UInt64(h.count)
        return (0..<8).map { UInt8((n >> (8 * UInt64($0))) & 0xFF) } + h + data
    }

    /// Checks: corrupt safetensors refused.
    func testCorruptSafetensorsRefused() {
        let cases: [([UInt8], String)] = [
            ([1, 2, 3], "shorter than"),
            (raw("{}", length: 1 << 40), "exceeds the 104857600-byte limit"),
            (raw("{}", length: 500), "exceeds the file"),
            (raw("{\"a\": [1, 2"), "not valid JSON"),
            (raw("[1, 2, 3]"), "does not start with '{'"),
            (raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", [0, 0, 0, 0]), "outside"),
            (raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", [UInt8](repeating: 0, count: 8)),
             "needs 12 bytes but data_offsets span 8"),
            (raw("{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", [UInt8](repeating: 0, count: 8)),
             "unknown dtype"),
            (raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", [UInt8](repeating: 0, count: 8)),
             "invalid shape"),
            (raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", [UInt8](repeating: 0, count: 12)),
             "overlaps"),
            (raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", [UInt8](repeating: 0, count: 8)),
             "not covered"),
            (raw("{\"__metadata__\":{\"k\":3}}"), "metadata 'k' is not a string"),
        ]
        for (bytes, fragment) in cases {
            XCTAssertThrowsError(try SafetensorsFile.parse(bytes, path: "bad.safetensors"), fragment) { e in
                let text = "\(e)"
                XCTAssertTrue(text.contains("bad.safetensors") && text.contains(fragment), text)
                XCTAssertFalse(text.contains("\n"))
            }
        }
    }

    /// Checks: invalid model files refused.
    func testInvalidModelFilesRefused() throws {
        let model = try smallModel()
        let good = try SafetensorsFile(metadata: ModelFile.metadata(of: model),
                                       tensors: model.tensors.mapValues { SafetensorsTensor(float32: $0) })
        /// Writes `f` and asserts loading it fails with `fragment`.
        func refuse(_ f: SafetensorsFile, _ fragment: String, line: UInt = #line) throws {
            let path = dir.appendingPathComponent("m.safetensors").path
            try f.write(to: path)
            XCTAssertThrowsError(try ModelFile.load(path: path), line: line) { e in
                let text = "\(e)"
                XCTAssertTrue(text.contains(path) && text.contains(fragment), text, line: line)
            }
        }
        var f = good; f.metadata = [:]
        try refuse(f, "metadata 'format' is missing")
        f = good; f.metadata["format"] = "other.v9"
        try refuse(f, "format 'other.v9'")
        f = good; f.metadata["eartag.architecture"] = nil
        try refuse(f, "metadata 'eartag.architecture' is missing")
        f = good; f.metadata["eartag.labels"] = "[{\"index\": 0}]"
        try refuse(f, "metadata 'eartag.labels' is not valid")
        f = good; f.metadata["eartag.name"] = nil
        try refuse(f, "metadata 'eartag.name' is missing")
        f = good; f.tensors["classifier.5.bias"] = nil
        try refuse(f, "tensor 'classifier.5.bias' is missing")
        f = good; f.tensors["classifier.5.bias"] = SafetensorsTensor(float32: Tensor(shape: [4], data: [0, 0, 0, 0]))
        try refuse(f, "tensor 'classifier.5.bias' has shape [4], expected [3]")
        f = good; f.tensors["classifier.5.bias"] = SafetensorsTensor(dtype: .i32, shape: [3], bytes: [UInt8](repeating: 0, count: 12))
        try refuse(f, "tensor 'classifier.5.bias' is I32, expected F32")
        f = good; f.tensors["extra"] = SafetensorsTensor(float32: Tensor(shape: [1], data: [0]))
        try refuse(f, "unexpected tensor 'extra'")
    }
}
