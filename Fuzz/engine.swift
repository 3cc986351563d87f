// libFuzzer target: the float and int8 engines on valid but hostile model files. Byte 0 picks one of four small
// architectures (down to one channel everywhere), float or int8, the frame count and the mel bins; the other bytes
// are cycled through as tensor values, one byte per element, mapped so that NaN, +-inf, huge, tiny and zero weights,
// extreme zero points, biases at and past the int8 bounds and out-of-range weights are common. The model goes through
// the normal loader (`AnyModel.load(file:)`); a model it accepts is prepared and run (frames = maxFrames, then 1).
import Foundation
@testable import EarTagModel
@testable import EarTagEngine

/// The four architectures: mn01 (mlp head, SE), mn01 fully convolutional with strides 2,1,2,1 and no SE, and two
/// hand-built minimal ones (one 1-channel block; a 1-channel k3 block then a k5 stride-2 block with expand and SE).
let architectures: [Architecture] = {
    var out: [Architecture] = []
    out.append(try! Architecture.efficientAT(widthMult: 0.1, head: .mlp, numClasses: 3, channelSE: true))
    out.append(try! Architecture.efficientAT(widthMult: 0.1, head: .fullyConvolutional, numClasses: 2, channelSE: false,
                                             strides: [2, 1, 2, 1]))
    let one = BlockSpec(kernel: 3, inputChannels: 1, expandedChannels: 1, outputChannels: 1, seChannels: nil,
                        activation: .relu, stride: 1, dilation: 1)
    out.append(Architecture(widthMult: 0.01, stemChannels: 1, blocks: [one], lastConvChannels: 1, head: .mlp,
                            headHiddenChannels: 1, numClasses: 1, seDims: [], strides: [2, 2, 2, 2], dilated: false))
    let wide = BlockSpec(kernel: 5, inputChannels: 1, expandedChannels: 4, outputChannels: 2, seChannels: 1,
                         activation: .hardswish, stride: 2, dilation: 1)
    out.append(Architecture(widthMult: 0.01, stemChannels: 1, blocks: [one, wide], lastConvChannels: 3,
                            head: .fullyConvolutional, headHiddenChannels: nil, numClasses: 2, seDims: ["c"],
                            strides: [2, 2, 2, 2], dilated: false))
    return out
}()

/// Hostile float values (the first 16 byte values); other bytes give (b - 136) / 32.
let specialFloats: [Float] = [0, .nan, .infinity, -.infinity, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                              1e30, -1e30, .leastNonzeroMagnitude, .leastNormalMagnitude, 1e-30, -0.0, 1, -1,
                              65504, 1e-7]
/// Hostile int32 values for biases and zero points (the first 16 byte values); other bytes give b - 128.
let specialInts: [Int32] = [0, 1 << 30, -(1 << 30), (1 << 30) + 1, -(1 << 30) - 1, .max, .min, 127, -128, 128, -129,
                            255, -255, 1, -1, 1 << 24]

/// Little-endian bytes of a fixed-width integer or float bit pattern.
func leBytes<T: FixedWidthInteger>(_ v: T) -> [UInt8] { (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

/// One fuzz input: mode byte, then the tensor value bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let mode = Int(data[0])
    let arch = architectures[mode & 3]
    let int8 = mode & 4 != 0
    let frames = [1, 2, 3, 4, 8, 31, 64, 256][(mode >> 3) & 7]
    let melBins = [128, 1, 2, 16][(mode >> 6) & 3]
    let stream = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    var cursor = 0
    /// The next value byte (cycling; 0x8C, i.e. a small positive value, when there are none).
    func next() -> UInt8 {
        guard !stream.isEmpty else { return 0x8C }
        defer { cursor += 1 }
        return stream[cursor % stream.count]
    }
    /// The next value as a float: one of `specialFloats`, or (b - 136) / 32.
    func float() -> Float { let b = next(); return b < 16 ? specialFloats[Int(b)] : Float(Int(b) - 136) / 32 }
    /// The next value as an int32: one of `specialInts`, or b - 128.
    func int() -> Int32 { let b = next(); return b < 16 ? specialInts[Int(b)] : Int32(b) - 128 }

    var frontend = FrontendSettings()
    frontend.nMels = melBins
    var meta = ["eartag.name": "fuzz", "eartag.frontend": String(decoding: try! JSONEncoder().encode(frontend), as: UTF8.self),
                "eartag.architecture": String(decoding: try! JSONEncoder().encode(arch), as: UTF8.self)]
    let labels = (0..<arch.numClasses).map { Label(index: $0, mid: "/m/\($0)", displayName: "c\($0)") }
    meta["eartag.labels"] = String(decoding: try! JSONEncoder().encode(labels), as: UTF8.self)
    var tensors: [String: SafetensorsTensor] = [:]
    if int8 {
        meta["format"] = QuantizedModel.format
        for (name, spec) in QuantizedModel.expectedTensors(arch).sorted(by: { $0.key < $1.key }) {
            let n = spec.shape.reduce(1, *)
            var bytes: [UInt8] = []
            for _ in 0..<n {
                switch spec.dtype {
                case .i8: bytes += leBytes(Int8(truncatingIfNeeded: Int(next()) - 128))
                case .i16: let b = Int(next()); bytes += leBytes(Int16(b < 8 ? [2047, -2047, 2048, -2048, 0, 1, -1, 1000][b] : (b - 136) * 16))
                case .i32: bytes += leBytes(int())
                default: bytes += leBytes(float().bitPattern)
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
    guard let model = try? AnyModel.load(file: SafetensorsFile(metadata: meta, tensors: tensors), path: "<fuzz>"),
          let engine = try? makeEngine(model, maxFrames: frames, threads: 1) else { return 0 }
    var logits = [Float](repeating: 0, count: engine.numClasses)
    var embedding = [Float](repeating: 0, count: engine.embeddingSize)
    let mel = (0..<(melBins * frames)).map { Float(sin(Double($0) * 0.37)) * 4 - 2 }
    for f in [frames, 1] {
        mel.withUnsafeBufferPointer { m in
            logits.withUnsafeMutableBufferPointer { l in
                embedding.withUnsafeMutableBufferPointer { e in engine.run(mel: m, frames: f, logits: l, embedding: e) }
            }
        }
    }
    return 0
}
