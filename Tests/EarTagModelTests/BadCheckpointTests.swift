import XCTest
@testable import EarTagModel
import EarTagTestSupport

/// Malformed, hostile and unsupported checkpoints are refused with one-line errors that name the file.
final class BadCheckpointTests: XCTestCase {
    var dir: URL!

    /// Creates a fresh temporary directory.
    override func setUpWithError() throws { dir = try makeTemporaryDirectory("eartag-model") }
    /// Removes the temporary directory.
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// Asserts that importing `path` throws `expected` (when given) and that the message is one line naming the file.
    func assertRefused(_ path: String, _ expected: ModelError? = nil, contains fragment: String? = nil,
                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try CheckpointImporter.importCheckpoint(path: path, labelsPath: nil, name: nil),
                             file: file, line: line) { error in
            guard let e = error as? ModelError else { return XCTFail("not a ModelError: \(error)", file: file, line: line) }
            if let expected { XCTAssertEqual(e, expected, file: file, line: line) }
            let text = e.description
            XCTAssertTrue(text.contains(path), "message does not name the file: \(text)", file: file, line: line)
            XCTAssertFalse(text.contains("\n"), "message is not one line: \(text)", file: file, line: line)
            if let fragment { XCTAssertTrue(text.contains(fragment), "'\(fragment)' not in: \(text)", file: file, line: line) }
        }
    }

    /// A small valid architecture for synthetic state dicts (width 0.1, 10 classes).
    func smallArch(se: Bool = true, head: HeadType = .mlp) throws -> Architecture {
        try Architecture.efficientAT(widthMult: 0.1, head: head, numClasses: 10, channelSE: se)
    }

    /// Checks: synthetic checkpoint imports.
    func testSyntheticCheckpointImports() throws {
        for (se, head, ordered, wrapped) in [(true, HeadType.mlp, true, false), (false, .fullyConvolutional, false, false),
                                             (true, .mlp, false, true)] {
            let arch = try smallArch(se: se, head: head)
            let tensors = FakeCheckpoint.stateDict(arch)
            let bytes = FakeCheckpoint.zip(tensors, top: "some_name",
                                           pickle: FakeCheckpoint.pickle(tensors, ordered: ordered, wrapped: wrapped))
            let path = try FakeCheckpoint.write(bytes, "synthetic_mAP_123.pt", in: dir)
            let model = try CheckpointImporter.importCheckpoint(path: path, labelsPath: nil, name: nil)
            XCTAssertEqual(model.architecture, arch)
            XCTAssertEqual(model.name, "synthetic")
            XCTAssertEqual(model.labels.count, 10)
            XCTAssertEqual(model.tensors["features.0.0.weight"]?.data.prefix(9).map { $0 }, [0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0, 0.125])
        }
    }

    /// Checks: strided double and half tensors are gathered.
    func testStridedDoubleAndHalfTensorsAreGathered() throws {
        // A [2, 3] view with strides [1, 2] over storage 0..5 (a transpose) reads 0 2 4 1 3 5.
        let doubles: [Double] = [0, 1, 2, 3, 4, 5]
        let dBytes = doubles.flatMap { d in (0..<8).map { UInt8((d.bitPattern >> (8 * UInt64($0))) & 0xFF) } }
        let halves: [UInt16] = [0x3C00, 0xC000, 0x3800, 0x0001] // 1, -2, 0.5, smallest subnormal
        let hBytes = halves.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        let tensors = [
            FakeTensor(name: "t", shape: [2, 3], stride: [1, 2], storageType: "DoubleStorage", storage: dBytes, numel: 6),
            FakeTensor(name: "h", shape: [3], offset: 1, storageType: "HalfStorage", storage: hBytes, numel: 4),
        ]
        let path = try FakeCheckpoint.write(FakeCheckpoint.zip(tensors), "strided.pt", in: dir)
        let sd = try CheckpointImporter.readStateDict(path: path)
        XCTAssertEqual(sd["t"], Tensor(shape: [2, 3], data: [0, 2, 4, 1, 3, 5]))
        XCTAssertEqual(sd["h"], Tensor(shape: [3], data: [-2, 0.5, Float(bitPattern: 0x3380_0000)]))
    }

    /// Checks: not a zip text file.
    func testNotAZipTextFile() throws {
        let path = try FakeCheckpoint.write(Array("hello, I am not a checkpoint\n".utf8), "text.pt", in: dir)
        assertRefused(path, contains: "end-of-central-directory")
    }

    /// Checks: a legacy (non-zip) torch.save pickle gets a specific hint.
    func testLegacyPickleFileRefused() throws {
        let path = try FakeCheckpoint.write([0x80, 0x02, 0x8A, 0x0A] + [UInt8](repeating: 0, count: 40), "legacy.pt", in: dir)
        assertRefused(path, contains: "legacy non-zip torch.save")
    }

    /// Checks: DataParallel "module." prefixes are stripped.
    func testModulePrefixStripped() throws {
        let arch = try smallArch()
        var tensors = FakeCheckpoint.stateDict(arch)
        for i in tensors.indices { tensors[i].name = "module." + tensors[i].name }
        let path = try FakeCheckpoint.write(FakeCheckpoint.zip(tensors), "dp.pt", in: dir)
        XCTAssertEqual(try CheckpointImporter.importCheckpoint(path: path, labelsPath: nil, name: nil).architecture, arch)
    }

    /// Checks: empty file.
    func testEmptyFile() throws {
        let path = try FakeCheckpoint.write([], "empty.pt", in: dir)
        assertRefused(path, .badZip(path: path, reason: "the file is empty"))
    }

    /// Checks: missing file.
    func testMissingFile() throws {
        let path = dir.appendingPathComponent("nothing.pt").path
        assertRefused(path, .unreadable(path: path, reason: "no such file or not readable"))
    }

    /// Checks: zip without data pkl.
    func testZipWithoutDataPkl() throws {
        var z = StoredZipWriter()
        z.add("archive/version", Array("3\n".utf8))
        z.add("data.pkl", [0x80, 0x02, 0x7D, 0x2E]) // not inside a top folder
        let path = try FakeCheckpoint.write(z.bytes(), "nopkl.pt", in: dir)
        assertRefused(path, .missingEntry(path: path, entry: "*/data.pkl"))
    }

    /// Checks: compressed entry refused.
    func testCompressedEntryRefused() throws {
        var z = StoredZipWriter()
        z.add("archive/data.pkl", [0x80, 0x02, 0x7D, 0x2E], method: 8)
        let path = try FakeCheckpoint.write(z.bytes(), "deflated.pt", in: dir)
        assertRefused(path, .compressedEntry(path: path, entry: "archive/data.pkl", method: 8))
    }

    /// Checks: os system global refused.
    func testOsSystemGlobalRefused() throws {
        // cos\nsystem\n (X 'touch /tmp/pwned') TUPLE1 REDUCE STOP
        var p = PickleEmitter()
        p.global("os", "system"); p.string("touch /tmp/eartag-pwned"); p.op(0x85); p.op(0x52); p.stop()
        let path = try FakeCheckpoint.write(FakeCheckpoint.zip([], pickle: p.b), "evil.pt", in: dir)
        assertRefused(path, .forbiddenGlobal(path: path, global: "os.system"), contains: "os.system")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/eartag-pwned"))
    }

    /// Checks: builtins eval via stack global refused.
    func testBuiltinsEvalViaStackGlobalRefused() throws {
        var p = PickleEmitter()
        p.b = [0x80, 0x04]
        p.stackGlobal("builtins", "eval"); p.string("1+1"); p.op(0x85); p.op(0x52); p.stop()
        let path = try FakeCheckpoint.write(FakeCheckpoint.zip([], pickle: p.b), "eval.pt", in: dir)
        assertRefused(path, .forbiddenGlobal(path: path, global: "builtins.eval"), contains: "builtins.eval")
    }

    /// Checks: getattr and non callable reduce refused.
    func testGetattrAndNonCallableReduceRefused() throws {
        var p = PickleEmitter()
        p.global("__builtin__", "getattr"); p.stop()
        let path = try FakeCheckpoint.write(FakeCheckpoint.zip([], pickle: p.b), "getattr.pt", in: dir)
        assertRefused(path, .forbiddenGlobal(path: path, global: "__builtin__.getattr"))
        // An allowed storage class is still not callable through REDUCE.
        var q = PickleEmitter()
        q.global("torch", "FloatStorage"); q.op(0x29); q.op(0x52); q.stop()
        let path2 = try FakeCheckpoint.write(FakeCheckpoint.zip([], pickle: q.b), "storagecall.pt", in: dir)
        assertRefused(path2, contains: "cannot be called")
    }

    /// Checks: malformed pickles refused.
    func testMalformedPicklesRefused() throws {
        let cases: [(String, [UInt8], String)] = [
            ("trunc.pt", [0x80, 0x02, 0x58, 0xFF, 0xFF, 0x00, 0x00], "exceeds the data"),
            ("underflow.pt", [0x80, 0x02, 0x73, 0x2E], "underflow"),
            ("badop.pt", [0x80, 0x02, 0x69, 0x2E], "unsupported opcode 0x69"),
            ("nostop.pt", [0x80, 0x02, 0x7D], "unexpected end"),
            ("memo.pt", [0x80, 0x02, 0x68, 0x05, 0x2E], "memo key 5"),
            ("notdict.pt", [0x80, 0x02, 0x4E, 0x2E], "not a dict"),
        ]
        for (name, bytes, fragment) in cases {
            let path = try FakeCheckpoint.write(FakeCheckpoint.zip([], pickle: bytes), name, in: dir)
            assertRefused(path, contains: fragment)
        }
    }

    /// Checks: tensor longer than storage refused.
    func testTensorLongerThanStorageRefused() throws {
        let t = FakeTensor(name: "features.0.0.weight", shape: [2, 3], storage: FakeCheckpoint.f32([1, 2, 3, 4]), numel: 4)
        let path = try FakeCheckpoint.write(FakeCheckpoint.zip([t]), "short.pt", in: dir)
        assertRefused(path, .storageTooShort(path: path, tensor: "features.0.0.weight", needed: 6, storage: "0", holds: 4),
                      contains: "tensor 'features.0.0.weight' needs 6 elements but storage 0 holds 4")
        // Strides that reach past the end are caught too, as is a claimed numel above the bytes present.
        var strided = t
        strided.shape = [2, 2]; strided.stride = [3, 1]
        let path2 = try FakeCheckpoint.write(FakeCheckpoint.zip([strided]), "strided-short.pt", in: dir)
        assertRefused(path2, .storageTooShort(path: path2, tensor: "features.0.0.weight", needed: 5, storage: "0", holds: 4))
        var lying = t
        lying.shape = [6]; lying.numel = 6
        let path3 = try FakeCheckpoint.write(FakeCheckpoint.zip([lying]), "lying.pt", in: dir)
        assertRefused(path3, .storageTooShort(path: path3, tensor: "features.0.0.weight", needed: 6, storage: "0", holds: 4))
    }

    /// Checks: truncated checkpoint refused.
    func testTruncatedCheckpointRefused() throws {
        let original = try Reference.path("efficientat/mn04_as_mAP_432.pt")
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: original)))
        let path = try FakeCheckpoint.write(Array(bytes.prefix(bytes.count / 2)), "half.pt", in: dir)
        assertRefused(path, contains: "truncated")
    }

    /// Checks: corrupted storage fails CRC.
    func testCorruptedStorageFailsCRC() throws {
        let arch = try smallArch()
        var bytes = FakeCheckpoint.zip(FakeCheckpoint.stateDict(arch))
        // Flip a byte inside the first storage's data (after data.pkl), leaving headers intact.
        let pkl = FakeCheckpoint.pickle(FakeCheckpoint.stateDict(arch))
        let firstData = 30 + "archive/data.pkl".utf8.count + pkl.count + 30 + "archive/data/0".utf8.count
        bytes[firstData] ^= 0xFF
        let path = try FakeCheckpoint.write(bytes, "crc.pt", in: dir)
        assertRefused(path, contains: "CRC-32 mismatch in entry 'archive/data/0'")
    }

    /// Checks: dy MN refused.
    func testDyMNRefused() throws {
        let tensors = [
            FakeCheckpoint.tensor("in_c.0.weight", [16, 1, 3, 3]),
            FakeCheckpoint.tensor("layers.0.context_gen.joint_conv.weight", [8, 16, 1, 1]),
            FakeCheckpoint.tensor("layers.0.depth_conv.weight", [4, 16, 1, 3, 3]),
            FakeCheckpoint.tensor("classifier.5.weight", [527, 1280]),
        ]
        let path = try FakeCheckpoint.write(FakeCheckpoint.zip(tensors), "dymn10_as.pt", in: dir)
        assertRefused(path, .dymnNotSupported(path: path), contains: "DyMN checkpoints are not supported yet")
    }

    /// Checks: missing tensor refused.
    func testMissingTensorRefused() throws {
        let arch = try smallArch()
        let tensors = FakeCheckpoint.stateDict(arch).filter { $0.name != "features.5.block.1.1.running_var" }
        let path = try FakeCheckpoint.write(FakeCheckpoint.zip(tensors), "missing.pt", in: dir)
        assertRefused(path, .missingTensor(path: path, tensor: "features.5.block.1.1.running_var"))
        let noConv = FakeCheckpoint.stateDict(arch).filter { $0.name != "features.16.0.weight" }
        let path2 = try FakeCheckpoint.write(FakeCheckpoint.zip(noConv), "missing2.pt", in: dir)
        assertRefused(path2, contains: "features.16.0.weight")
    }

    /// Checks: wrong shape and extra tensor refused.
    func testWrongShapeAndExtraTensorRefused() throws {
        let arch = try smallArch()
        var tensors = FakeCheckpoint.stateDict(arch)
        let i = try XCTUnwrap(tensors.firstIndex { $0.name == "features.7.block.1.1.bias" })
        tensors[i] = FakeCheckpoint.tensor("features.7.block.1.1.bias", [25])
        let path = try FakeCheckpoint.write(FakeCheckpoint.zip(tensors), "shape.pt", in: dir)
        assertRefused(path, .tensorShape(path: path, tensor: "features.7.block.1.1.bias", expected: [24], actual: [25]))

        var extra = FakeCheckpoint.stateDict(arch)
        extra.append(FakeCheckpoint.tensor("features.3.block.1.extra", [3]))
        let path2 = try FakeCheckpoint.write(FakeCheckpoint.zip(extra), "extra.pt", in: dir)
        assertRefused(path2, .unexpectedTensor(path: path2, tensor: "features.3.block.1.extra"))

        var odd = FakeCheckpoint.stateDict(arch)
        let j = try XCTUnwrap(odd.firstIndex { $0.name == "features.12.block.0.0.weight" })
        odd[j] = FakeCheckpoint.tensor("features.12.block.0.0.weight", [60, 16, 1, 1])
        let path3 = try FakeCheckpoint.write(FakeCheckpoint.zip(odd), "width.pt", in: dir)
        assertRefused(path3, contains: "features.12.block.1.0.weight")
    }

    /// Checks: labels required for 527 classes and count checked.
    func testLabelsRequiredFor527ClassesAndCountChecked() throws {
        let arch = try Architecture.efficientAT(widthMult: 0.1, head: .fullyConvolutional, numClasses: 527, channelSE: false)
        let path = try FakeCheckpoint.write(FakeCheckpoint.zip(FakeCheckpoint.stateDict(arch)), "as527.pt", in: dir)
        assertRefused(path, .labelsRequired(path: path), contains: "--labels")
        let labels = try FakeCheckpoint.write(Array("index,mid,display_name\n0,/m/a,A\n1,/m/b,B\n".utf8),
                                              "two.csv", in: dir)
        XCTAssertThrowsError(try CheckpointImporter.importCheckpoint(path: path, labelsPath: labels, name: nil)) { e in
            XCTAssertEqual(e as? ModelError, .labelCount(path: labels, labels: 2, classes: 527))
        }
    }

    /// Checks: bad strides argument.
    func testBadStridesArgument() throws {
        XCTAssertThrowsError(try CheckpointImporter.importCheckpoint(path: "x.pt", strides: [2, 3, 2, 2], labelsPath: nil,
                                                                     name: nil)) { e in
            XCTAssertTrue("\(e)".contains("strides"))
        }
    }
}
