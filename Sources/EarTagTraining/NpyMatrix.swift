// Two-dimensional float `.npy` files too large to convert in memory: header parsing, row access on mapped bytes,
// and the header of a float32 file written row by row.
// ref: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html (magic, version, header dict, padding)
import Foundation
import EarTagModel

/// Element types a teacher's logits may be stored in (little-endian).
public enum NpyFloatType: String, Sendable {
    case float16 = "<f2"
    case float32 = "<f4"
    case float64 = "<f8"

    /// Bytes per element.
    public var width: Int {
        switch self {
        case .float16: return 2
        case .float32: return 4
        case .float64: return 8
        }
    }
}

/// Why a matrix `.npy` file was refused.
public enum NpyMatrixError: Error, CustomStringConvertible, Equatable {
    case notNpy(String)
    case badHeader(String, String)
    case truncated(String, expectedBytes: Int, actualBytes: Int)

    /// One line naming the file and the problem.
    public var description: String {
        switch self {
        case .notNpy(let f): return "\(f): not a NumPy .npy file (bad magic)"
        case let .badHeader(f, why): return "\(f): unsupported .npy header: \(why)"
        case let .truncated(f, expected, actual):
            return "\(f): .npy file is truncated: its shape needs \(expected) data bytes, the file holds \(actual)"
        }
    }
}

/// The header of a C-order, two-dimensional float `.npy` file.
public struct NpyMatrixHeader: Sendable, Equatable {
    public var type: NpyFloatType
    public var rows: Int
    public var columns: Int
    /// Byte offset of the first element.
    public var dataOffset: Int

    /// Bytes of element data the shape requires.
    public var dataBytes: Int { rows * columns * type.width }

    /// Largest element count accepted (2^34: AudioSet's 2 M clips x 527 classes fit; a hostile shape does not overflow).
    public static let maxElements = 1 << 34
    /// Longest header accepted (NumPy writes well under 1 KiB for 2-D arrays).
    public static let maxHeaderBytes = 1 << 16

    /// Parses the header at the start of `bytes` (the whole file or at least its header); `name` is for errors.
    public static func parse(_ bytes: UnsafeRawBufferPointer, name: String) throws -> NpyMatrixHeader {
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else { throw NpyMatrixError.notNpy(name) }
        let version = bytes[6]
        let lengthBytes: Int
        switch version {
        case 1: lengthBytes = 2
        case 2, 3: lengthBytes = 4
        default: throw NpyMatrixError.badHeader(name, "format version \(version)")
        }
        guard bytes.count >= 8 + lengthBytes else { throw NpyMatrixError.badHeader(name, "header length missing") }
        var length = 0
        for i in 0..<lengthBytes { length |= Int(bytes[8 + i]) << (8 * i) }
        guard length <= maxHeaderBytes else { throw NpyMatrixError.badHeader(name, "header of \(length) bytes") }
        let start = 8 + lengthBytes
        guard bytes.count >= start + length else { throw NpyMatrixError.badHeader(name, "header cut short") }
        let text = String(decoding: bytes[start..<start + length], as: UTF8.self)
        let fields = try dictionary(text, name: name)
        guard let descr = fields["descr"], let type = NpyFloatType(rawValue: descr) else {
            throw NpyMatrixError.badHeader(name, "dtype \(fields["descr"] ?? "missing") (want <f2, <f4 or <f8)")
        }
        guard fields["fortran_order"] == "False" else { throw NpyMatrixError.badHeader(name, "not C order") }
        guard let shapeText = fields["shape"] else { throw NpyMatrixError.badHeader(name, "no shape") }
        let dims = shapeText.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard dims.count == 2, let rows = Int(dims[0]), let columns = Int(dims[1]), rows >= 0, columns >= 0 else {
            throw NpyMatrixError.badHeader(name, "shape (\(shapeText)) is not rows x classes")
        }
        let (elements, overflow) = rows.multipliedReportingOverflow(by: columns)
        guard !overflow, elements <= maxElements else { throw NpyMatrixError.badHeader(name, "shape (\(shapeText)) too large") }
        return NpyMatrixHeader(type: type, rows: rows, columns: columns, dataOffset: start + length)
    }

    /// Splits `{'key': value, ...}` into raw value texts (quotes and tuple parentheses removed).
    private static func dictionary(_ text: String, name: String) throws -> [String: String] {
        var body = Substring(text).trimmingCharacters(in: .whitespacesAndNewlines)[...]
        guard body.first == "{", body.last == "}" else { throw NpyMatrixError.badHeader(name, "not a dictionary") }
        body = body.dropFirst().dropLast()
        var out: [String: String] = [:]
        while true {
            body = body.drop(while: { $0 == " " || $0 == "," })
            guard let q = body.first else { break }
            guard q == "'" || q == "\"", let keyEnd = body.dropFirst().firstIndex(of: q) else {
                throw NpyMatrixError.badHeader(name, "unquoted key")
            }
            let key = String(body[body.index(after: body.startIndex)..<keyEnd])
            body = body[body.index(after: keyEnd)...].drop(while: { $0 == " " })
            guard body.first == ":" else { throw NpyMatrixError.badHeader(name, "no ':' after '\(key)'") }
            body = body.dropFirst().drop(while: { $0 == " " })
            let value: Substring
            if let open = body.first, open == "(" || open == "'" || open == "\"" {
                let close: Character = open == "(" ? ")" : open
                guard let end = body.dropFirst().firstIndex(of: close) else {
                    throw NpyMatrixError.badHeader(name, "unterminated value of '\(key)'")
                }
                value = body[body.index(after: body.startIndex)..<end]
                body = body[body.index(after: end)...]
            } else {
                let end = body.firstIndex(of: ",") ?? body.endIndex
                value = body[..<end]
                body = body[end...]
            }
            guard out[key] == nil else { throw NpyMatrixError.badHeader(name, "key '\(key)' twice") }
            out[key] = value.trimmingCharacters(in: .whitespaces)
        }
        return out
    }

    /// The version-1 header of a float32 matrix (NumPy's own layout, padded to 64 bytes), data to follow.
    public static func float32HeaderBytes(rows: Int, columns: Int) -> [UInt8] {
        // An empty NumpyArray serialises to exactly its header.
        NumpyArray(shape: [rows, columns], data: []).serialized()
    }
}

/// Reads one row of a mapped matrix as float32 (converting float16 and float64).
/// Invariant: `row < header.rows` and `bytes` holds at least `header.dataOffset + header.dataBytes` bytes.
func npyRow(_ bytes: UnsafeRawBufferPointer, _ header: NpyMatrixHeader, row: Int) -> [Float] {
    let n = header.columns
    let base = header.dataOffset + row * n * header.type.width
    var out = [Float](repeating: 0, count: n)
    for j in 0..<n {
        switch header.type {
        case .float16:
            out[j] = Float(Float16(bitPattern: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: base + 2 * j, as: UInt16.self))))
        case .float32:
            out[j] = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: base + 4 * j, as: UInt32.self)))
        case .float64:
            out[j] = Float(Double(bitPattern: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: base + 8 * j, as: UInt64.self))))
        }
    }
    return out
}
