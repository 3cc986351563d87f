// Model files that parse but are hostile: the `model_metadata` and `engine` fuzz inputs replayed exactly as the
// targets build them (Fuzz/model_metadata.swift, Fuzz/engine.swift), and the load-time bounds they led to
// (docs/robustness.md, findings 10-12).
import XCTest
import Foundation
import EarTagTestSupport
@testable import EarTagModel
@testable import EarTagEngine

/// Builds model files from fuzz inputs the way the two targets do.
enum HostileModelInputs {
    /// The `engine` target's four architectures (mn01 mlp + SE, mn01 fully convolutional 2,1,2,1 without SE, and
    /// two hand-built 1-channel ones).
    static let architectures: [Architecture] = {
        let one = BlockSpec(kernel: 3, inputChannels: 1, expandedChannels: 1, outputChannels: 1, seChannels: nil,
                            activation: .relu, stride: 1, dilation: 1)
        let wide = BlockSpec(kernel: 5, inputChannels: 1, expandedChannels: 4, outputChannels: 2, seChannels: 1,
                             activation: .hardswish, stride: 2, dilation: 1)
        return [try! Architecture.efficientAT(widthMult: 0.1, head: .mlp, numClasses: 3, channelSE: true),
                try! Architecture.efficientAT(widthMult: 0.1, head: .fullyConvolutional, numClasses: 2, channelSE: false,
                                              strides: [2, 1, 2, 1]),
                Architecture(widthMult: 0.01, stemChannels: 1, blocks: [one], lastConvChannels: 1, head: .mlp,
                             headHiddenChannels: 1, numClasses: 1, seDims: [], strides: [2, 2, 2, 2], dilated: false),
                Architecture(widthMult: 0.01, stemChannels: 1, blocks: [one, wide], lastConvChannels: 3,
                             head: .fullyConvolutional, headHiddenChannels: nil, numClasses: 2, seDims: ["c"],
                             strides: [2, 2, 2, 2], dilated: false)]
    }()
    static let specialFloats: [Float] = [0, .nan, .infinity, -.infinity, .greatestFiniteMagnitude,
                                         -.greatestFiniteMagnitude, 1e30, -1e30, .leastNonzeroMagnitude,
                                         .leastNormalMagnitude, 1e-30, -0.0, 1, -1, 65504, 1e-7]
    static let specialInts: [Int32] = [0, 1 << 30, -(1 << 30), (1 << 30) + 1, -(1 << 30) - 1, .max, .min, 127, -128,
                                       128, -129, 255, -255, 1, -1, 1 << 24]

    /// Little-endian bytes of an integer.
    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

    /// JSON text of a value.
    static func json<T: Encodable>(_ v: T) -> String { String(decoding: try! JSONEncoder().encode(v), as: UTF8.self) }

    /// The `engine` target's model file for `input`, with the frame count it runs.
    static func engineFile(_ input: [UInt8]) -> (file: SafetensorsFile, frames: Int)? {
        guard let mode = input.first.map(Int.init) else { return nil }
        let arch = architectures[mode & 3], int8 = mode & 4 != 0
        let frames = [1, 2, 3, 4, 8, 31, 64, 256][(mode >> 3) & 7]
        var frontend = FrontendSettings()
        frontend.nMels = [128, 1, 2, 16][(mode >> 6) & 3]
        let stream = Array(input.dropFirst())
        var cursor = 0
        /// The next value byte, cycling.
        func next() -> UInt8 {
            guard !stream.isEmpty else { return 0x8C }
            defer { cursor += 1 }
            return stream[cursor % stream.count]
        }
        /// A hostile-leaning float.
        func float() -> Float { let b = next(); return b < 16 ? specialFloats[Int(b)] : Float(Int(b) - 136) / 32 }
        var meta = ["eartag.name": "fuzz", "eartag.frontend": json(frontend), "eartag.architecture": json(arch),
                    "eartag.labels": json((0..<arch.numClasses).map { Label(index: $0, mid: "/m/\($0)", displayName: "c\($0)") })]
        var tensors: [String: SafetensorsTensor] = [:]
        if int8 {
            meta["format"] = QuantizedModel.format
            for (name, spec) in QuantizedModel.expectedTensors(arch).sorted(by: { $0.key < $1.key }) {
                var bytes: [UInt8] = []
                for _ in 0..<spec.shape.reduce(1, *) {
                    switch spec.dtype {
                    case .i8: bytes += le(Int8(truncatingIfNeeded: Int(next()) - 128))
                    case .i16: let b = Int(next()); bytes += le(Int16(b < 8 ? [2047, -2047, 2048, -2048, 0, 1, -1, 1000][b] : (b - 136) * 16))
                    case .i32: let b = next(); bytes += le(b < 16 ? specialInts[Int(b)] : Int32(b) - 128)
                    default: bytes += le(float().bitPattern)
                    }
                }
                tensors[name] = SafetensorsTensor(dtype: spec.dtype, shape: spec.shape, bytes: bytes)
            }
        } else {
            meta["format"] = ModelFile.format
            for (name, shape) in arch.expectedTensorShapes().sorted(by: { $0.key < $1.key }) {
                tensors[name] = SafetensorsTensor(float32: Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in float() }))
            }
        }
        return (SafetensorsFile(metadata: meta, tensors: tensors), frames)
    }

    /// Runs a prepared engine on `frames` frames of a fixed mel; returns the logits.
    static func run(_ engine: InferenceEngine, frames: Int) -> [Float] {
        var logits = [Float](repeating: 0, count: engine.numClasses)
        var embedding = [Float](repeating: 0, count: engine.embeddingSize)
        let mel = (0..<(engine.melBins * frames)).map { Float(sin(Double($0) * 0.37)) * 4 - 2 }
        mel.withUnsafeBufferPointer { m in
            logits.withUnsafeMutableBufferPointer { l in
                embedding.withUnsafeMutableBufferPointer { e in engine.run(mel: m, frames: frames, logits: l, embedding: e) }
            }
        }
        return logits
    }
}

/// Hostile model files: fuzz replays and the load-time bounds.
final class HostileModelTests: XCTestCase {
    /// A valid float model file for `arch` (weights 0.25, BatchNorm identity-like), with `frontend`.
    func floatFile(_ arch: Architecture, frontend: FrontendSettings = FrontendSettings()) -> SafetensorsFile {
        var tensors: [String: SafetensorsTensor] = [:]
        for (name, shape) in arch.expectedTensorShapes() {
            // Shapes with a negative, overflowing or huge element count are left out (the metadata check comes first).
            let count = shape.reduce(Optional(1)) { n, d in
                n.flatMap { n in d < 0 ? nil : n.multipliedReportingOverflow(by: d) }.flatMap { $0.overflow || $0.partialValue > 1 << 20 ? nil : $0.partialValue }
            }
            guard count != nil else { continue }
            let v: Float = name.hasSuffix("running_var") || name.hasSuffix("weight") ? 0.25 : 0
            tensors[name] = SafetensorsTensor(float32: Tensor(shape: shape, data: [Float](repeating: v, count: shape.reduce(1, *))))
        }
        let labels = (0..<max(arch.numClasses, 0)).map { Label(index: $0, mid: "/m/\($0)", displayName: "c\($0)") }
        return SafetensorsFile(metadata: ["format": ModelFile.format, "eartag.name": "t",
                                          "eartag.architecture": HostileModelInputs.json(arch),
                                          "eartag.frontend": HostileModelInputs.json(frontend),
                                          "eartag.labels": HostileModelInputs.json(labels)], tensors: tensors)
    }

    /// The reason a model file was refused for (fails the test when it loaded).
    func refusal(_ file: SafetensorsFile, line: UInt = #line) -> String {
        do {
            _ = try AnyModel.load(file: file, path: "m.safetensors")
            XCTFail("loaded", line: line)
            return ""
        } catch { return "\(error)" }
    }

    /// Every `engine` fuzz input loads and runs or is refused at load; the eight plain seeds load and run at maxFrames
    /// and at 1 frame, and give finite logits except the float mn01 ones (weights all positive: float32 overflows).
    func testEngineFuzzInputs() throws {
        let inputs = FuzzInputs.files("engine")
        XCTAssertFalse(inputs.isEmpty)
        var ran = 0
        for (path, bytes) in inputs {
            guard let (file, frames) = HostileModelInputs.engineFile(bytes),
                  let model = try? AnyModel.load(file: file, path: path) else { continue }
            let engine = try makeEngine(model, maxFrames: frames, threads: 1)
            let logits = [frames, 1].map { HostileModelInputs.run(engine, frames: $0) }
            guard path.contains("_arch") && !path.contains("specials") else { continue }
            ran += 1
            // The float mn01 seeds overflow float32 with all-positive weights (inf/NaN scores, no trap:
            // docs/robustness.md); the 1-channel ones and every int8 seed (saturating arithmetic) stay finite.
            if path.contains("int8") || path.contains("arch2") || path.contains("arch3") {
                XCTAssert(logits.joined().allSatisfy(\.isFinite), path)
            }
        }
        XCTAssertEqual(ran, 8, "benign seeds that loaded and ran")
    }

    /// The `model_metadata` target's two files for one input (float, int8; tensors zero, weights/variances/scales
    /// one), or nil when the architecture or frontend does not decode or has over 2^20 elements per tensor.
    func metadataFiles(_ bytes: [UInt8]) -> [SafetensorsFile]? {
        let parts = bytes.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
        guard parts.count == 3, let arch = try? JSONDecoder().decode(Architecture.self, from: Data(parts[0].utf8)),
              let frontend = try? JSONDecoder().decode(FrontendSettings.self, from: Data(parts[1].utf8)),
              arch.expectedTensorShapes().values.allSatisfy({ $0.allSatisfy { $0 >= 0 && $0 <= 1 << 20 } }) else { return nil }
        var float = floatFile(arch, frontend: frontend)
        float.metadata["eartag.labels"] = parts[2]
        var int8 = float
        int8.metadata["format"] = QuantizedModel.format
        int8.tensors = [:]
        if arch.boundsProblem() == nil {
            for (name, spec) in QuantizedModel.expectedTensors(arch) {
                let n = spec.shape.reduce(1, *)
                let bytes = spec.dtype == .f32 && name.hasSuffix("scale")
                    ? (0..<n).flatMap { _ in HostileModelInputs.le(Float(1).bitPattern) } : [UInt8](repeating: 0, count: n * spec.dtype.size)
                int8.tensors[name] = SafetensorsTensor(dtype: spec.dtype, shape: spec.shape, bytes: bytes)
            }
        }
        return [float, int8]
    }

    /// Every `model_metadata` input loads (float and int8) and runs on 1 and 8 frames, or is refused; the three
    /// seeds load both ways and give finite logits.
    func testModelMetadataFuzzInputs() throws {
        let inputs = FuzzInputs.files("model_metadata")
        XCTAssertFalse(inputs.isEmpty)
        var loaded = 0
        for (path, bytes) in inputs {
            for file in metadataFiles(bytes) ?? [] {
                guard let model = try? AnyModel.load(file: file, path: path) else { continue }
                let engine = try makeEngine(model, maxFrames: 8, threads: 1)
                for frames in [1, 8] { XCTAssert(HostileModelInputs.run(engine, frames: frames).allSatisfy(\.isFinite), path) }
                loaded += 1
            }
        }
        XCTAssertEqual(loaded, 6, "model_metadata seeds that loaded and ran (float and int8)")
    }

    /// Finding 15: a squeeze width (22) wider than its block's expanded channels (8) made the int8 engine write past
    /// its SE scratch (ASan heap-buffer-overflow in `Int8Engine.squeezeExcite`); now refused at load and by
    /// `QuantizedModel.validate`, which `Int8Engine.init` runs for models built in memory too.
    func testSqueezeWiderThanItsBlockIsRefused() throws {
        let bytes = try XCTUnwrap(FuzzInputs.file("regressions/model_metadata/se_wider_than_expanded"))
        let files = try XCTUnwrap(metadataFiles(bytes))
        for file in files {
            XCTAssert(refusal(file).contains("block 0 squeeze width 22 outside 1...8"), refusal(file))
        }
        var file = files[1]
        file.metadata["eartag.labels"] = HostileModelInputs.json((0..<3).map { Label(index: $0, mid: "/m/\($0)", displayName: "c\($0)") })
        let arch = try JSONDecoder().decode(Architecture.self, from: Data(file.metadata["eartag.architecture"]!.utf8))
        for (name, spec) in QuantizedModel.expectedTensors(arch) {
            let n = spec.shape.reduce(1, *)
            file.tensors[name] = SafetensorsTensor(dtype: spec.dtype, shape: spec.shape, bytes: spec.dtype == .f32
                ? (0..<n).flatMap { _ in HostileModelInputs.le(Float(1).bitPattern) } : [UInt8](repeating: 0, count: n * spec.dtype.size))
        }
        let model = QuantizedModel(architecture: arch, frontend: FrontendSettings(), labels: [], name: "se", sourceSHA256: nil,
                                   tensors: file.tensors)
        XCTAssertThrowsError(try Int8Engine(model: model, maxFrames: 8)) { error in
            XCTAssert("\(error)".contains("squeeze width 22"), "\(error)")
        }
    }

    /// Architectures the engines cannot run are refused at load with the problem named (before: division by zero,
    /// reads outside the feature maps, a kernel-size overflow trap in the int8 loader).
    func testArchitectureBoundsAreRefusedAtLoad() {
        let base = HostileModelInputs.architectures[3]
        var cases: [(String, (inout Architecture) -> Void)] = [
            ("stemChannels 0 outside", { $0.stemChannels = 0 }),
            ("block 0 takes 2 channels but its input has 1", { $0.blocks[0].inputChannels = 2 }),
            ("block 1 kernel 4 is not 3 or 5", { $0.blocks[1].kernel = 4 }),
            ("block 1 kernel \(Int.max) is not 3 or 5", { $0.blocks[1].kernel = Int.max }),
            ("block 0 stride 0 is not 1 or 2", { $0.blocks[0].stride = 0 }),
            ("block 0 dilation -1 is not 1 or 2", { $0.blocks[0].dilation = -1 }),
            ("block 1 squeeze width 0 outside", { $0.blocks[1].seChannels = 0 }),
            ("0 blocks, outside", { $0.blocks = []; $0.lastConvChannels = 3 }),
            ("numClasses 0 outside", { $0.numClasses = 0 }),
            ("batchNormEps -1.0 outside", { $0.batchNormEps = -1 }),
            ("inputChannels 2 is not 1", { $0.inputChannels = 2 }),
            ("lastConvChannels 16385 outside", { $0.lastConvChannels = 16385 }),
        ]
        cases.append(("mlp head hidden width missing", { $0.head = .mlp; $0.headHiddenChannels = nil }))
        for (expected, change) in cases {
            var arch = base
            change(&arch)
            let float = refusal(floatFile(arch))
            XCTAssert(float.contains("eartag.architecture") && float.contains(expected), "\(expected): \(float)")
            var int8 = floatFile(arch)
            int8.metadata["format"] = QuantizedModel.format
            int8.tensors = [:]
            let q = refusal(int8)
            XCTAssert(q.contains(expected), "int8 \(expected): \(q)")
        }
        var frontend = FrontendSettings()
        frontend.nMels = 0
        XCTAssert(refusal(floatFile(base, frontend: frontend)).contains("nMels 0 outside 1...512"))
        XCTAssertNoThrow(try AnyModel.load(file: floatFile(base), path: "ok.safetensors"))
    }

    /// Float tensors holding NaN or +-inf are refused at load, naming the tensor (before: the engine ran and every
    /// score was NaN).
    func testNonFiniteFloatTensorsAreRefusedAtLoad() {
        let arch = HostileModelInputs.architectures[2]
        for (tensor, value, expected) in [("features.0.0.weight", Float.nan, "non-finite"),
                                          ("classifier.5.bias", .infinity, "non-finite"),
                                          ("features.1.block.0.1.running_mean", -.infinity, "non-finite"),
                                          ("features.0.1.running_var", .nan, "non-finite")] {
            var file = floatFile(arch)
            let t = file.tensors[tensor]!
            file.tensors[tensor] = SafetensorsTensor(float32: Tensor(shape: t.shape, data: [Float](repeating: value, count: t.shape.reduce(1, *))))
            let reason = refusal(file)
            XCTAssert(reason.contains(tensor) && reason.contains(expected), reason)
        }
    }
}
