import XCTest
@testable import EarTagModel
import EarTagTestSupport

/// The stored-zip reader and the restricted unpickler on their own.
final class ZipAndPickleTests: XCTestCase {
    /// Python-like rendering of an unpickled value, for comparisons.
    func repr(_ v: PickleValue) -> String {
        switch v {
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .float(let d): return String(d)
        case .string(let s): return "'\(s)'"
        case .bytes(let b): return "b" + b.map(String.init).joined(separator: ",")
        case .tuple(let t): return "(" + t.map(repr).joined(separator: ", ") + (t.count == 1 ? ",)" : ")")
        case .list(let l): return "[" + l.items.map(repr).joined(separator: ", ") + "]"
        case .dict(let d): return "{" + d.items.map { "\(repr($0.key)): \(repr($0.value))" }.joined(separator: ", ") + "}"
        case .global(let m, let n): return "<\(m).\(n)>"
        case .storage(let s): return "<storage \(s.key)>"
        case .tensor(let t): return "<tensor \(t.shape)>"
        }
    }

    /// Bytes of a hex string.
    func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var it = s.makeIterator()
        while let a = it.next(), let b = it.next() { out.append(UInt8(String([a, b]), radix: 16)!) }
        return out
    }

    /// Checks: plain values protocols 3 and 4.
    func testPlainValuesProtocols3And4() throws {
        // pickle.dumps({'a': [1, -1, 300, 70000, 2**40, -2**40, 1.5, None, True, False, 'é', (1,), (1,2), (1,2,3), ()],
        //               'b': b'xy', 'c': {'n': -2**63}}, protocol=3 / 4) from CPython.
        let p3 = "80037d71002858010000006171015d7102284b014affffffff4d2c014a701101008a060000000000018a060000000000ff473ff8"
            + "0000000000004e88895802000000c3a971034b018571044b014b028671054b014b024b0387710629655801000000627107430278"
            + "79710858010000006371097d710a58010000006e710b8a08000000000000008073752e"
        let p4 = "8004956e000000000000007d94288c0161945d94284b014affffffff4d2c014a701101008a060000000000018a060000000000ff"
            + "473ff80000000000004e88898c02c3a9944b0185944b014b0286944b014b024b03879429658c01629443027879948c0163947d94"
            + "8c016e948a08000000000000008073752e"
        let expected = "{'a': [1, -1, 300, 70000, 1099511627776, -1099511627776, 1.5, None, True, False, 'é', (1,), (1, 2), "
            + "(1, 2, 3), ()], 'b': b120,121, 'c': {'n': -9223372036854775808}}"
        for p in [p3, p4] {
            XCTAssertEqual(repr(try Unpickler(path: "mem").load(ArraySlice(hex(p)))), expected)
        }
    }

    /// Checks: memo shares mutable objects.
    func testMemoSharesMutableObjects() throws {
        // EMPTY_LIST BINPUT 0, then BINGET 0 APPEND 1 twice, then a tuple of the memoized list.
        let b: [UInt8] = [0x80, 0x02, 0x5D, 0x71, 0x00, 0x4B, 0x01, 0x61, 0x68, 0x00, 0x4B, 0x02, 0x61, 0x86, 0x2E]
        XCTAssertEqual(repr(try Unpickler(path: "mem").load(ArraySlice(b))), "([1, 2], [1, 2])")
    }

    /// Checks: nesting is bounded.
    func testNestingIsBounded() {
        let b: [UInt8] = [0x80, 0x02] + [UInt8](repeating: 0x28, count: Unpickler.maxMarks + 1) + [0x2E]
        XCTAssertThrowsError(try Unpickler(path: "deep.pt").load(ArraySlice(b))) { e in
            XCTAssertTrue("\(e)".contains("nested marks") && "\(e)".contains("deep.pt"), "\(e)")
        }
    }

    /// Checks: zip 64 end records are read.
    func testZip64EndRecordsAreRead() throws {
        var z = StoredZipWriter()
        z.zip64 = true
        z.add("top/data.pkl", [0x80, 0x02, 0x7D, 0x2E])
        z.add("top/data/0", [1, 2, 3])
        let archive = try ZipArchive(bytes: z.bytes(), path: "z64.zip")
        XCTAssertEqual(archive.entries.map(\.name), ["top/data.pkl", "top/data/0"])
        XCTAssertEqual(Array(try archive.data(of: archive.entry(named: "top/data/0")!)), [1, 2, 3])
    }

    /// Checks: zip bounds checked.
    func testZipBoundsChecked() throws {
        var z = StoredZipWriter()
        z.add("a/data.pkl", [0x80, 0x02, 0x7D, 0x2E])
        let good = z.bytes()
        // Central directory offset pointing past the file.
        var b = good
        let eocd = b.count - 22
        b[eocd + 16] = 0xFF; b[eocd + 17] = 0xFF; b[eocd + 18] = 0xFF; b[eocd + 19] = 0x00
        XCTAssertThrowsError(try ZipArchive(bytes: b, path: "x.zip")) { e in XCTAssertTrue("\(e)".contains("x.zip"), "\(e)") }
        // Entry size larger than the file.
        b = good
        let cd = Int(b[eocd + 16]) | Int(b[eocd + 17]) << 8
        b[cd + 20] = 0xFF; b[cd + 21] = 0xFF; b[cd + 24] = 0xFF; b[cd + 25] = 0xFF
        XCTAssertThrowsError(try ZipArchive(bytes: b, path: "y.zip")) { e in
            XCTAssertTrue("\(e)".contains("beyond the end of the file"), "\(e)")
        }
        // Every prefix of a valid archive is refused without crashing.
        for n in 0..<good.count {
            XCTAssertThrowsError(try ZipArchive(bytes: Array(good.prefix(n)), path: "p.zip"))
        }
    }

    /// Checks: CRC 32.
    func testCRC32() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
    }
}
