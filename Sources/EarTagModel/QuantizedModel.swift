// The int8 model: integer weights, biases, scales and zero points by name, its safetensors file
// (`format` = eartag.int8.v2) with validation at load, and `AnyModel`, which tells a float file from an int8 one.
// The scheme is stated in docs/quantization.md; the tensor names and shapes are defined once here.
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An int8-quantized MN model (produced by EarTagEngine's `Quantizer`, run by `Int8Engine`).
public struct QuantizedModel: Sendable {
    /// Value of the `format` metadata key.
    public static let format = "eartag.int8.v2"
    /// One-paragraph statement of the scheme, stored as metadata `eartag.scheme` (details: docs/quantization.md).
    public static let scheme = "int8 weights symmetric per output channel (|q| <= 127), widened to 12 bits (I16, "
        + "|q| <= 2047) in the stem, the depthwise convs and the 1x1 convs with at most 64 inputs; int8 activations "
        + "asymmetric per tensor (real = scale * (q - zero_point)); int32 accumulation, 1x1-conv biases with the input "
        + "zero point folded in, |bias| <= 2^30; fp32 requantization ((sum + bias) as float times s_in * s_w, activation in real "
        + "units, residual added in real units, times 1 / s_out, round to nearest even); global average pool as int32 "
        + "sum + requantization; squeeze-excitation in float on the pooled vector, the gated map requantized to its own "
        + "calibrated quantization (per-channel float multiplier gate * s_in / s_out); final Linear "
        + "dequantized to float logits; the stem output (features.0.act) at 16 bits (int16, |q| <= 32767, "
        + "zero point -32768...32767) when eartag.int16_activations names it"
    /// Metadata key listing the activations stored at 16 bits (comma-separated; only `features.0.act` exists).
    public static let int16ActivationsKey = "eartag.int16_activations"
    /// The activation that may be stored at 16 bits: the stem output.
    public static let wideStemOutput = "features.0.act"

    public var architecture: Architecture
    public var frontend: FrontendSettings
    public var labels: [Label]
    public var name: String
    public var sourceSHA256: String?
    /// Every quantized tensor by name (see `expectedTensors`).
    public var tensors: [String: SafetensorsTensor]
    /// Activations quantized to 16 bits instead of 8 (`wideStemOutput` or nothing; see `supportsWideStemOutput`).
    public var int16Activations: Set<String>

    public init(architecture: Architecture, frontend: FrontendSettings, labels: [Label], name: String,
                sourceSHA256: String?, tensors: [String: SafetensorsTensor], int16Activations: Set<String> = []) {
        self.int16Activations = int16Activations
        self.architecture = architecture
        self.frontend = frontend
        self.labels = labels
        self.name = name
        self.sourceSHA256 = sourceSHA256
        self.tensors = tensors
    }

    /// Dtype and shape of one expected tensor.
    public struct Spec: Sendable, Equatable {
        public var dtype: SafetensorsDType
        public var shape: [Int]
    }

    /// Name prefixes of the int8 conv/linear layers, in run order, with their weight shape and whether a hardswish
    /// table follows. Weight layouts: stem [9][cout], depthwise [k*k][c] (tap-major), 1x1 / linear [cout][cin].
    public static func layers(_ a: Architecture) -> [(name: String, weight: [Int], hardswish: Bool)] {
        var out: [(String, [Int], Bool)] = [("features.0", [9, a.stemChannels], true)]
        for (i, b) in a.blocks.enumerated() {
            let p = "features.\(i + 1)", hs = b.activation == .hardswish
            if b.hasExpand { out.append(("\(p).expand", [b.expandedChannels, b.inputChannels], hs)) }
            out.append(("\(p).depthwise", [b.kernel * b.kernel, b.expandedChannels], hs))
            out.append(("\(p).project", [b.outputChannels, b.expandedChannels], false))
        }
        out.append(("features.\(a.blocks.count + 1)", [a.lastConvChannels, a.blocks.last?.outputChannels ?? a.stemChannels], true))
        if a.head == .mlp, let h = a.headHiddenChannels {
            out.append(("classifier.hidden", [h, a.lastConvChannels], true))
            out.append(("classifier.out", [a.numClasses, h], false))
        } else {
            out.append(("classifier.out", [a.numClasses, a.lastConvChannels], false))
        }
        return out
    }

    /// True when the int8 engine can run architecture `a` with its stem output at 16 bits: an 8-channel stem whose
    /// output feeds block 1's 3x3 depthwise conv directly (no expand, no SE, a multiple of 8 channels) and block 1's
    /// projection (at most 8 inputs, a multiple of 8 outputs; its residual then reads the 16-bit map). Those are the
    /// shapes of the 16-bit kernels (the int16 section of EarTagKernelsNarrow/Int8Narrow.swift); every MN width up to 0.5 has them.
    public static func supportsWideStemOutput(_ a: Architecture) -> Bool {
        guard a.stemChannels == 8, let b = a.blocks.first else { return false }
        return !b.hasExpand && b.seChannels == nil && b.kernel == 3 && b.expandedChannels % 8 == 0
            && b.expandedChannels <= 8 && b.outputChannels % 8 == 0
    }

    /// Largest |weight| of an 8-bit layer and of a 12-bit ("wide") layer.
    public static let maxWeight8: Int32 = 127, maxWeight12: Int32 = 2047

    /// True when layer `name` (weight shape `weight`) stores 12-bit weights (I16): the stem, the depthwise convs and
    /// the 1x1 convs (not the classifier) with at most 64 inputs. Measured: their 8-bit weights cost most of the
    /// fidelity (docs/quantization.md, sensitivity analysis), and with these bounds the engine's float-lane sums stay
    /// exact (64 * 128 * 2047 < 2^24; 25 taps * 255 * 2047 < 2^24).
    public static func hasWideWeights(_ name: String, weight: [Int]) -> Bool {
        if name == "features.0" || name.hasSuffix(".depthwise") { return true }
        return !name.hasPrefix("classifier") && weight[1] <= 64
    }

    /// Every tensor an int8 file of architecture `a` holds, by name.
    public static func expectedTensors(_ a: Architecture) -> [String: Spec] {
        var t: [String: Spec] = ["input.scale": Spec(dtype: .f32, shape: [1]),
                                 "input.zero_point": Spec(dtype: .i32, shape: [1]),
                                 "pool.scale": Spec(dtype: .f32, shape: [1]),
                                 "pool.zero_point": Spec(dtype: .i32, shape: [1])]
        for l in layers(a) {
            let cout = l.name.hasSuffix("depthwise") || l.name == "features.0" ? l.weight[1] : l.weight[0]
            t[l.name + ".weight"] = Spec(dtype: hasWideWeights(l.name, weight: l.weight) ? .i16 : .i8, shape: l.weight)
            t[l.name + ".weight_scale"] = Spec(dtype: .f32, shape: [cout])
            t[l.name + ".bias"] = Spec(dtype: .i32, shape: [cout])
            if l.name == "classifier.out" { continue }  // float logits: no output quantization
            t[l.name + ".out_scale"] = Spec(dtype: .f32, shape: [1])
            t[l.name + ".out_zero_point"] = Spec(dtype: .i32, shape: [1])
            if l.hardswish {
                t[l.name + ".act_scale"] = Spec(dtype: .f32, shape: [1])
                t[l.name + ".act_zero_point"] = Spec(dtype: .i32, shape: [1])
            }
        }
        for (i, b) in a.blocks.enumerated() {
            let p = "features.\(i + 1)"
            if let s = b.seChannels {
                let e = b.expandedChannels
                t["\(p).se.fc1.weight"] = Spec(dtype: .f32, shape: [s, e])
                t["\(p).se.fc1.bias"] = Spec(dtype: .f32, shape: [s])
                t["\(p).se.fc2.weight"] = Spec(dtype: .f32, shape: [e, s])
                t["\(p).se.fc2.bias"] = Spec(dtype: .f32, shape: [e])
                t["\(p).se.out_scale"] = Spec(dtype: .f32, shape: [1])
                t["\(p).se.out_zero_point"] = Spec(dtype: .i32, shape: [1])
            }
            if b.hasResidual {
                t["\(p).add.out_scale"] = Spec(dtype: .f32, shape: [1])
                t["\(p).add.out_zero_point"] = Spec(dtype: .i32, shape: [1])
            }
        }
        return t
    }

    /// Checks the architecture bounds (`boundsProblem`), then every tensor against `expectedTensors`: presence, dtype, shape, no extras; scales finite and > 0;
    /// zero points in -128...127 (-32768...32767 for a 16-bit activation). Errors name the tensor.
    public func validate(path: String) throws {
        func bad(_ r: String) -> ModelError { .badModelFile(path: path, reason: r) }
        // Also reached by `Int8Engine.init` for models built in memory: the engine's buffers rely on these bounds.
        if let problem = architecture.boundsProblem() { throw bad("architecture: \(problem)") }
        guard labels.count == architecture.numClasses else {
            throw bad("\(labels.count) labels but the architecture has \(architecture.numClasses) classes")
        }
        let expected = QuantizedModel.expectedTensors(architecture)
        for a in int16Activations.sorted() where a != QuantizedModel.wideStemOutput {
            throw bad("\(QuantizedModel.int16ActivationsKey) names '\(a)'; only \(QuantizedModel.wideStemOutput) can be 16-bit")
        }
        if !int16Activations.isEmpty && !QuantizedModel.supportsWideStemOutput(architecture) {
            throw bad("\(QuantizedModel.int16ActivationsKey) names \(QuantizedModel.wideStemOutput), but this architecture's "
                      + "stem and first block have no 16-bit kernels")
        }
        let wideZeroPoint = int16Activations.isEmpty ? nil : "features.0.act_zero_point"
        for (n, spec) in expected.sorted(by: { $0.key < $1.key }) {
            guard let t = tensors[n] else { throw ModelError.missingTensor(path: path, tensor: n) }
            guard t.dtype == spec.dtype else { throw bad("tensor '\(n)' is \(t.dtype.rawValue), expected \(spec.dtype.rawValue)") }
            guard t.shape == spec.shape else {
                throw ModelError.tensorShape(path: path, tensor: n, expected: spec.shape, actual: t.shape)
            }
            guard t.bytes.count == t.shape.reduce(1, *) * t.dtype.size else { throw bad("tensor '\(n)' has a wrong byte count") }
            if n.hasSuffix("scale") {
                for v in t.float32Values()! where !(v.isFinite && v > 0) {
                    throw bad("tensor '\(n)' holds scale \(v); scales must be finite and > 0")
                }
            }
            if n.hasSuffix("zero_point") {
                let limit: Int32 = n == wideZeroPoint ? 32768 : 128
                for v in int32Values(t) where v < -limit || v > limit - 1 {
                    throw bad("tensor '\(n)' holds zero point \(v), outside -\(limit)...\(limit - 1)")
                }
            }
            if n.hasSuffix(".weight") && (t.dtype == .i8 || t.dtype == .i16) {
                let limit = t.dtype == .i8 ? QuantizedModel.maxWeight8 : QuantizedModel.maxWeight12
                for v in weightValues(t) where abs(v) > limit {
                    throw bad("tensor '\(n)' holds weight \(v), outside -\(limit)...\(limit)")
                }
            }
            if n.hasSuffix(".bias") && t.dtype == .i32 {
                for v in int32Values(t) where v < -(1 << 30) || v > 1 << 30 {
                    throw bad("tensor '\(n)' holds bias \(v), outside -2^30...2^30")
                }
            }
            if n.hasSuffix(".se.fc1.weight") || n.hasSuffix(".se.fc2.weight") || n.hasSuffix(".bias") && t.dtype == .f32 {
                for v in t.float32Values()! where !v.isFinite { throw bad("tensor '\(n)' holds a non-finite value") }
            }
        }
        if let extra = tensors.keys.sorted().first(where: { expected[$0] == nil }) {
            throw ModelError.unexpectedTensor(path: path, tensor: extra)
        }
    }

    /// Weights of layer tensor `name` (I8 or I16) widened to Int16.
    public func weights(_ name: String) -> [Int16] { weightValues(tensors[name]!).map { Int16($0) } }

    /// Int32 values of tensor `name` (precondition: I32).
    public func int32(_ name: String) -> [Int32] {
        let t = tensors[name]!
        precondition(t.dtype == .i32, "\(name) is not I32")
        return int32Values(t)
    }

    /// Float values of tensor `name` (precondition: F32).
    public func float(_ name: String) -> [Float] { tensors[name]!.float32Values()! }

    /// Writes the model as safetensors with its description in `__metadata__`.
    public func save(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        func json<T: Encodable>(_ v: T) throws -> String { String(decoding: try encoder.encode(v), as: UTF8.self) }
        var m = ["format": QuantizedModel.format, "eartag.architecture": try json(architecture),
                 "eartag.frontend": try json(frontend), "eartag.labels": try json(labels), "eartag.name": name,
                 "eartag.scheme": QuantizedModel.scheme]
        if let sha = sourceSHA256 { m["eartag.source_sha256"] = sha }
        if !int16Activations.isEmpty { m[QuantizedModel.int16ActivationsKey] = int16Activations.sorted().joined(separator: ",") }
        try SafetensorsFile(metadata: m, tensors: tensors).write(to: path)
    }

    /// Reads and validates an int8 model file.
    public static func load(path: String) throws -> QuantizedModel {
        try load(file: SafetensorsFile.read(path: path), path: path)
    }

    /// Validates an already parsed safetensors file as an int8 model.
    static func load(file: SafetensorsFile, path: String) throws -> QuantizedModel {
        let meta = try ModelMetadata(file: file, path: path, format: format)
        let wide = (file.metadata[int16ActivationsKey] ?? "").split(separator: ",", omittingEmptySubsequences: false)
            .map(String.init)
        let model = QuantizedModel(architecture: meta.architecture, frontend: meta.frontend, labels: meta.labels,
                                   name: meta.name, sourceSHA256: meta.sourceSHA256, tensors: file.tensors,
                                   int16Activations: file.metadata[int16ActivationsKey] == nil ? [] : Set(wide))
        try model.validate(path: path)
        return model
    }
}

/// Little-endian int32 values of a tensor's bytes.
/// Values of an I8 or I16 (little-endian) tensor.
func weightValues(_ t: SafetensorsTensor) -> [Int32] {
    if t.dtype == .i8 { return t.bytes.map { Int32(Int8(bitPattern: $0)) } }
    precondition(t.dtype == .i16, "not I8 or I16")
    return (0..<(t.bytes.count / 2)).map { i in Int32(Int16(bitPattern: UInt16(t.bytes[2 * i]) | UInt16(t.bytes[2 * i + 1]) << 8)) }
}

func int32Values(_ t: SafetensorsTensor) -> [Int32] {
    (0..<(t.bytes.count / 4)).map { i -> Int32 in
        let b0 = UInt32(t.bytes[4 * i]), b1 = UInt32(t.bytes[4 * i + 1])
        let b2 = UInt32(t.bytes[4 * i + 2]), b3 = UInt32(t.bytes[4 * i + 3])
        return Int32(bitPattern: b0 | b1 << 8 | b2 << 16 | b3 << 24)
    }
}

extension SafetensorsTensor {
    /// An I8 tensor.
    public init(int8 values: [Int8], shape: [Int]) {
        self.init(dtype: .i8, shape: shape, bytes: values.map { UInt8(bitPattern: $0) })
    }

    /// An I16 tensor (little-endian).
    public init(int16 values: [Int16], shape: [Int]) {
        var b = [UInt8](); b.reserveCapacity(values.count * 2)
        for v in values { let u = UInt16(bitPattern: v); b += [UInt8(u & 255), UInt8(u >> 8)] }
        self.init(dtype: .i16, shape: shape, bytes: b)
    }

    /// An I32 tensor (little-endian).
    public init(int32 values: [Int32], shape: [Int]) {
        var b = [UInt8](); b.reserveCapacity(values.count * 4)
        for v in values { let u = UInt32(bitPattern: v); b += [UInt8(u & 255), UInt8(u >> 8 & 255), UInt8(u >> 16 & 255), UInt8(u >> 24)] }
        self.init(dtype: .i32, shape: shape, bytes: b)
    }
}

/// A model file of either kind; the `format` metadata key says which.
public enum AnyModel: Sendable {
    case float(FloatModel)
    case int8(QuantizedModel)

    /// Loads and validates a float (`eartag.float.v1`) or int8 (`eartag.int8.v2`) model file.
    public static func load(path: String) throws -> AnyModel {
        try load(file: SafetensorsFile.read(path: path), path: path)
    }

    /// Validates an already parsed safetensors file as a model of either kind; `path` names it in errors.
    static func load(file: SafetensorsFile, path: String) throws -> AnyModel {
        switch file.metadata["format"] {
        case QuantizedModel.format?: return .int8(try QuantizedModel.load(file: file, path: path))
        default: return .float(try ModelFile.load(file: file, path: path))
        }
    }

    /// The architecture of either kind.
    public var architecture: Architecture {
        switch self { case .float(let m): return m.architecture; case .int8(let m): return m.architecture }
    }

    /// The frontend settings of either kind.
    public var frontend: FrontendSettings {
        switch self { case .float(let m): return m.frontend; case .int8(let m): return m.frontend }
    }

    /// The labels of either kind.
    public var labels: [Label] {
        switch self { case .float(let m): return m.labels; case .int8(let m): return m.labels }
    }

    /// The model's name, with ` (int8)` for a quantized one.
    public var name: String {
        switch self { case .float(let m): return m.name; case .int8(let m): return m.name + " (int8)" }
    }
}
