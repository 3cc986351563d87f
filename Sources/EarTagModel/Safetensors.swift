// Safetensors reader and writer (raw bytes + dtype per tensor), and the EarTag float model file built on it.
// ref: https://github.com/huggingface/safetensors README "Format" (u64 LE header size, JSON header with dtype, shape,
// data_offsets relative to the byte buffer, optional "__metadata__" string map, header may be space-padded; offsets
// must cover the buffer contiguously without overlap).
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagPlatform

/// Element types of safetensors tensors.
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8"
    case u64 = "U64", u32 = "U32", u16 = "U16", u8 = "U8", bool = "BOOL"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .i8, .u8, .bool: return 1
        }
    }
}

/// One tensor of a safetensors file: dtype, shape and its raw little-endian bytes.
public struct SafetensorsTensor: Sendable, Equatable {
    public var dtype: SafetensorsDType
    public var shape: [Int]
    public var bytes: [UInt8]

    public init(dtype: SafetensorsDType, shape: [Int], bytes: [UInt8]) {
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// A float32 tensor from values.
    public init(float32 tensor: Tensor) {
        var b = [UInt8](repeating: 0, count: tensor.data.count * 4)
        for (i, v) in tensor.data.enumerated() {
            let u = v.bitPattern
            b[4 * i] = UInt8(truncatingIfNeeded: u); b[4 * i + 1] = UInt8(truncatingIfNeeded: u >> 8)
            b[4 * i + 2] = UInt8(truncatingIfNeeded: u >> 16); b[4 * i + 3] = UInt8(truncatingIfNeeded: u >> 24)
        }
        self.init(dtype: .f32, shape: tensor.shape, bytes: b)
    }

    /// The values of an F32 tensor, or nil for other dtypes.
    public func float32Values() -> [Float]? {
        guard dtype == .f32 else { return nil }
        var out = [Float](repeating: 0, count: bytes.count / 4)
        for i in out.indices {
            out[i] = Float(bitPattern: UInt32(bytes[4 * i]) | UInt32(bytes[4 * i + 1]) << 8
                           | UInt32(bytes[4 * i + 2]) << 16 | UInt32(bytes[4 * i + 3]) << 24)
        }
        return out
    }
}

/// A whole safetensors file: string metadata and named tensors.
public struct SafetensorsFile: Sendable, Equatable {
    public var metadata: [String: String]
    public var tensors: [String: SafetensorsTensor]

    /// Largest header accepted when reading (bytes).
    public static let maxHeaderBytes = 100 << 20

    public init(metadata: [String: String] = [:], tensors: [String: SafetensorsTensor] = [:]) {
        self.metadata = metadata
        self.tensors = tensors
    }

    /// File bytes: header (keys sorted, space-padded to 8-byte alignment) then tensor data in name order.
    public func serialized() -> [UInt8] {
        var json = "{"
        var parts: [String] = []
        if !metadata.isEmpty {
            let m = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            parts.append("\"__metadata__\":{\(m.joined(separator: ","))}")
        }
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let t = tensors[name]!
            let shape = t.shape.map(String.init).joined(separator: ",")
            parts.append("\(jsonString(name)):{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[\(shape)],"
                         + "\"data_offsets\":[\(offset),\(offset + t.bytes.count)]}")
            offset += t.bytes.count
        }
        json += parts.joined(separator: ",") + "}"
        var header = Array(json.utf8)
        while (8 + header.count) % 8 != 0 { header.append(0x20) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + header.count + offset)
        let n = UInt64(header.count)
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: n >> (8 * UInt64(i)))) }
        out += header
        for name in names { out += tensors[name]!.bytes }
        return out
    }

    /// Writes the file atomically.
    public func write(to path: String) throws {
        do { try Data(serialized()).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw ModelError.writeFailed(path: path, reason: oneLine(error))
        }
    }

    /// Reads and validates a safetensors file.
    public static func read(path: String) throws -> SafetensorsFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.unreadable(path: path, reason: "no such file or not readable")
        }
        return try parse([UInt8](data), path: path)
    }

    /// Parses and validates safetensors bytes; `path` names them in errors.
    public static func parse(_ b: [UInt8], path: String) throws -> SafetensorsFile {
        /// Format error helper.
        func bad(_ r: String) -> ModelError { .badSafetensors(path: path, reason: r) }
        guard b.count >= 8 else { throw bad("file shorter than the 8-byte header length") }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(b[i]) << (8 * UInt64(i)) }
        guard n <= UInt64(maxHeaderBytes) else { throw bad("header length \(n) exceeds the \(maxHeaderBytes)-byte limit") }
        guard n >= 2, n <= UInt64(b.count - 8) else { throw bad("header length \(n) exceeds the file (\(b.count) bytes)") }
        let headerEnd = 8 + Int(n)
        guard b[8] == UInt8(ascii: "{") else { throw bad("header does not start with '{'") }
        let object: JSONValue
        do { object = try JSONDecoder().decode(JSONValue.self, from: Data(b[8..<headerEnd])) } catch {
            throw bad("header is not valid JSON")
        }
        guard case .object(let header) = object else { throw bad("header is not a JSON object") }
        let dataLength = b.count - headerEnd
        var file = SafetensorsFile()
        var spans: [(begin: Int, end: Int, name: String)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard case .object(let m) = value else { throw bad("__metadata__ is not an object") }
                for (k, v) in m {
                    guard case .string(let s) = v else { throw bad("metadata '\(k)' is not a string") }
                    file.metadata[k] = s
                }
                continue
            }
            guard case .object(let entry) = value else { throw bad("tensor '\(name)' is not an object") }
            guard case .string(let dtypeName)? = entry["dtype"], let dtype = SafetensorsDType(rawValue: dtypeName) else {
                throw bad("tensor '\(name)' has a missing or unknown dtype")
            }
            guard case .array(let shapeArray)? = entry["shape"], let shape = integers(shapeArray),
                  shape.allSatisfy({ $0 >= 0 }) else { throw bad("tensor '\(name)' has an invalid shape") }
            guard case .array(let offsetArray)? = entry["data_offsets"], let offsets = integers(offsetArray),
                  offsets.count == 2 else { throw bad("tensor '\(name)' has invalid data_offsets") }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end, end <= dataLength else {
                throw bad("tensor '\(name)' data_offsets [\(begin), \(end)] are outside the \(dataLength)-byte buffer")
            }
            var count = dtype.size
            for s in shape {
                let (p, o) = count.multipliedReportingOverflow(by: s)
                guard !o else { throw bad("tensor '\(name)' shape overflows") }
                count = p
            }
            guard count == end - begin else {
                throw bad("tensor '\(name)' shape \(shape) of \(dtypeName) needs \(count) bytes but data_offsets span \(end - begin)")
            }
            spans.append((begin, end, name))
            file.tensors[name] = SafetensorsTensor(dtype: dtype, shape: shape,
                                                   bytes: Array(b[(headerEnd + begin)..<(headerEnd + end)]))
        }
        spans.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var cursor = 0
        for s in spans {
            guard s.begin == cursor else {
                throw bad(s.begin < cursor ? "tensor '\(s.name)' overlaps another tensor" : "gap before tensor '\(s.name)'")
            }
            cursor = s.end
        }
        guard cursor == dataLength else { throw bad("\(dataLength - cursor) bytes after the last tensor are not covered") }
        return file
    }

    /// Integers of a JSON array (nil when an element is not an exact integer).
    private static func integers(_ a: [JSONValue]) -> [Int]? {
        var out: [Int] = []
        for x in a {
            guard case .number(let d) = x, d == d.rounded(), abs(d) < 9.0e15 else { return nil }
            out.append(Int(d))
        }
        return out
    }
}

/// A parsed JSON value (the safetensors header), decoded with FoundationEssentials' JSONDecoder.
private enum JSONValue: Decodable {
    case object([String: JSONValue]), array([JSONValue]), string(String), number(Double), bool(Bool), null

    /// Decodes whichever JSON type is there (a boolean is not taken for a number).
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let d = try? c.decode(Double.self) {
            self = .number(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }
}

/// A JSON string literal with the escapes RFC 8259 requires (used for metadata and for EarTag's outputs).
public func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 { out += String(printf: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}

/// An error's description squeezed onto one line.
func oneLine(_ error: Error) -> String {
    String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " ")
}

/// The EarTag float model file: safetensors with the unfolded state dict and the model description as metadata.
public enum ModelFile {
    /// Value of the `format` metadata key.
    public static let format = "eartag.float.v1"

    /// Writes a float model (tensors as F32 under their state-dict names).
    public static func save(_ model: FloatModel, to path: String) throws {
        try SafetensorsFile(metadata: try metadata(of: model),
                            tensors: model.tensors.mapValues { SafetensorsTensor(float32: $0) }).write(to: path)
    }

    /// The metadata map describing a model.
    static func metadata(of model: FloatModel) throws -> [String: String] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        /// Compact JSON text of a value.
        func json<T: Encodable>(_ v: T) throws -> String { String(decoding: try encoder.encode(v), as: UTF8.self) }
        var m = ["format": format, "eartag.architecture": try json(model.architecture),
                 "eartag.frontend": try json(model.frontend), "eartag.labels": try json(model.labels),
                 "eartag.name": model.name]
        if let sha = model.sourceSHA256 { m["eartag.source_sha256"] = sha }
        return m
    }

    /// Reads and validates a float model file (format, metadata, every tensor against the architecture).
    public static func load(path: String) throws -> FloatModel {
        try load(file: SafetensorsFile.read(path: path), path: path)
    }

    /// Validates an already parsed safetensors file as a float model; `path` names it in errors.
    static func load(file: SafetensorsFile, path: String) throws -> FloatModel {
        let meta = try ModelMetadata(file: file, path: path, format: format)
        let (architecture, labels) = (meta.architecture, meta.labels)
        /// Model file error helper.
        func bad(_ r: String) -> ModelError { .badModelFile(path: path, reason: r) }
        guard labels.count == architecture.numClasses else {
            throw bad("\(labels.count) labels but the architecture has \(architecture.numClasses) classes")
        }
        try architecture.validate(tensorShapes: file.tensors.mapValues(\.shape), path: path)
        var tensors: [String: Tensor] = [:]
        for (n, t) in file.tensors {
            guard let values = t.float32Values() else { throw bad("tensor '\(n)' is \(t.dtype.rawValue), expected F32") }
            tensors[n] = Tensor(shape: t.shape, data: values)
        }
        if let problem = floatTensorProblem(tensors) { throw bad(problem) }
        return FloatModel(architecture: architecture, frontend: meta.frontend, labels: labels, tensors: tensors,
                          sourceSHA256: meta.sourceSHA256, name: meta.name)
    }
}

/// The `__metadata__` every EarTag model file carries, float or int8, read and checked in one place.
struct ModelMetadata {
    let architecture: Architecture
    let frontend: FrontendSettings
    let labels: [Label]
    let name: String
    let sourceSHA256: String?

    /// Checks `format` and decodes the architecture (family "mn"), frontend, labels and name.
    init(file: SafetensorsFile, path: String, format: String) throws {
        /// Model file error helper.
        func bad(_ r: String) -> ModelError { .badModelFile(path: path, reason: r) }
        guard let f = file.metadata["format"] else { throw bad("metadata 'format' is missing (not an EarTag model file)") }
        guard f == format else { throw bad("format '\(f)' is not '\(format)'") }
        /// Decodes a JSON metadata value.
        func decode<T: Decodable>(_ type: T.Type, _ key: String) throws -> T {
            guard let s = file.metadata[key] else { throw bad("metadata '\(key)' is missing") }
            do { return try JSONDecoder().decode(T.self, from: Data(s.utf8)) } catch {
                throw bad("metadata '\(key)' is not valid: \(oneLine(error))")
            }
        }
        architecture = try decode(Architecture.self, "eartag.architecture")
        frontend = try decode(FrontendSettings.self, "eartag.frontend")
        labels = try decode([Label].self, "eartag.labels")
        guard let n = file.metadata["eartag.name"] else { throw bad("metadata 'eartag.name' is missing") }
        name = n
        guard architecture.family == "mn" else { throw bad("architecture family '\(architecture.family)' is not supported") }
        if let problem = architecture.boundsProblem() { throw bad("metadata 'eartag.architecture': \(problem)") }
        if let problem = frontend.boundsProblem() { throw bad("metadata 'eartag.frontend': \(problem)") }
        sourceSHA256 = file.metadata["eartag.source_sha256"]
    }
}
