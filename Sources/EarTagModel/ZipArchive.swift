// A minimal, bounds-checked reader for the stored (uncompressed) ZIP archives that torch.save writes.
// ref: PKWARE APPNOTE.TXT 6.3.x sections 4.3.7 (local header), 4.3.12 (central directory), 4.3.14-4.3.16 (ZIP64
// end records), 4.5.3 (ZIP64 extra field); torch/csrc/jit/serialization (PyTorchStreamWriter stores entries).
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif


/// One file inside a ZIP archive, located by its byte range in the archive.
struct ZipEntry: Sendable {
    var name: String
    /// Compression method (0 = stored).
    var method: Int
    var crc32: UInt32
    /// Range of the entry's data inside the archive bytes.
    var dataRange: Range<Int>
}

/// A parsed ZIP archive over the whole file's bytes; entry data are zero-copy slices of those bytes.
struct ZipArchive: Sendable {
    /// Path used in error messages.
    let path: String
    let bytes: [UInt8]
    /// Entries in central-directory order.
    private(set) var entries: [ZipEntry] = []
    private var index: [String: Int] = [:]

    /// Largest number of entries accepted.
    static let maxEntries = 1_000_000

    /// Reads and parses the archive at `path`.
    init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.unreadable(path: path, reason: "no such file or not readable")
        }
        try self.init(bytes: [UInt8](data), path: path)
    }

    /// Parses archive bytes; `path` names them in errors.
    init(bytes: [UInt8], path: String) throws {
        self.path = path
        self.bytes = bytes
        try parse()
    }

    /// Error helper.
    private func bad(_ reason: String) -> ModelError { .badZip(path: path, reason: reason) }

    /// Little-endian unsigned integer of `n` bytes at `offset`, bounds-checked.
    private func le(_ offset: Int, _ n: Int) throws -> UInt64 {
        guard offset >= 0, n <= 8, offset <= bytes.count - n else { throw bad("record at offset \(offset) is cut off") }
        var v: UInt64 = 0
        for i in 0..<n { v |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
        return v
    }

    /// Converts a 64-bit size or offset to Int, refusing values beyond the file.
    private func bounded(_ v: UInt64, _ what: String) throws -> Int {
        guard v <= UInt64(bytes.count) else { throw bad("\(what) \(v) lies beyond the end of the file (\(bytes.count) bytes)") }
        return Int(v)
    }

    /// Locates the end-of-central-directory record and reads the central directory and local headers.
    private mutating func parse() throws {
        if bytes.isEmpty { throw bad("the file is empty") }
        guard bytes.count >= 22 else { throw bad("file too short for a zip (\(bytes.count) bytes)") }
        // ref: APPNOTE 4.3.16: the EOCD (22 bytes + comment of at most 65535 bytes) ends the file.
        var eocd = -1
        let lowest = max(0, bytes.count - 22 - 65535)
        var p = bytes.count - 22
        while p >= lowest {
            if bytes[p] == 0x50, bytes[p + 1] == 0x4b, bytes[p + 2] == 0x05, bytes[p + 3] == 0x06 {
                let commentLength = Int(try le(p + 20, 2))
                if p + 22 + commentLength == bytes.count { eocd = p; break }
            }
            p -= 1
        }
        guard eocd >= 0 else {
            if bytes[0] == 0x80, bytes[1] <= 5 { // a bare pickle: torch.save's legacy (pre-1.6) format
                throw bad("no end-of-central-directory record; this looks like a legacy non-zip torch.save file "
                          + "(re-save it with torch >= 1.6)")
            }
            throw bad("no end-of-central-directory record (not a zip, or truncated)")
        }
        var entryCount = try le(eocd + 10, 2)
        var cdSize = try le(eocd + 12, 4)
        var cdOffset = try le(eocd + 16, 4)
        if entryCount == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            // ref: APPNOTE 4.3.15 locator (20 bytes) right before the EOCD, pointing at the ZIP64 EOCD (4.3.14).
            let locator = eocd - 20
            guard locator >= 0, try le(locator, 4) == 0x0706_4b50 else { throw bad("ZIP64 locator missing") }
            let z64 = try bounded(try le(locator + 8, 8), "ZIP64 end record offset")
            guard try le(z64, 4) == 0x0606_4b50 else { throw bad("ZIP64 end record has a bad signature") }
            entryCount = try le(z64 + 32, 8)
            cdSize = try le(z64 + 40, 8)
            cdOffset = try le(z64 + 48, 8)
        }
        guard entryCount <= UInt64(Self.maxEntries) else { throw bad("too many entries (\(entryCount))") }
        let cdStart = try bounded(cdOffset, "central directory offset")
        let cdLength = try bounded(cdSize, "central directory size")
        guard cdStart <= bytes.count - cdLength else { throw bad("central directory runs past the end of the file") }
        var q = cdStart
        let cdEnd = cdStart + cdLength
        for _ in 0..<Int(entryCount) {
            guard q + 46 <= cdEnd, try le(q, 4) == 0x0201_4b50 else {
                throw bad("bad central directory record at offset \(q)")
            }
            let flags = try le(q + 8, 2)
            let method = Int(try le(q + 10, 2))
            let crc = UInt32(try le(q + 16, 4))
            var compressed = try le(q + 20, 4)
            var uncompressed = try le(q + 24, 4)
            let nameLength = Int(try le(q + 28, 2))
            let extraLength = Int(try le(q + 30, 2))
            let commentLength = Int(try le(q + 32, 2))
            var localOffset = try le(q + 42, 4)
            let nameStart = q + 46
            let extraStart = nameStart + nameLength
            let next = extraStart + extraLength + commentLength
            guard next <= cdEnd else { throw bad("central directory record at offset \(q) runs past the directory") }
            guard flags & 1 == 0 else { throw bad("encrypted entries are not supported") }
            let name = String(decoding: bytes[nameStart..<extraStart], as: UTF8.self)
            // ref: APPNOTE 4.5.3: ZIP64 extra field holds, in order, only the fields that are saturated above.
            var e = extraStart
            while e + 4 <= extraStart + extraLength {
                let id = try le(e, 2)
                let size = Int(try le(e + 2, 2))
                guard e + 4 + size <= extraStart + extraLength else { throw bad("bad extra field in entry '\(name)'") }
                if id == 1 {
                    var f = e + 4
                    let end = e + 4 + size
                    if uncompressed == 0xFFFF_FFFF { guard f + 8 <= end else { throw bad("short ZIP64 field") }
                        uncompressed = try le(f, 8); f += 8 }
                    if compressed == 0xFFFF_FFFF { guard f + 8 <= end else { throw bad("short ZIP64 field") }
                        compressed = try le(f, 8); f += 8 }
                    if localOffset == 0xFFFF_FFFF { guard f + 8 <= end else { throw bad("short ZIP64 field") }
                        localOffset = try le(f, 8); f += 8 }
                }
                e += 4 + size
            }
            let local = try bounded(localOffset, "local header offset of '\(name)'")
            guard try le(local, 4) == 0x0403_4b50 else { throw bad("entry '\(name)' has no local header at offset \(local)") }
            let localName = Int(try le(local + 26, 2))
            let localExtra = Int(try le(local + 28, 2))
            let dataStart = local + 30 + localName + localExtra
            let size = try bounded(compressed, "size of '\(name)'")
            guard dataStart <= bytes.count, size <= bytes.count - dataStart else {
                throw bad("data of entry '\(name)' runs past the end of the file")
            }
            if method == 0, uncompressed != compressed { throw bad("stored entry '\(name)' has inconsistent sizes") }
            if index[name] == nil { index[name] = entries.count }
            entries.append(ZipEntry(name: name, method: method, crc32: crc, dataRange: dataStart..<(dataStart + size)))
            q = next
        }
    }

    /// The entry with this exact name, if any.
    func entry(named name: String) -> ZipEntry? { index[name].map { entries[$0] } }

    /// The stored data of an entry (zero-copy), refusing compressed entries and checking the CRC-32.
    func data(of entry: ZipEntry, verifyCRC: Bool = true) throws -> ArraySlice<UInt8> {
        guard entry.method == 0 else { throw ModelError.compressedEntry(path: path, entry: entry.name, method: entry.method) }
        let slice = bytes[entry.dataRange]
        if verifyCRC, CRC32.checksum(slice) != entry.crc32 { throw bad("CRC-32 mismatch in entry '\(entry.name)'") }
        return slice
    }
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) as used by ZIP.
/// ref: APPNOTE 4.4.7.
public enum CRC32 {
    /// Byte-wise lookup table.
    static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// CRC-32 of the bytes.
    public static func checksum(_ bytes: some Collection<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        return c ^ 0xFFFF_FFFF
    }
}
