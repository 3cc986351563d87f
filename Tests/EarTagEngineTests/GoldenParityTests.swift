// FloatEngine against EfficientAT's own PyTorch outputs: per-layer features, golden clips, random-weight variants.
import XCTest
import Foundation
import EarTagModel
import EarTagTestSupport
@testable import EarTagEngine

/// The imported official mn04_as, shared by the tests of this file (importing takes a moment).
private let mn04Result: Result<FloatModel, Error> = Result {
    let labels = try Reference.path("efficientat/class_labels_indices.csv")
    return try CheckpointImporter.importCheckpoint(path: try Reference.path("efficientat/mn04_as_mAP_432.pt"),
                                                   labelsPath: labels, name: nil)
}

/// Parity with EfficientAT's PyTorch outputs (skipped when ../shared/reference is absent, failing under CI).
final class GoldenParityTests: XCTestCase {
    /// The official model, or a skip/throw when the reference is missing.
    func mn04() throws -> FloatModel { try mn04Result.get() }

    /// Reads a golden mel, returning its values and frame count.
    func mel(_ relative: String) throws -> ([Float], Int) {
        let m = try Reference.npy(relative)
        XCTAssertEqual(m.shape.count, 2)
        XCTAssertEqual(m.shape[0], 128)
        return (m.data, m.shape[1])
    }

    func testExcerptFeatureLayers() throws {
        let model = try mn04()
        let (input, frames) = try mel("golden/excerpt.mel.npy")
        let engine = try FloatEngine(model: model, maxFrames: frames)
        let features = engine.runCapturingFeatures(mel: input, frames: frames)
        XCTAssertEqual(features.count, 17)
        var report: [String] = []
        for (i, f) in features.enumerated() {
            let name = String(format: "golden/excerpt_layers/features_%02d.npy", i)
            let golden = try Reference.npy(name)
            let d = maxAbsDifference(f, golden.data)
            report.append(String(format: "%02d:%.2e", i, d))
            XCTAssertLessThanOrEqual(d, 1e-3, "\(name) shape \(golden.shape)")
        }
        print("features max |diff|: " + report.joined(separator: " "))
    }

    func testGoldenClipsLogitsAndEmbeddings() throws {
        let model = try mn04()
        let engine = try FloatEngine(model: model, maxFrames: 1001)
        for clip in ["excerpt", "speech", "music", "typing", "metro_station-paris"] {
            let (input, frames) = try mel("golden/\(clip).mel.npy")
            let (logits, embedding) = engine.run(mel: input, frames: frames)
            let gl = try Reference.npy("golden/\(clip).logits.npy").data
            let ge = try Reference.npy("golden/\(clip).embedding.npy").data
            let dl = maxAbsDifference(logits, gl), de = maxAbsDifference(embedding, ge)
            print("\(clip) (\(frames) frames): logits max |diff| \(dl), embedding max |diff| \(de)")
            XCTAssertLessThanOrEqual(dl, 1e-3, clip)
            XCTAssertLessThanOrEqual(de, 1e-3, clip)
        }
    }

    func testThreadedEngineMatchesGolden() throws {
        let model = try mn04()
        let engine = try FloatEngine(model: model, maxFrames: 1000, threads: 2)
        let (input, frames) = try mel("golden/speech.mel.npy")
        let (logits, embedding) = engine.run(mel: input, frames: frames)
        XCTAssertLessThanOrEqual(maxAbsDifference(logits, try Reference.npy("golden/speech.logits.npy").data), 1e-3)
        XCTAssertLessThanOrEqual(maxAbsDifference(embedding, try Reference.npy("golden/speech.embedding.npy").data), 1e-3)
    }

    func testRandomVariants() throws {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath:
            try Reference.path("variants/variants.json")))) as! [String: [String: Any]]
        let (input, frames) = try mel("golden/excerpt.mel.npy")
        XCTAssertEqual(json.count, 3)
        for (name, entry) in json.sorted(by: { $0.key < $1.key }) {
            let config = entry["config"] as! [String: Any]
            let strides = (config["strides"] as? [Int]) ?? [2, 2, 2, 2]
            let range = entry["logit_range"] as! [Double]
            let classes = config["num_classes"] as? Int
            // 527-class variants use the AudioSet labels; the 50-class one gets generic labels.
            let labels = classes == 527 ? try Reference.path("efficientat/class_labels_indices.csv") : nil
            let model = try CheckpointImporter.importCheckpoint(path: try Reference.path("variants/\(name).pt"),
                                                                strides: strides, labelsPath: labels, name: name)
            XCTAssertEqual(model.architecture.numClasses, classes, name)
            let engine = try FloatEngine(model: model, maxFrames: frames)
            let (logits, embedding) = engine.run(mel: input, frames: frames)
            let gl = try Reference.npy("variants/\(name).excerpt.logits.npy").data
            let ge = try Reference.npy("variants/\(name).excerpt.embedding.npy").data
            let dl = maxAbsDifference(logits, gl), de = maxAbsDifference(embedding, ge)
            let tolerance = Float(1e-4 * (range[1] - range[0]))
            let embeddingScale = max(1, ge.map(abs).max() ?? 0)
            print("\(name): logits max |diff| \(dl) (tolerance \(tolerance)), embedding max |diff| \(de) (max |e| \(embeddingScale))")
            XCTAssertLessThanOrEqual(dl, tolerance, name)
            XCTAssertLessThanOrEqual(de, 1e-4 * embeddingScale, name)
        }
    }

    func testImportedModelValidatesAndCountsMACs() throws {
        let model = try mn04()
        let engine = try FloatEngine(model: model, maxFrames: 1000)
        XCTAssertEqual(engine.numClasses, 527)
        XCTAssertEqual(engine.embeddingSize, 384)
        let macs = engine.multiplyAccumulates(frames: 1000)
        print("mn04_as MACs for 1000 frames: \(macs)")
        XCTAssert((100_000_000...130_000_000).contains(macs), "\(macs)")
    }

    func testCheckpointWithMissingOrMisshapenTensorIsRefusedByName() throws {
        var model = try mn04()
        let victim = "features.12.block.2.conc_se_layers.0.fc2.weight"
        XCTAssertNotNil(model.tensors[victim])
        let saved = model.tensors[victim]!
        model.tensors[victim] = nil
        XCTAssertThrowsError(try FloatEngine(model: model, maxFrames: 10)) { XCTAssert("\($0)".contains(victim), "\($0)") }
        model.tensors[victim] = Tensor(shape: [saved.shape[1], saved.shape[0]], data: saved.data)
        XCTAssertThrowsError(try FloatEngine(model: model, maxFrames: 10)) { XCTAssert("\($0)".contains(victim), "\($0)") }
    }
}
