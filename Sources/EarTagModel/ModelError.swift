// Errors of checkpoint import, label reading and model files: each describes itself in one line naming the file.

/// Why a checkpoint, labels file or model file could not be read or written.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    /// The file could not be opened or read at all.
    case unreadable(path: String, reason: String)
    /// The file is not a (readable) ZIP archive: bad or missing records, truncation, out-of-bounds offsets.
    case badZip(path: String, reason: String)
    /// A ZIP entry uses a compression method other than "stored".
    case compressedEntry(path: String, entry: String, method: Int)
    /// A required ZIP entry (e.g. `*/data.pkl` or a tensor storage) is absent.
    case missingEntry(path: String, entry: String)
    /// The pickle stream is malformed or uses something the restricted unpickler does not support.
    case badPickle(path: String, reason: String)
    /// The pickle refers to a global outside the allow-list; it was never resolved nor executed.
    case forbiddenGlobal(path: String, global: String)
    /// A tensor's dtype, layout or storage reference is unsupported.
    case unsupportedTensor(path: String, tensor: String, reason: String)
    /// A tensor's shape, strides and offset reach past the end of its storage.
    case storageTooShort(path: String, tensor: String, needed: Int, storage: String, holds: Int)
    /// The checkpoint holds a DyMN (dynamic MobileNet) state dict.
    case dymnNotSupported(path: String)
    /// The top-level object is not a state dict of tensors.
    case notAStateDict(path: String, reason: String)
    /// The architecture could not be inferred from the state dict.
    case architecture(path: String, reason: String)
    /// A tensor the architecture needs is absent.
    case missingTensor(path: String, tensor: String)
    /// A tensor the architecture does not use is present.
    case unexpectedTensor(path: String, tensor: String)
    /// A tensor has another shape than the architecture needs.
    case tensorShape(path: String, tensor: String, expected: [Int], actual: [Int])
    /// A labels file is malformed; `line` is 1-based (0 when the problem is not tied to a line).
    case badLabels(path: String, line: Int, reason: String)
    /// The model has 527 classes but no labels file was given nor found beside the checkpoint.
    case labelsRequired(path: String)
    /// The labels file lists another number of classes than the model has.
    case labelCount(path: String, labels: Int, classes: Int)
    /// A safetensors file is malformed.
    case badSafetensors(path: String, reason: String)
    /// A safetensors file is well formed but is not a valid EarTag float model.
    case badModelFile(path: String, reason: String)
    /// Writing a file failed.
    case writeFailed(path: String, reason: String)
    /// An argument (strides, name, ...) is invalid.
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .unreadable(p, r): return "\(p): cannot read file: \(r)"
        case let .badZip(p, r): return "checkpoint \(p): not a readable PyTorch zip checkpoint: \(r)"
        case let .compressedEntry(p, e, m):
            return "checkpoint \(p): zip entry '\(e)' is compressed (method \(m)); only stored entries are supported"
        case let .missingEntry(p, e): return "checkpoint \(p): zip entry '\(e)' is missing"
        case let .badPickle(p, r): return "checkpoint \(p): bad or unsupported pickle: \(r)"
        case let .forbiddenGlobal(p, g):
            return "checkpoint \(p): pickle asks for forbidden global '\(g)' (refused, nothing was executed)"
        case let .unsupportedTensor(p, t, r): return "checkpoint \(p): tensor '\(t)': \(r)"
        case let .storageTooShort(p, t, n, k, m):
            return "checkpoint \(p): tensor '\(t)' needs \(n) elements but storage \(k) holds \(m)"
        case let .dymnNotSupported(p): return "checkpoint \(p): DyMN checkpoints are not supported yet"
        case let .notAStateDict(p, r): return "checkpoint \(p): not a state dict of tensors: \(r)"
        case let .architecture(p, r): return "checkpoint \(p): cannot infer the MN architecture: \(r)"
        case let .missingTensor(p, t): return "\(p): tensor '\(t)' is missing"
        case let .unexpectedTensor(p, t): return "\(p): unexpected tensor '\(t)' (not part of the inferred architecture)"
        case let .tensorShape(p, t, e, a): return "\(p): tensor '\(t)' has shape \(a), expected \(e)"
        case let .badLabels(p, l, r): return l > 0 ? "labels \(p):\(l): \(r)" : "labels \(p): \(r)"
        case let .labelsRequired(p):
            return "checkpoint \(p): 527 classes but no class_labels_indices.csv beside it; pass --labels FILE"
        case let .labelCount(p, l, c): return "labels \(p): \(l) labels but the model has \(c) classes"
        case let .badSafetensors(p, r): return "model file \(p): bad safetensors: \(r)"
        case let .badModelFile(p, r): return "model file \(p): \(r)"
        case let .writeFailed(p, r): return "\(p): cannot write: \(r)"
        case let .invalidArgument(r): return "invalid argument: \(r)"
        }
    }
}
