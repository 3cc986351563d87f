// Checks a RIFF/WAVE header against the bytes actually present, which libsndfile silently tolerates.
// ref: Microsoft RIFF/WAVE spec ("RIFF" size "WAVE", then chunks: 4-byte id, 4-byte little-endian size, even padding)

/// The `data` chunk of a RIFF/WAVE file, as declared by its header and as present on disk.
struct WAVDataChunk: Equatable {
    /// Bytes the `data` chunk header declares.
    var declaredBytes: Int64
    /// Bytes that actually follow the `data` chunk header in the file.
    var availableBytes: Int64
    /// Offset of the `data` chunk's 4-byte size field.
    var sizeFieldOffset: Int

    /// True when the header promises more audio bytes than the file holds.
    /// Sizes 0 and 0xFFFFFFFF are "unknown length" placeholders written by streaming encoders (and RF64), not lies.
    var isTruncated: Bool {
        declaredBytes != 0 && declaredBytes != 0xFFFF_FFFF && declaredBytes > availableBytes
    }

    /// For a WAV stream whose header holds placeholder sizes (0, 0xFFFFFFFF, or more than was sent), a copy of the
    /// bytes whose RIFF and `data` sizes say "everything present", so libsndfile reads all of it.
    func patchedForStream(_ bytes: [UInt8]) -> [UInt8] {
        guard declaredBytes != availableBytes, availableBytes <= 0xFFFF_FFFF - 64 else { return bytes }
        var out = bytes
        /// Stores a little-endian UInt32.
        func put(_ value: Int64, at offset: Int) {
            for k in 0..<4 { out[offset + k] = UInt8(truncatingIfNeeded: value >> (8 * Int64(k))) }
        }
        put(availableBytes, at: sizeFieldOffset)
        put(Int64(bytes.count) - 8, at: 4)
        return out
    }

    /// Finds the `data` chunk in the first bytes of a file of `fileSize` bytes; nil when not RIFF/WAVE or not found.
    static func locate(prefix: [UInt8], fileSize: Int64) -> WAVDataChunk? {
        guard prefix.count >= 12,
              prefix[0..<4].elementsEqual("RIFF".utf8), prefix[8..<12].elementsEqual("WAVE".utf8) else { return nil }
        /// Little-endian UInt32 at an offset of the prefix.
        func u32(_ at: Int) -> Int64 {
            Int64(prefix[at]) | Int64(prefix[at + 1]) << 8 | Int64(prefix[at + 2]) << 16 | Int64(prefix[at + 3]) << 24
        }
        var offset = 12
        while offset + 8 <= prefix.count {
            let size = u32(offset + 4)
            if prefix[offset..<offset + 4].elementsEqual("data".utf8) {
                let start = Int64(offset + 8)
                return WAVDataChunk(declaredBytes: size, availableBytes: max(0, fileSize - start),
                                    sizeFieldOffset: offset + 4)
            }
            let next = Int64(offset) + 8 + size + (size & 1)
            guard next <= Int64(prefix.count) else { return nil }  // chunk ends beyond what we read: give up quietly
            offset = Int(next)
        }
        return nil
    }
}
