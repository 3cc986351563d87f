// Builders for synthetic PyTorch-style checkpoints: a stored-zip writer and a hand-rolled pickle emitter.
// ref: PKWARE APPNOTE.TXT 4.3.7/4.3.12/4.3.16; CPython Lib/pickletools.py opcodes.
import Foundation
@testable import EarTagModel

/// Writes stored (uncompressed) ZIP archives.
struct StoredZipWriter {
    /// Entries as (name, data, compression method written in the headers).
    var entries: [(name: String, data: [UInt8], method: UInt16)] = []
    /// Write ZIP64 end records (with the classic EOCD fields saturated) as large archives do.
    var zip64 = false

    /// Adds an entry (method 0 = stored; other values only mislabel the headers, the data stays raw).
    mutating func add(_ name: String, _ data: [UInt8], method: UInt16 = 0) { entries.append((name, data, method)) }

    /// The archive bytes.
    func bytes() -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        /// Appends a little-endian UInt16.
        func u16(_ v: UInt16, _ a: inout [UInt8]) { a += [UInt8(v & 0xFF), UInt8(v >> 8)] }
        /// Appends a little-endian UInt32.
        func u32(_ v: UInt32, _ a: inout [UInt8]) { for i in 0..<4 { a.append(UInt8((v >> (8 * UInt32(i))) & 0xFF)) } }
        for e in entries {
            let offset = UInt32(out.count)
            let name = Array(e.name.utf8)
            let crc = CRC32.checksum(e.data)
            u32(0x0403_4b50, &out); u16(20, &out); u16(0, &out); u16(e.method, &out); u16(0, &out); u16(0, &out)
            u32(crc, &out); u32(UInt32(e.data.count), &out); u32(UInt32(e.data.count), &out)
            u16(UInt16(name.count), &out); u16(0, &out); out += name; out += e.data
            u32(0x0201_4b50, &central); u16(20, &central); u16(20, &central); u16(0, &central); u16(e.method, &central)
            u16(0, &central); u16(0, &central); u32(crc, &central); u32(UInt32(e.data.count), &central)
            u32(UInt32(e.data.count), &central); u16(UInt16(name.count), &central); u16(0, &central); u16(0, &central)
            u16(0, &central); u16(0, &central); u32(0, &central); u32(offset, &central); central += name
        }
        let cdOffset = UInt32(out.count)
        out += central
        if zip64 {
            /// Appends a little-endian UInt64.
            func u64(_ v: UInt64, _ a: inout [UInt8]) { for i in 0..<8 { a.append(UInt8((v >> (8 * UInt64(i))) & 0xFF)) } }
            let z64 = UInt64(out.count)
            u32(0x0606_4b50, &out); u64(44, &out); u16(45, &out); u16(45, &out); u32(0, &out); u32(0, &out)
            u64(UInt64(entries.count), &out); u64(UInt64(entries.count), &out); u64(UInt64(central.count), &out)
            u64(UInt64(cdOffset), &out)
            u32(0x0706_4b50, &out); u32(0, &out); u64(z64, &out); u32(1, &out)
            u32(0x0605_4b50, &out); u16(0xFFFF, &out); u16(0xFFFF, &out); u16(0xFFFF, &out); u16(0xFFFF, &out)
            u32(0xFFFF_FFFF, &out); u32(0xFFFF_FFFF, &out); u16(0, &out)
            return out
        }
        u32(0x0605_4b50, &out); u16(0, &out); u16(0, &out); u16(UInt16(entries.count), &out)
        u16(UInt16(entries.count), &out); u32(UInt32(central.count), &out); u32(cdOffset, &out); u16(0, &out)
        return out
    }
}

/// Emits pickle protocol-2 opcodes.
struct PickleEmitter {
    var b: [UInt8] = [0x80, 0x02]
    /// Appends an opcode byte.
    mutating func op(_ o: UInt8) { b.append(o) }
    /// MARK.
    mutating func mark() { op(0x28) }
    /// BINUNICODE.
    mutating func string(_ s: String) {
        let u = Array(s.utf8)
        op(0x58); for i in 0..<4 { b.append(UInt8((u.count >> (8 * i)) & 0xFF)) }; b += u
    }
    /// BININT.
    mutating func int(_ v: Int) {
        op(0x4A); let u = UInt32(bitPattern: Int32(v)); for i in 0..<4 { b.append(UInt8((u >> (8 * UInt32(i))) & 0xFF)) }
    }
    /// GLOBAL.
    mutating func global(_ module: String, _ name: String) { op(0x63); b += Array("\(module)\n\(name)\n".utf8) }
    /// SHORT_BINUNICODE x2 + STACK_GLOBAL.
    mutating func stackGlobal(_ module: String, _ name: String) {
        for s in [module, name] { let u = Array(s.utf8); op(0x8C); b.append(UInt8(u.count)); b += u }
        op(0x93)
    }
    /// A tuple of ints.
    mutating func ints(_ v: [Int]) { mark(); for x in v { int(x) }; op(0x74) }
    /// STOP.
    mutating func stop() { op(0x2E) }
}

/// One tensor of a synthetic checkpoint.
struct FakeTensor {
    var name: String
    var shape: [Int]
    var stride: [Int]? = nil
    var offset = 0
    var storageType = "FloatStorage"
    /// Storage contents (raw little-endian bytes) and its claimed element count.
    var storage: [UInt8]
    var numel: Int
}

/// Builds a torch.save-like zip checkpoint.
enum FakeCheckpoint {
    /// Little-endian float32 bytes.
    static func f32(_ v: [Float]) -> [UInt8] { v.flatMap { x in (0..<4).map { UInt8((x.bitPattern >> (8 * UInt32($0))) & 0xFF) } } }

    /// A float32 tensor with contiguous strides and values 0, 1, 2, ...
    static func tensor(_ name: String, _ shape: [Int]) -> FakeTensor {
        let n = shape.reduce(1, *)
        return FakeTensor(name: name, shape: shape, storage: f32((0..<n).map { Float($0 % 7) * 0.125 }), numel: n)
    }

    /// Row-major strides.
    static func contiguous(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        for i in stride(from: shape.count - 2, through: 0, by: -1) { s[i] = s[i + 1] * shape[i + 1] }
        return s
    }

    /// The pickle of an (Ordered)Dict state dict, optionally wrapped as {"model": sd, "epoch": 3}.
    static func pickle(_ tensors: [FakeTensor], ordered: Bool = true, wrapped: Bool = false) -> [UInt8] {
        var p = PickleEmitter()
        if wrapped { op(&p, 0x7D); p.string("epoch"); p.int(3); op(&p, 0x73); p.string("model") }
        if ordered { p.global("collections", "OrderedDict"); p.op(0x29); p.op(0x52) } else { p.op(0x7D) }
        p.mark()
        for (i, t) in tensors.enumerated() {
            p.string(t.name)
            if i == 0 { p.global("torch._utils", "_rebuild_tensor_v2"); p.op(0x71); p.b.append(7) } else {
                p.op(0x68); p.b.append(7) // BINGET 7
            }
            p.mark()
            p.mark(); p.string("storage"); p.global("torch", t.storageType); p.string(String(i)); p.string("cpu")
            p.int(t.numel); p.op(0x74); p.op(0x51) // TUPLE, BINPERSID
            p.int(t.offset)
            p.ints(t.shape)
            p.ints(t.stride ?? contiguous(t.shape))
            p.op(0x89) // NEWFALSE
            p.global("collections", "OrderedDict"); p.op(0x29); p.op(0x52)
            p.op(0x74); p.op(0x52) // TUPLE, REDUCE
        }
        p.op(0x75) // SETITEMS
        if ordered { p.op(0x7D); p.string("_metadata"); p.op(0x7D); p.op(0x73); p.op(0x62) } // BUILD
        if wrapped { p.op(0x73) }
        p.stop()
        return p.b
    }

    /// Appends an opcode.
    private static func op(_ p: inout PickleEmitter, _ o: UInt8) { p.op(o) }

    /// The zip bytes of a checkpoint with these tensors under `top/`.
    static func zip(_ tensors: [FakeTensor], top: String = "archive", pickle: [UInt8]? = nil) -> [UInt8] {
        var z = StoredZipWriter()
        z.add("\(top)/data.pkl", pickle ?? Self.pickle(tensors))
        for (i, t) in tensors.enumerated() { z.add("\(top)/data/\(i)", t.storage) }
        z.add("\(top)/version", Array("3\n".utf8))
        return z.bytes()
    }

    /// Tensors of a full synthetic MN state dict for `arch` (with num_batches_tracked as int64 like torch).
    static func stateDict(_ arch: Architecture) -> [FakeTensor] {
        var out = arch.expectedTensorShapes().sorted { $0.key < $1.key }.map { tensor($0.key, $0.value) }
        out.append(FakeTensor(name: "features.0.1.num_batches_tracked", shape: [], storageType: "LongStorage",
                              storage: [UInt8](repeating: 0, count: 8), numel: 1))
        return out
    }

    /// Writes bytes to a fresh file in `dir`.
    static func write(_ bytes: [UInt8], _ name: String, in dir: URL) throws -> String {
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }
}
