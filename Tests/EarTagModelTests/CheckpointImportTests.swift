import XCTest
@testable import EarTagModel
import EarTagTestSupport

/// Imports the official mn04_as checkpoint and the three random-weight variants, checking the inferred architectures.
final class CheckpointImportTests: XCTestCase {
    /// Expected per-block (kernel, in, expanded, out, se) of mn04_as, as the checkpoint's shapes show.
    static let mn04Blocks: [(Int, Int, Int, Int, Int?)] = [
        (3, 8, 8, 8, nil), (3, 8, 24, 16, nil), (3, 16, 32, 16, nil), (5, 16, 32, 16, 8), (5, 16, 48, 16, 16),
        (5, 16, 48, 16, 16), (3, 16, 96, 32, nil), (3, 32, 80, 32, nil), (3, 32, 72, 32, nil), (3, 32, 72, 32, nil),
        (3, 32, 192, 48, 48), (3, 48, 272, 48, 72), (5, 48, 272, 64, 72), (5, 64, 384, 64, 96), (5, 64, 384, 64, 96),
    ]

    /// Checks: reads all 312 entries of MN 04.
    func testReadsAll312EntriesOfMN04() throws {
        let path = try Reference.path("efficientat/mn04_as_mAP_432.pt")
        let reader = try CheckpointReader(path: path)
        XCTAssertEqual(reader.entries.count, 312)
        XCTAssertEqual(reader.top, "archive")
        XCTAssertEqual(reader.entries.filter { $0.name.hasSuffix("num_batches_tracked") }.count, 46)
        let sd = try reader.stateDict()
        XCTAssertEqual(sd.count, 266)
    }

    /// Checks: MN 04 architecture and values.
    func testMN04ArchitectureAndValues() throws {
        let path = try Reference.path("efficientat/mn04_as_mAP_432.pt")
        let labelsPath = try Reference.path("efficientat/class_labels_indices.csv")
        let model = try CheckpointImporter.importCheckpoint(path: path, labelsPath: labelsPath, name: nil)
        let a = model.architecture
        XCTAssertEqual(model.name, "mn04_as")
        XCTAssertEqual(a.widthMult, 0.4)
        XCTAssertEqual(a.stemChannels, 8)
        XCTAssertEqual(a.inputChannels, 1)
        XCTAssertEqual(a.blocks.count, 15)
        for (i, (b, e)) in zip(a.blocks, Self.mn04Blocks).enumerated() {
            XCTAssertEqual(b.kernel, e.0, "block \(i + 1)")
            XCTAssertEqual(b.inputChannels, e.1, "block \(i + 1)")
            XCTAssertEqual(b.expandedChannels, e.2, "block \(i + 1)")
            XCTAssertEqual(b.outputChannels, e.3, "block \(i + 1)")
            XCTAssertEqual(b.seChannels, e.4, "block \(i + 1)")
            XCTAssertEqual(b.activation, i < 6 ? .relu : .hardswish, "block \(i + 1)")
            XCTAssertEqual(b.stride, [1, 3, 6, 12].contains(i) ? 2 : 1, "block \(i + 1)")
            XCTAssertEqual(b.dilation, 1)
        }
        XCTAssertEqual(a.blocks.map(\.hasExpand), [false] + Array(repeating: true, count: 14))
        XCTAssertEqual(a.lastConvChannels, 384)
        XCTAssertEqual(a.head, .mlp)
        XCTAssertEqual(a.headHiddenChannels, 512)
        XCTAssertEqual(a.numClasses, 527)
        XCTAssertEqual(a.seDims, ["c"])
        XCTAssertEqual(a.strides, [2, 2, 2, 2])
        XCTAssertFalse(a.dilated)
        XCTAssertEqual(a.batchNormEps, 0.001)
        XCTAssertEqual(a.embeddingSize, 384)
        XCTAssertEqual(model.labels.count, 527)
        XCTAssertEqual(model.labels[0], Label(index: 0, mid: "/m/09x0r", displayName: "Speech"))
        XCTAssertEqual(model.labels[1].displayName, "Male speech, man speaking")
        XCTAssertEqual(model.sourceSHA256, "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c")
        XCTAssertEqual(model.frontend, .efficientAT)

        // Every expected tensor is present with its shape, and nothing else.
        let expected = a.expectedTensorShapes()
        XCTAssertEqual(expected.count, 266)
        XCTAssertEqual(Set(expected.keys), Set(model.tensors.keys))
        for (n, s) in expected { XCTAssertEqual(model.tensors[n]?.shape, s, n) }

        // Values checked against numpy (float64 sums of the raw float32 storages).
        let stem = try XCTUnwrap(model.tensors["features.0.0.weight"])
        XCTAssertEqual(stem.shape, [8, 1, 3, 3])
        XCTAssertEqual(Array(stem.data.prefix(4)), [-0.07442086189985275, -0.027609283104538918, 0.08542410284280777,
                                                     -0.24450913071632385])
        XCTAssertEqual(stem.data.reduce(0.0) { $0 + Double($1) }, -0.4284143541008234, accuracy: 1e-9)
        XCTAssertEqual(stem.data.reduce(0.0) { $0 + Double(abs($1)) }, 82.99751335568726, accuracy: 1e-9)
        let bias = try XCTUnwrap(model.tensors["classifier.5.bias"])
        XCTAssertEqual(Array(bias.data.prefix(3)), [-0.37003156542778015, -1.2034666538238525, -1.2659019231796265])
        XCTAssertEqual(bias.data.reduce(0.0) { $0 + Double($1) }, -424.5878258557059, accuracy: 1e-7)
        let runningVar = try XCTUnwrap(model.tensors["features.16.1.running_var"])
        XCTAssertEqual(runningVar.data.reduce(0.0) { $0 + Double($1) }, 2383.1967480182648, accuracy: 1e-6)
    }

    /// Checks: read state dict matches import.
    func testReadStateDictMatchesImport() throws {
        let path = try Reference.path("efficientat/mn04_as_mAP_432.pt")
        let sd = try CheckpointImporter.readStateDict(path: path)
        XCTAssertEqual(sd.count, 266)
        XCTAssertNil(sd["features.0.1.num_batches_tracked"])
        XCTAssertEqual(sd["classifier.2.weight"]?.shape, [512, 384])
        // Without labelsPath the importer finds class_labels_indices.csv beside the checkpoint.
        let model = try CheckpointImporter.importCheckpoint(path: path, labelsPath: nil, name: "x")
        XCTAssertEqual(model.labels.count, 527)
        XCTAssertEqual(model.labels[526].index, 526)
        // A 527-class variant with no labels beside it needs --labels.
        let variant = try Reference.path("variants/mn02_fc_c_random.pt")
        XCTAssertThrowsError(try CheckpointImporter.importCheckpoint(path: variant, labelsPath: nil, name: nil)) { e in
            XCTAssertEqual(e as? ModelError, .labelsRequired(path: variant))
        }
    }

    /// Checks: variant MN 01 MLP.
    func testVariantMN01MLP() throws {
        let path = try Reference.path("variants/mn01_mlp_c_random.pt")
        let model = try CheckpointImporter.importCheckpoint(
            path: path, labelsPath: try Reference.path("efficientat/class_labels_indices.csv"), name: nil)
        let a = model.architecture
        XCTAssertEqual(model.name, "mn01_mlp_c_random")
        XCTAssertEqual(a.widthMult, 0.1)
        XCTAssertEqual(a.head, .mlp)
        XCTAssertEqual(a.headHiddenChannels, 128)
        XCTAssertEqual(a.numClasses, 527)
        XCTAssertEqual(a.seDims, ["c"])
        XCTAssertEqual(a.lastConvChannels, 96)
        // Width 0.1 drops the expand conv of blocks 1, 2, 3 and 4 (expanded == input == 8).
        XCTAssertEqual(a.blocks.map(\.hasExpand), [false, false, false, false] + Array(repeating: true, count: 11))
        XCTAssertEqual(a.blocks[3].seChannels, 8)
        XCTAssertEqual(Set(a.expectedTensorShapes().keys), Set(model.tensors.keys))
    }

    /// Checks: variant MN 02 fully convolutional.
    func testVariantMN02FullyConvolutional() throws {
        let path = try Reference.path("variants/mn02_fc_c_random.pt")
        let model = try CheckpointImporter.importCheckpoint(
            path: path, labelsPath: try Reference.path("efficientat/class_labels_indices.csv"), name: "fc")
        let a = model.architecture
        XCTAssertEqual(model.name, "fc")
        XCTAssertEqual(a.widthMult, 0.2)
        XCTAssertEqual(a.head, .fullyConvolutional)
        XCTAssertNil(a.headHiddenChannels)
        XCTAssertEqual(a.numClasses, 527)
        XCTAssertEqual(a.lastConvChannels, 192)
        XCTAssertEqual(model.tensors["classifier.0.weight"]?.shape, [527, 192, 1, 1])
        XCTAssertEqual(model.tensors["classifier.1.running_var"]?.shape, [527])
        XCTAssertEqual(Set(a.expectedTensorShapes().keys), Set(model.tensors.keys))
    }

    /// Checks: variant MN 02 no SE strides 2212 with 50 classes.
    func testVariantMN02NoSEStrides2212With50Classes() throws {
        let path = try Reference.path("variants/mn02_mlp_nose_s2212_c50_random.pt")
        // No labels beside the variant: 50 classes get generic labels.
        let model = try CheckpointImporter.importCheckpoint(path: path, strides: [2, 2, 1, 2], labelsPath: nil, name: nil)
        let a = model.architecture
        XCTAssertEqual(a.widthMult, 0.2)
        XCTAssertEqual(a.seDims, [])
        XCTAssertTrue(a.blocks.allSatisfy { $0.seChannels == nil })
        XCTAssertEqual(a.strides, [2, 2, 1, 2])
        XCTAssertEqual(a.blocks.map(\.stride), [1, 2, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1])
        XCTAssertEqual(a.numClasses, 50)
        XCTAssertEqual(a.headHiddenChannels, 256)
        XCTAssertEqual(model.labels.count, 50)
        XCTAssertEqual(model.labels[7], Label(index: 7, mid: "", displayName: "class_7"))
        XCTAssertEqual(Set(a.expectedTensorShapes().keys), Set(model.tensors.keys))
    }

    /// Checks: dilated changes only the last stage.
    func testDilatedChangesOnlyTheLastStage() throws {
        let a = try Architecture.efficientAT(widthMult: 0.4, head: .mlp, numClasses: 527, channelSE: true,
                                             strides: [2, 2, 2, 2], dilated: true)
        XCTAssertEqual(a.blocks.map(\.dilation), Array(repeating: 1, count: 12) + [2, 2, 2])
        XCTAssertEqual(a.blocks.map(\.stride), [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1])
    }

    /// Checks: default names.
    func testDefaultNames() {
        XCTAssertEqual(CheckpointImporter.defaultName(for: "/x/mn04_as_mAP_432.pt"), "mn04_as")
        XCTAssertEqual(CheckpointImporter.defaultName(for: "mn10_as_fc_s2221_mAP_466.pt"), "mn10_as_fc_s2221")
        XCTAssertEqual(CheckpointImporter.defaultName(for: "a/b/mn02_fc_c_random.pt"), "mn02_fc_c_random")
        XCTAssertEqual(CheckpointImporter.defaultName(for: "mine_mAP_x.pt"), "mine_mAP_x")
    }

    /// Checks: make divisible.
    func testMakeDivisible() {
        XCTAssertEqual(makeDivisible(16 * 0.4), 8)
        XCTAssertEqual(makeDivisible(120 * 0.4), 48)
        XCTAssertEqual(makeDivisible(672 * 0.4), 272)
        XCTAssertEqual(makeDivisible(1280 * 0.4), 512)
        XCTAssertEqual(makeDivisible(3), 8)
        XCTAssertEqual(makeDivisible(1280 * 0.1), 128)
    }
}
