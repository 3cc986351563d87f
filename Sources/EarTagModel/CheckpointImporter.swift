// Imports an EfficientAT MN PyTorch checkpoint (torch.save zip of a state dict) into a FloatModel.
// ref: torch/serialization.py (_save/_load zip layout: <top>/data.pkl, <top>/data/<key>), torch/_utils.py.
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Element types of torch storages, by storage class name.
enum StorageDType: String {
    case float32 = "FloatStorage", float64 = "DoubleStorage", float16 = "HalfStorage", bfloat16 = "BFloat16Storage"
    case int64 = "LongStorage", int32 = "IntStorage", int16 = "ShortStorage", int8 = "CharStorage"
    case uint8 = "ByteStorage", bool = "BoolStorage"

    /// Bytes per element.
    var size: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    /// True for the floating-point types converted to float32 on import.
    var isFloat: Bool { [.float32, .float64, .float16, .bfloat16].contains(self) }
}

/// A parsed checkpoint: the zip, its top folder, and the raw tensor references in pickle order.
struct CheckpointReader {
    let path: String
    let zip: ZipArchive
    /// Top folder of the entries (e.g. "archive").
    let top: String
    /// Tensor references of the state dict, in the pickle's order (including `num_batches_tracked`).
    let entries: [(name: String, tensor: TensorRef)]

    /// Largest element count of one tensor accepted.
    static let maxElements = 1 << 31
    /// False only in the checkpoint fuzz target, so mutated pickles and storages are not all stopped by their CRC-32.
    nonisolated(unsafe) static var verifyCRC = true

    /// Opens the checkpoint, runs the restricted unpickler and locates the state dict.
    init(path: String) throws {
        try self.init(zip: try ZipArchive(path: path), path: path)
    }

    /// Parses checkpoint bytes held in memory; `path` names them in errors.
    init(bytes: [UInt8], path: String) throws {
        try self.init(zip: try ZipArchive(bytes: bytes, path: path), path: path)
    }

    /// Runs the restricted unpickler over an opened archive and locates the state dict.
    private init(zip: ZipArchive, path: String) throws {
        self.path = path
        self.zip = zip
        let pickles = zip.entries.filter { e in
            let parts = e.name.split(separator: "/", omittingEmptySubsequences: false)
            return parts.count == 2 && parts[1] == "data.pkl" && !parts[0].isEmpty
        }
        guard let pkl = pickles.first else { throw ModelError.missingEntry(path: path, entry: "*/data.pkl") }
        guard pickles.count == 1 else { throw ModelError.badZip(path: path, reason: "several */data.pkl entries") }
        top = String(pkl.name.dropLast("/data.pkl".count))
        let root = try Unpickler(path: path).load(try zip.data(of: pkl, verifyCRC: Self.verifyCRC))
        entries = try Self.stateDictEntries(root, path: path)
    }

    /// Finds the state dict in the unpickled object (itself, or under a `state_dict` / `model` key) and lists it.
    static func stateDictEntries(_ root: PickleValue, path: String) throws -> [(name: String, tensor: TensorRef)] {
        guard case .dict(var dict) = root else {
            throw ModelError.notAStateDict(path: path, reason: "the pickled object is not a dict")
        }
        let allTensors = { (d: PickleDict) in d.items.allSatisfy { if case .tensor = $0.value { return true }; return false } }
        if !allTensors(dict) {
            for wrapper in ["state_dict", "model"] {
                if let inner = dict.items.first(where: { $0.key.stringValue == wrapper })?.value,
                   case .dict(let d) = inner {
                    dict = d
                    break
                }
            }
        }
        var result: [(name: String, tensor: TensorRef)] = []
        var seen = Set<String>()
        for (key, value) in dict.items {
            guard let name = key.stringValue else {
                throw ModelError.notAStateDict(path: path, reason: "a key is not a string")
            }
            guard case .tensor(let t) = value else {
                throw ModelError.notAStateDict(path: path, reason: "entry '\(name)' is not a tensor")
            }
            guard seen.insert(name).inserted else {
                throw ModelError.notAStateDict(path: path, reason: "entry '\(name)' appears twice")
            }
            result.append((name, t))
        }
        if result.isEmpty { throw ModelError.notAStateDict(path: path, reason: "the state dict is empty") }
        // A model saved from nn.DataParallel prefixes every name with "module.".
        if result.allSatisfy({ $0.name.hasPrefix("module.") }) {
            result = result.map { (String($0.name.dropFirst("module.".count)), $0.tensor) }
        }
        return result
    }

    /// Reads one tensor's values as float32 (gathering arbitrary strides), checking every bound.
    func materialize(name: String, _ t: TensorRef) throws -> Tensor {
        /// Tensor error helper.
        func unsupported(_ r: String) -> ModelError { .unsupportedTensor(path: path, tensor: name, reason: r) }
        guard let dtype = StorageDType(rawValue: t.storage.typeName) else { throw unsupported("storage type \(t.storage.typeName)") }
        guard dtype.isFloat else { throw unsupported("\(t.storage.typeName) is not a floating-point type") }
        guard t.shape.allSatisfy({ $0 >= 0 }), t.stride.allSatisfy({ $0 >= 0 }), t.offset >= 0 else {
            throw unsupported("negative size, stride or offset")
        }
        var count = 1
        for s in t.shape {
            let (p, o) = count.multipliedReportingOverflow(by: s)
            guard !o, p <= Self.maxElements else { throw unsupported("more than \(Self.maxElements) elements") }
            count = p
        }
        var needed = 0
        if count > 0 {
            let (first, o) = t.offset.addingReportingOverflow(1)
            guard !o else { throw unsupported("storage offset overflows") }
            needed = first
            for (s, st) in Swift.zip(t.shape, t.stride) {
                let (p, o) = (s - 1).multipliedReportingOverflow(by: st)
                let (q, o2) = needed.addingReportingOverflow(p)
                guard !o, !o2 else { throw unsupported("strides overflow") }
                needed = q
            }
        }
        let entryName = "\(top)/data/\(t.storage.key)"
        guard let entry = zip.entry(named: entryName) else { throw ModelError.missingEntry(path: path, entry: entryName) }
        let bytes = try zip.data(of: entry, verifyCRC: Self.verifyCRC)
        let holds = min(bytes.count / dtype.size, t.storage.numel)
        guard needed <= holds else {
            throw ModelError.storageTooShort(path: path, tensor: name, needed: needed, storage: t.storage.key, holds: holds)
        }
        // Zero strides could make a one-element storage claim billions of elements: a tensor may not have more
        // elements than its storage holds (torch.save writes parameters and buffers with their own storage).
        guard count <= holds else {
            throw unsupported("\(count) elements but its storage \(t.storage.key) holds only \(holds)")
        }
        var out = [Float](repeating: 0, count: count)
        if count == 0 { return Tensor(shape: t.shape, data: out) }
        bytes.withUnsafeBytes { raw in
            /// Storage element `i` converted to float32.
            func value(_ i: Int) -> Float {
                let o = i * dtype.size
                switch dtype {
                case .float32: return Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self)))
                case .float64: return Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt64.self))))
                case .float16: return halfToFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self)))
                case .bfloat16:
                    let h = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self))
                    return Float(bitPattern: UInt32(h) << 16)
                default: return 0
                }
            }
            // Row-major walk over the shape, storage index = offset + sum(index_i * stride_i).
            let rank = t.shape.count
            var index = [Int](repeating: 0, count: rank)
            var storageIndex = t.offset
            for n in 0..<count {
                out[n] = value(storageIndex)
                var d = rank - 1
                while d >= 0 {
                    index[d] += 1
                    storageIndex += t.stride[d]
                    if index[d] < t.shape[d] { break }
                    storageIndex -= t.stride[d] * index[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
        return Tensor(shape: t.shape, data: out)
    }

    /// The float tensors of the state dict, `num_batches_tracked` dropped.
    func stateDict() throws -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for (name, t) in entries where !name.hasSuffix("num_batches_tracked") {
            result[name] = try materialize(name: name, t)
        }
        return result
    }
}

/// IEEE 754 binary16 bits to Float.
func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h >> 15) << 31
    let exponent = Int((h >> 10) & 0x1F)
    let mantissa = UInt32(h & 0x3FF)
    if exponent == 0 {
        let v = Float(mantissa) * Float(sign == 0 ? 1 : -1) / Float(1 << 24) // subnormal: m * 2^-24
        return v
    }
    if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13) }
    return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | mantissa << 13)
}

/// Imports EfficientAT MN checkpoints.
public enum CheckpointImporter {
    /// Reads a checkpoint's state dict as float32 tensors (`num_batches_tracked` dropped), without inference.
    public static func readStateDict(path: String) throws -> [String: Tensor] {
        try CheckpointReader(path: path).stateDict()
    }

    /// Reads a checkpoint's state dict from bytes held in memory; `name` names them in errors.
    public static func readStateDict(bytes: [UInt8], name: String) throws -> [String: Tensor] {
        try CheckpointReader(bytes: bytes, path: name).stateDict()
    }

    /// Imports a checkpoint: reads the state dict, infers and validates the architecture, attaches labels.
    /// `labelsPath` nil looks for `class_labels_indices.csv` beside the checkpoint; without one, 527-class models
    /// are refused (pass labels) and other class counts get generic labels `class_<i>`.
    public static func importCheckpoint(path: String, strides: [Int] = [2, 2, 2, 2], dilated: Bool = false,
                                        labelsPath: String?, name: String?) throws -> FloatModel {
        guard strides.count == 4, strides.allSatisfy({ $0 == 1 || $0 == 2 }) else {
            throw ModelError.invalidArgument("strides must be four values, each 1 or 2 (got \(strides))")
        }
        let reader = try CheckpointReader(path: path)
        let names = reader.entries.map(\.name)
        if ArchitectureInference.looksLikeDyMN(names) { throw ModelError.dymnNotSupported(path: path) }
        let tensors = try reader.stateDict()
        let architecture = try ArchitectureInference.infer(shapes: tensors.mapValues(\.shape), path: path,
                                                           strides: strides, dilated: dilated)
        let labels = try resolveLabels(checkpoint: path, labelsPath: labelsPath, classes: architecture.numClasses)
        return FloatModel(architecture: architecture, frontend: .efficientAT, labels: labels, tensors: tensors,
                          sourceSHA256: sha256Hex(of: reader.zip.bytes), name: name ?? defaultName(for: path))
    }

    /// Labels for a model with `classes` outputs: from `labelsPath`, else beside the checkpoint, else generic.
    static func resolveLabels(checkpoint: String, labelsPath: String?, classes: Int) throws -> [Label] {
        var file = labelsPath
        if file == nil {
            let beside = URL(fileURLWithPath: checkpoint).deletingLastPathComponent()
                .appendingPathComponent("class_labels_indices.csv").path
            if FileManager.default.fileExists(atPath: beside) { file = beside }
        }
        if let file {
            let labels = try LabelFile.read(path: file)
            guard labels.count == classes else { throw ModelError.labelCount(path: file, labels: labels.count, classes: classes) }
            return labels
        }
        if classes == 527 { throw ModelError.labelsRequired(path: checkpoint) }
        return (0..<classes).map { Label(index: $0, mid: "", displayName: "class_\($0)") }
    }

    /// The checkpoint file name without extension and without a trailing `_mAP_<digits>` suffix.
    public static func defaultName(for path: String) -> String {
        var stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        if let r = stem.ranges(of: "_mAP_").last {
            let tail = stem[r.upperBound...]
            if !tail.isEmpty, tail.allSatisfy(\.isASCII), tail.allSatisfy(\.isNumber) { stem = String(stem[..<r.lowerBound]) }
        }
        return stem
    }
}
