// Reading and writing NumPy `.npy` arrays (format versions 1-3, little-endian, C order).
// ref: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagPlatform

/// A numeric NumPy array converted to float32, with its shape.
public struct NumpyArray: Sendable, Equatable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        self.shape = shape
        self.data = data
    }

    /// Why an `.npy` file could not be read.
    public enum Error: Swift.Error, CustomStringConvertible, Equatable {
        case notNpy(String)
        case unsupported(String, String)
        case truncated(String)
        case tooLarge(String)

        public var description: String {
            switch self {
            case .notNpy(let p): return "\(p): not a NumPy .npy file (bad magic)"
            case .unsupported(let p, let why): return "\(p): unsupported .npy array: \(why)"
            case .truncated(let p): return "\(p): .npy file is truncated (data shorter than its shape)"
            case .tooLarge(let p): return "\(p): .npy array is larger than the allowed limit"
            }
        }
    }

    /// Largest element count accepted, so a hostile header cannot make us allocate what it claims.
    public static let maxElements = 1 << 28

    /// Reads an `.npy` file; float32, float64, int32 and int64 data are converted to float32.
    public static func read(path: String) throws -> NumpyArray {
        guard let bytes = FileManager.default.contents(atPath: path) else {
            throw CocoaError(.fileReadNoSuchFile, userInfo: ["NSFilePath": path])
        }
        return try parse([UInt8](bytes), name: path)
    }

    /// Parses `.npy` bytes; `name` is used in error messages.
    public static func parse(_ b: [UInt8], name: String) throws -> NumpyArray {
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard b.count >= 10, Array(b[0..<6]) == magic else { throw Error.notNpy(name) }
        let major = b[6]
        var headerLen: Int
        var offset: Int
        if major == 1 {
            headerLen = Int(b[8]) | Int(b[9]) << 8
            offset = 10
        } else if major == 2 || major == 3 {
            guard b.count >= 12 else { throw Error.truncated(name) }
            headerLen = Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24
            offset = 12
        } else {
            throw Error.unsupported(name, "format version \(major)")
        }
        guard offset + headerLen <= b.count else { throw Error.truncated(name) }
        guard let header = String(bytes: b[offset..<offset + headerLen], encoding: .utf8) else {
            throw Error.unsupported(name, "header is not text")
        }
        offset += headerLen
        let descr = try field(header, "descr", name)
        let fortran = try field(header, "fortran_order", name)
        guard fortran.hasPrefix("False") else { throw Error.unsupported(name, "Fortran order") }
        let shapeText = try field(header, "shape", name)
        // The ")" searched after the "(" (a ")" before it made an inverted range and trapped).
        guard let open = shapeText.firstIndex(of: "("), let close = shapeText[open...].firstIndex(of: ")") else {
            throw Error.unsupported(name, "shape \(shapeText)")
        }
        var shape: [Int] = []
        for part in shapeText[shapeText.index(after: open)..<close].split(separator: ",") {
            let t = part.trimmingSpaces()
            if t.isEmpty { continue }
            guard let v = Int(t), v >= 0 else { throw Error.unsupported(name, "shape \(shapeText)") }
            shape.append(v)
        }
        var count = 1
        for d in shape {
            let (p, o) = count.multipliedReportingOverflow(by: d)
            guard !o, p <= maxElements else { throw Error.tooLarge(name) }
            count = p
        }
        let width: Int
        switch descr {
        case "<f4", "<i4": width = 4
        case "<f8", "<i8": width = 8
        default: throw Error.unsupported(name, "dtype \(descr)")
        }
        guard b.count - offset >= count * width else { throw Error.truncated(name) }
        var out = [Float](repeating: 0, count: count)
        b.withUnsafeBytes { raw in
            let base = raw.baseAddress! + offset
            for i in 0..<count {
                switch descr {
                case "<f4": out[i] = Float(bitPattern: (base + 4 * i).loadUnaligned(as: UInt32.self).littleEndian)
                case "<i4": out[i] = Float(Int32(littleEndian: (base + 4 * i).loadUnaligned(as: Int32.self)))
                case "<f8":
                    out[i] = Float(Double(bitPattern: (base + 8 * i).loadUnaligned(as: UInt64.self).littleEndian))
                default: out[i] = Float(Int64(littleEndian: (base + 8 * i).loadUnaligned(as: Int64.self)))
                }
            }
        }
        return NumpyArray(shape: shape, data: out)
    }

    /// Serialises as a version-1 `.npy` with dtype `<f4`.
    public func serialized() -> [UInt8] {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0]
        let n = header.utf8.count
        out += [UInt8(n & 0xFF), UInt8(n >> 8)]
        out += Array(header.utf8)
        out.reserveCapacity(out.count + 4 * data.count)
        for v in data { withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 } }
        return out
    }

    /// Writes the array as a float32 `.npy` file.
    public func write(path: String) throws {
        try Data(serialized()).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Extracts the value text of `key` from a `.npy` header dictionary.
    private static func field(_ header: String, _ key: String, _ name: String) throws -> String {
        guard let r = header.firstRange(of: "'\(key)':") else { throw Error.unsupported(name, "header lacks \(key)") }
        let rest = header[r.upperBound...].drop(while: { $0 == " " })
        if rest.first == "'" {
            let body = rest.dropFirst()
            guard let end = body.firstIndex(of: "'") else { throw Error.unsupported(name, "header \(key)") }
            return String(body[..<end])
        }
        if rest.first == "(" {
            guard let end = rest.firstIndex(of: ")") else { throw Error.unsupported(name, "header \(key)") }
            return String(rest[...end])
        }
        return String(rest.prefix(while: { $0 != "," && $0 != "}" }))
    }
}
