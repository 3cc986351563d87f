// libFuzzer target: the model file's `__metadata__` JSON values (architecture, frontend, labels), which the
// `safetensors` target rarely reaches. The input is split at NUL bytes into the `eartag.architecture`,
// `eartag.frontend` and `eartag.labels` strings; a valid safetensors container is built around them, with every
// tensor the architecture implies (zeros; ones for scales) when it has at most 2^20 elements, and loaded as a float
// and as an int8 model file. A model that loads is prepared by its engine and run once on 1 and 8 frames.
import Foundation
@testable import EarTagModel
@testable import EarTagEngine

/// Elements of `shape`, or nil when a dimension is negative or the product passes 2^20 (checked, never trapping).
func boundedCount(_ shape: [Int]) -> Int? {
    var n = 1
    for d in shape {
        guard d >= 0 else { return nil }
        let (p, o) = n.multipliedReportingOverflow(by: d)
        guard !o, p <= 1 << 20 else { return nil }
        n = p
    }
    return n
}

/// Prepares and runs a loaded model on zero mels (1 and 8 frames).
func runEngine(_ model: AnyModel) {
    guard let engine = try? makeEngine(model, maxFrames: 8, threads: 1) else { return }
    var logits = [Float](repeating: 0, count: engine.numClasses)
    var embedding = [Float](repeating: 0, count: engine.embeddingSize)
    let mel = [Float](repeating: -1, count: engine.melBins * 8)
    for frames in [1, 8] {
        mel.withUnsafeBufferPointer { m in
            logits.withUnsafeMutableBufferPointer { l in
                embedding.withUnsafeMutableBufferPointer { e in engine.run(mel: m, frames: frames, logits: l, embedding: e) }
            }
        }
    }
}

/// One fuzz input: architecture NUL frontend NUL labels.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let parts = UnsafeBufferPointer(start: data, count: size).split(separator: 0, maxSplits: 2,
                                                                     omittingEmptySubsequences: false)
    let text = parts.map { String(decoding: $0, as: UTF8.self) }
    var meta = ["eartag.name": "fuzz"]
    for (i, key) in ["eartag.architecture", "eartag.frontend", "eartag.labels"].enumerated() where i < text.count {
        meta[key] = text[i]
    }
    let arch = try? JSONDecoder().decode(Architecture.self, from: Data((meta["eartag.architecture"] ?? "").utf8))

    // Float file.
    var floatTensors: [String: SafetensorsTensor] = [:]
    if let arch {
        let shapes = arch.expectedTensorShapes()
        if let total = Optional(shapes.values.reduce(0) { $0 + (boundedCount($1) ?? (1 << 21)) }), total <= 1 << 20 {
            for (name, shape) in shapes {
                let value: Float = name.hasSuffix("running_var") || name.hasSuffix("weight") ? 1 : 0
                floatTensors[name] = SafetensorsTensor(float32: Tensor(shape: shape,
                                                                       data: [Float](repeating: value, count: boundedCount(shape)!)))
            }
        }
    }
    meta["format"] = ModelFile.format
    if let m = try? AnyModel.load(file: SafetensorsFile(metadata: meta, tensors: floatTensors), path: "<fuzz>") {
        runEngine(m)
    }

    // Int8 file.
    var int8Tensors: [String: SafetensorsTensor] = [:]
    // `expectedTensors` multiplies kernel sizes: only for architectures the loader's bounds accept (it checks them
    // before it gets there).
    if let arch, arch.boundsProblem() == nil {
        let specs = QuantizedModel.expectedTensors(arch)
        if let total = Optional(specs.values.reduce(0) { $0 + (boundedCount($1.shape) ?? (1 << 21)) }), total <= 1 << 20 {
            for (name, spec) in specs {
                let n = boundedCount(spec.shape)!
                var bytes = [UInt8](repeating: 0, count: n * spec.dtype.size)
                if spec.dtype == .f32 && name.hasSuffix("scale") {
                    let one = Float(1).bitPattern
                    for i in 0..<n { for k in 0..<4 { bytes[4 * i + k] = UInt8(truncatingIfNeeded: one >> (8 * k)) } }
                }
                int8Tensors[name] = SafetensorsTensor(dtype: spec.dtype, shape: spec.shape, bytes: bytes)
            }
        }
    }
    meta["format"] = QuantizedModel.format
    if let m = try? AnyModel.load(file: SafetensorsFile(metadata: meta, tensors: int8Tensors), path: "<fuzz>") {
        runEngine(m)
    }
    return 0
}
