// The int8 path against the float model: quantize mn04_as on the reference clips, compare outputs, file round trip
// and refusal of corrupt int8 files. NOTE: the calibration clips are also the test clips here; the held-out
// evaluation on real recordings the quantizer never saw is bench/int8-heldout (docs/quantization.md).
import XCTest
import Foundation
import EarTagModel
import EarTagTestSupport
@testable import EarTagEngine

/// The reference clips used for calibration and for the fidelity figures.
private let clips = ["excerpt", "speech", "music", "typing", "metro_station-paris"]

/// The official mn04_as and the golden mels, loaded once.
private let mn04Setup: Result<(FloatModel, [(mel: [Float], frames: Int)]), Error> = Result {
    let labels = try Reference.path("efficientat/class_labels_indices.csv")
    let model = try CheckpointImporter.importCheckpoint(path: try Reference.path("efficientat/mn04_as_mAP_432.pt"),
                                                        labelsPath: labels, name: nil)
    let mels = try clips.map { c -> (mel: [Float], frames: Int) in
        let m = try Reference.npy("golden/\(c).mel.npy")
        return (m.data, m.shape[1])
    }
    return (model, mels)
}

/// The quantizer options of the shared int8 model: the defaults, or the range method EARTAG_INT8_RANGE names
/// (minmax|pNN.NN|mse, for experiments).
private let mn04Options: QuantizerOptions = {
    var options = QuantizerOptions()
    switch ProcessInfo.processInfo.environment["EARTAG_INT8_RANGE"] {
    case "minmax"?: options.rangeMethod = .minMax
    case "mse"?: options.rangeMethod = .mse
    case let p? where p.hasPrefix("p"): options.rangeMethod = .percentile(Double(p.dropFirst()) ?? 99.99)
    default: break
    }
    return options
}()

/// mn04_as quantized with `mn04Options`, shared by the tests.
private let mn04Int8: Result<QuantizedModel, Error> = Result {
    let (model, mels) = try mn04Setup.get()
    return try Quantizer.quantize(model, calibration: mels, options: mn04Options)
}

/// Fidelity of one clip: float vs int8 probabilities.
struct Fidelity {
    var top1Same: Bool
    var top5Overlap: Int
    var maxProbDiff: Float
}

/// Compares logits as sigmoid probabilities (AudioSet is multi-label).
func fidelity(float a: [Float], int8 b: [Float]) -> Fidelity {
    func sig(_ x: Float) -> Float { 1 / (1 + expf(-x)) }
    let pa = a.map(sig), pb = b.map(sig)
    let ta = pa.indices.sorted { pa[$0] > pa[$1] }, tb = pb.indices.sorted { pb[$0] > pb[$1] }
    var d: Float = 0
    for i in pa.indices { d = max(d, abs(pa[i] - pb[i])) }
    return Fidelity(top1Same: ta[0] == tb[0], top5Overlap: Set(ta.prefix(5)).intersection(tb.prefix(5)).count,
                    maxProbDiff: d)
}

/// True under `make test-tsan` (it sets EARTAG_SANITIZER=thread).
private let isThreadSanitizer = ProcessInfo.processInfo.environment["EARTAG_SANITIZER"] == "thread"

/// Skips a single-threaded numeric test under ThreadSanitizer: it has no threads to check, TSan makes each extra
/// quantization of mn04_as minutes long, and CI's AddressSanitizer and plain runs still execute it.
func skipUnderThreadSanitizer() throws {
    if isThreadSanitizer { throw XCTSkip("single-threaded numeric test; not run under ThreadSanitizer") }
}

final class Int8Tests: XCTestCase {
    func testCalibrationForwardMatchesFloatEngine() throws {
        let (model, mels) = try mn04Setup.get()
        let engine = try FloatEngine(model: model, maxFrames: mels[0].frames)
        let net = try FoldedNetwork(model)
        let logits = Quantizer.calibrationForward(arch: model.architecture, net: net, melBins: 128, mel: mels[0].mel,
                                                  frames: mels[0].frames) { _, _ in }
        let d = maxAbsDifference(logits, engine.run(mel: mels[0].mel, frames: mels[0].frames).logits)
        XCTAssertLessThanOrEqual(d, 1e-3)
    }

    func testEqualizationKeepsTheFloatFunction() throws {
        let (model, mels) = try mn04Setup.get()
        var net = try FoldedNetwork(model)
        var peaks: [String: [Float]] = [:]
        for (i, b) in model.architecture.blocks.enumerated() where b.activation == .relu {
            if b.hasExpand { peaks["features.\(i + 1).expand.out"] = (0..<b.expandedChannels).map { Float($0 % 7 + 1) } }
            peaks["features.\(i + 1).depthwise.out"] = (0..<b.expandedChannels).map { Float($0 % 5 + 1) }
        }
        net.equalize(model.architecture, peaks: peaks, limit: 16)
        let logits = Quantizer.calibrationForward(arch: model.architecture, net: net, melBins: 128, mel: mels[2].mel,
                                                  frames: mels[2].frames) { _, _ in }
        let engine = try FloatEngine(model: model, maxFrames: mels[2].frames)
        XCTAssertLessThanOrEqual(maxAbsDifference(logits, engine.run(mel: mels[2].mel, frames: mels[2].frames).logits), 1e-3)
    }

    /// Runs the int8 model on every clip, printing and returning the per-clip figures.
    func measure(_ q: QuantizedModel, _ tag: String) throws -> [Fidelity] {
        let (model, mels) = try mn04Setup.get()
        let fe = try FloatEngine(model: model, maxFrames: 1001)
        let ie = try Int8Engine(model: q, maxFrames: 1001)
        var out: [Fidelity] = []
        for (c, m) in zip(clips, mels) {
            let f = fe.run(mel: m.mel, frames: m.frames), i = ie.run(mel: m.mel, frames: m.frames)
            let fid = fidelity(float: f.logits, int8: i.logits)
            let ed = maxAbsDifference(f.embedding, i.embedding)
            print(String(format: "int8[%@] %@: top1 %@ top5 %d/5 max|dp| %.4f max|d emb| %.3f", tag, c,
                         fid.top1Same ? "same" : "DIFF", fid.top5Overlap, fid.maxProbDiff, ed))
            out.append(fid)
        }
        return out
    }

    func testFidelityOnReferenceClips() throws {
        let figures = try measure(try mn04Int8.get(), "default (mse, eq, bias correction)")
        for (c, f) in zip(clips, figures) {
            XCTAssertTrue(f.top1Same, c)
            XCTAssertGreaterThanOrEqual(f.top5Overlap, 4, c)
            // The goal is <= 0.02 (issue 3); measured 0.005-0.047 with the defaults (MSE ranges, equalization, 12-bit
            // weights in the small layers, bias correction, 16-bit stem output; 0.011-0.093 before bias correction),
            // so a regression bound.
            XCTAssertLessThanOrEqual(f.maxProbDiff, 0.06, c)
        }
    }

    /// The 16-bit stem output is chosen where the engine supports it and can be turned off.
    func testStemOutputBits() throws {
        let (model, mels) = try mn04Setup.get()
        XCTAssertTrue(QuantizedModel.supportsWideStemOutput(model.architecture))
        let q = try mn04Int8.get()
        XCTAssertEqual(q.int16Activations, ["features.0.act"])
        XCTAssertGreaterThan(abs(q.int32("features.0.act_zero_point")[0]), 127, "a 16-bit zero point")
        let q8 = try Quantizer.quantize(model, calibration: [mels[3]],
                                        options: QuantizerOptions(biasCorrectionRounds: 0, stemOutputBits: 8))
        XCTAssertEqual(q8.int16Activations, [])
        XCTAssertLessThanOrEqual(abs(q8.int32("features.0.act_zero_point")[0]), 128)
    }

    /// Empirical bias correction pulls the int8 engine's per-channel means of the last feature map (what the global
    /// pool averages) towards the float network's, on the calibration clips.
    func testBiasCorrectionPullsChannelMeansToFloat() throws {
        try skipUnderThreadSanitizer()
        let (model, mels) = try mn04Setup.get()
        let net = try Quantizer.equalizedNetwork(model, calibration: mels, options: QuantizerOptions())
        let key = "features.\(model.architecture.blocks.count + 1).act"
        let c = model.architecture.lastConvChannels
        var floatMeans = ChannelMeans()
        for m in mels {
            _ = Quantizer.calibrationForward(arch: model.architecture, net: net, melBins: 128, mel: m.mel, frames: m.frames) {
                if $0 == key { floatMeans.add(key, UnsafeBufferPointer($1), channels: c) }
            }
        }
        let target = try XCTUnwrap(floatMeans.mean(key))
        /// Mean over channels of |int8 channel mean - float channel mean|.
        func meanError(_ q: QuantizedModel) throws -> Double {
            let engine = try Int8Engine(model: q, maxFrames: 1001)
            var got = ChannelMeans()
            engine.debugCapture = { name, t, n, scale, zp in
                guard name == key else { return }
                var sums = [Double](repeating: 0, count: c)
                for i in 0..<n { sums[i % c] += scale * (Double(t[i]) - Double(zp)) }
                got.add(key, sums: sums, pixels: n / c)
            }
            for m in mels { _ = engine.run(mel: m.mel, frames: m.frames) }
            let measured = try XCTUnwrap(got.mean(key))
            return zip(measured, target).map { abs($0 - $1) }.reduce(0, +) / Double(c)
        }
        var uncorrected = mn04Options
        uncorrected.biasCorrectionRounds = 0
        let plain = try meanError(try Quantizer.quantize(model, calibration: mels, options: uncorrected))
        let corrected = try meanError(try mn04Int8.get())
        print(String(format: "bias correction: mean |channel mean error| of %@ %.4f -> %.4f", key, plain, corrected))
        // Measured 0.0116 -> 0.0015 (mse ranges), 0.0116 -> 0.0022 (min/max).
        XCTAssertLessThan(corrected, 0.3 * plain)
    }

    /// Degenerate calibration (one silent clip: a constant mel, every tensor nearly constant) still gives a valid
    /// model with finite biases and finite outputs after bias correction.
    func testBiasCorrectionOnSilentCalibration() throws {
        let (model, mels) = try mn04Setup.get()
        let silence = [Float](repeating: mels[0].mel.min()!, count: 128 * 300)
        let q = try Quantizer.quantize(model, calibration: [(silence, 300)],
                                       options: QuantizerOptions(biasCorrectionRounds: 2))
        let out = try Int8Engine(model: q, maxFrames: 1001).run(mel: mels[1].mel, frames: mels[1].frames)
        XCTAssertTrue(out.logits.allSatisfy(\.isFinite))
        XCTAssertTrue(out.embedding.allSatisfy(\.isFinite))
    }

    /// Prints the figures for each range method (set EARTAG_INT8_METHODS=1 to run; slow).
    func testCompareRangeMethods() throws {
        guard ProcessInfo.processInfo.environment["EARTAG_INT8_METHODS"] != nil else { throw XCTSkip("set EARTAG_INT8_METHODS") }
        let (model, mels) = try mn04Setup.get()
        for (tag, m) in [("minmax", RangeMethod.minMax), ("p99.9", .percentile(99.9)), ("p99.99", .percentile(99.99)),
                         ("p99.999", .percentile(99.999)), ("mse", .mse)] {
            _ = try measure(try Quantizer.quantize(model, calibration: mels, options: QuantizerOptions(rangeMethod: m)), tag + "+eq")
            _ = try measure(try Quantizer.quantize(model, calibration: mels,
                                                   options: QuantizerOptions(rangeMethod: m, equalizationLimit: 0)), tag + " no eq")
        }
    }

    /// Per-tensor error of the int8 engine against the float calibration pass (set EARTAG_INT8_LAYERS=1; prints).
    func testLayerErrors() throws {
        guard ProcessInfo.processInfo.environment["EARTAG_INT8_LAYERS"] != nil else { throw XCTSkip("set EARTAG_INT8_LAYERS") }
        let (model, mels) = try mn04Setup.get()
        let q = try mn04Int8.get()
        let clip = Int(ProcessInfo.processInfo.environment["EARTAG_INT8_CLIP"] ?? "4") ?? 4
        var reference: [String: [Float]] = [:]
        _ = Quantizer.calibrationForward(arch: model.architecture, net: try FoldedNetwork(model), melBins: 128,
                                         mel: mels[clip].mel, frames: mels[clip].frames) { k, v in reference[k] = Array(v) }
        let net = try FoldedNetwork(model)
        for l in QuantizedModel.layers(model.architecture) {
            let f = net.layers[l.name]!, wq = q.weights(l.name + ".weight"), ws = q.float(l.name + ".weight_scale")
            let tap = l.name == "features.0" || l.name.hasSuffix(".depthwise")
            var err = 0.0, sig = 0.0
            for c in 0..<f.cout { for i in 0..<f.per {
                let v = Double(f.weights[c * f.per + i]), r = Double(ws[c]) * Double(wq[tap ? i * f.cout + c : c * f.per + i])
                err += (v - r) * (v - r); sig += v * v
            } }
            print(String(format: "weights %@: SQNR %.1f dB", l.name, 10 * log10(sig / max(err, 1e-30))))
        }
        let engine = try Int8Engine(model: q, maxFrames: 1001)
        engine.debugCapture = { name, t, n, scale, zp in
            guard let r = reference[name], r.count == n else { return print("\(name): no reference") }
            var err = 0.0, sig = 0.0, worst: Float = 0, peak: Float = 0
            for i in 0..<n {
                let d = Float(scale) * Float(Int32(t[i]) - zp) - r[i]
                err += Double(d * d); sig += Double(r[i] * r[i]); worst = max(worst, abs(d)); peak = max(peak, abs(r[i]))
            }
            print(String(format: "%@: SQNR %.1f dB, max|d| %.3f of peak %.3f, scale %.4f", name,
                         10 * log10(sig / max(err, 1e-30)), worst, peak, scale))
        }
        _ = engine.run(mel: mels[clip].mel, frames: mels[clip].frames)
    }

    func testVectorKernelsEqualReferenceKernels() throws {
        let (model, mels) = try mn04Setup.get()
        var stem8 = mn04Options
        stem8.stemOutputBits = 8
        // The default model (16-bit stem output) and one with the int8 stem output; the second is left out under
        // ThreadSanitizer for the reason `skipUnderThreadSanitizer` gives (the plain and ASan runs keep it).
        let models = isThreadSanitizer ? [try mn04Int8.get()]
            : [try mn04Int8.get(), try Quantizer.quantize(model, calibration: mels, options: stem8)]
        for q in models {
            try assertVectorEqualsReference(q, mels)
        }
    }

    /// Runs `q` on the vector and the reference kernels over a 10 s and a 37-frame input: identical outputs.
    func assertVectorEqualsReference(_ q: QuantizedModel, _ mels: [(mel: [Float], frames: Int)]) throws {
        let vec = try Int8Engine(model: q, maxFrames: 1001, referenceKernels: false)
        let ref = try Int8Engine(model: q, maxFrames: 1001, referenceKernels: true)
        for m in [mels[0], (Array(mels[1].mel.prefix(128 * 37)), 37)] {
            let short = m.1 == 37 ? (0..<128).flatMap { r in mels[1].mel[(r * mels[1].frames)..<(r * mels[1].frames + 37)] } : m.0
            let a = vec.run(mel: short, frames: m.1), b = ref.run(mel: short, frames: m.1)
            XCTAssertEqual(a.logits, b.logits)
            XCTAssertEqual(a.embedding, b.embedding)
        }
    }

    func testFileRoundTripAndAnyModel() throws {
        let q = try mn04Int8.get()
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("m.int8.safetensors").path
        try q.save(to: path)
        guard case .int8(let loaded) = try AnyModel.load(path: path) else { return XCTFail("not loaded as int8") }
        XCTAssertEqual(loaded.tensors, q.tensors)
        XCTAssertEqual(loaded.architecture, q.architecture)
        XCTAssertEqual(loaded.labels, q.labels)
        XCTAssertEqual(loaded.int16Activations, ["features.0.act"])
        let file = try SafetensorsFile.read(path: path)
        XCTAssertEqual(file.metadata["format"], "eartag.int8.v2")
        XCTAssertEqual(file.metadata["eartag.scheme"], QuantizedModel.scheme)
        let (model, mels) = try mn04Setup.get()
        let a = try Int8Engine(model: q, maxFrames: 1001).run(mel: mels[0].mel, frames: mels[0].frames)
        let b = try Int8Engine(model: loaded, maxFrames: 1001).run(mel: mels[0].mel, frames: mels[0].frames)
        XCTAssertEqual(a.logits, b.logits)
        let floatPath = dir.appendingPathComponent("m.safetensors").path
        try ModelFile.save(model, to: floatPath)
        guard case .float = try AnyModel.load(path: floatPath) else { return XCTFail("not loaded as float") }
    }

    /// Saves a corrupted copy and asserts the load error mentions `needle`.
    func assertRefused(_ q: QuantizedModel, _ needle: String, _ corrupt: (inout QuantizedModel) -> Void,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        var bad = q
        corrupt(&bad)
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("bad.safetensors").path
        try bad.save(to: path)
        XCTAssertThrowsError(try AnyModel.load(path: path), file: file, line: line) { e in
            XCTAssertTrue("\(e)".contains(needle), "\(e) does not name \(needle)", file: file, line: line)
        }
    }

    func testCorruptFilesAreRefused() throws {
        let q = try mn04Int8.get()
        let scale = "features.3.depthwise.out_scale"
        try assertRefused(q, "features.2.project.weight") { $0.tensors["features.2.project.weight"] = nil }
        try assertRefused(q, "features.4.expand.bias") {
            $0.tensors["features.4.expand.bias"] = SafetensorsTensor(int32: [1, 2], shape: [2])
        }
        for v: Float in [0, .nan, -1] {
            try assertRefused(q, scale) { $0.tensors[scale] = SafetensorsTensor(float32: Tensor(shape: [1], data: [v])) }
        }
        try assertRefused(q, "features.1.depthwise.weight_scale") {
            var s = $0.float("features.1.depthwise.weight_scale"); s[3] = 0
            $0.tensors["features.1.depthwise.weight_scale"] = SafetensorsTensor(float32: Tensor(shape: [s.count], data: s))
        }
        try assertRefused(q, "input.zero_point") { $0.tensors["input.zero_point"] = SafetensorsTensor(int32: [300], shape: [1]) }
        try assertRefused(q, "features.0.weight") {
            $0.tensors["features.0.weight"] = SafetensorsTensor(float32: Tensor(shape: [9, 16], data: .init(repeating: 0, count: 144)))
        }
        try assertRefused(q, "features.5.project.bias") {
            var b = $0.int32("features.5.project.bias"); b[0] = (1 << 30) + 1
            $0.tensors["features.5.project.bias"] = SafetensorsTensor(int32: b, shape: [b.count])
        }
        try assertRefused(q, "features.3.depthwise.weight") {
            // A 12-bit layer's weight beyond 2047.
            var w = $0.weights("features.3.depthwise.weight"); w[5] = 3000
            $0.tensors["features.3.depthwise.weight"] = SafetensorsTensor(int16: w, shape: $0.tensors["features.3.depthwise.weight"]!.shape)
        }
        try assertRefused(q, "features.13.project.weight") {
            // An 8-bit layer's weight at -128 (symmetric weights stop at -127).
            let t = $0.tensors["features.13.project.weight"]!
            var w = $0.weights("features.13.project.weight").map { Int8($0) }; w[0] = -128
            $0.tensors["features.13.project.weight"] = SafetensorsTensor(int8: w, shape: t.shape)
        }
        try assertRefused(q, "features.2.expand.weight") {
            // 12-bit layer stored as I8: wrong dtype.
            let t = $0.tensors["features.2.expand.weight"]!
            $0.tensors["features.2.expand.weight"] = SafetensorsTensor(int8: [Int8](repeating: 1, count: t.shape.reduce(1, *)), shape: t.shape)
        }
        try assertRefused(q, "extra.tensor") { $0.tensors["extra.tensor"] = SafetensorsTensor(int32: [0], shape: [1]) }
        // The 16-bit stem output: its zero point may leave -128...127 but not -32768...32767; only features.0.act
        // can be 16-bit; an 8-bit file must keep int8 zero points.
        XCTAssertEqual(q.int16Activations, ["features.0.act"])
        try assertRefused(q, "features.0.act_zero_point") {
            $0.tensors["features.0.act_zero_point"] = SafetensorsTensor(int32: [40_000], shape: [1])
        }
        try assertRefused(q, "features.3.depthwise.out") { $0.int16Activations = ["features.3.depthwise.out"] }
        try assertRefused(q, "features.0.act_zero_point") {
            $0.int16Activations = []
            $0.tensors["features.0.act_zero_point"] = SafetensorsTensor(int32: [1000], shape: [1])
        }
    }
}

/// Sensitivity analysis of the activation quantization (set EARTAG_INT8_SENSITIVITY=1; prints, slow): the float
/// network of the quantizer with tensors fake-quantized (quantize-dequantize with the int8 model's scale and zero
/// point, as the engine stores them) one at a time, and with all of them except one, max |probability difference|
/// against float over the reference clips.
final class Int8SensitivityTests: XCTestCase {
    func testSensitivity() throws {
        guard ProcessInfo.processInfo.environment["EARTAG_INT8_SENSITIVITY"] != nil else {
            throw XCTSkip("set EARTAG_INT8_SENSITIVITY")
        }
        let (model, mels) = try mn04Setup.get()
        let q = try mn04Int8.get()
        let net = try Quantizer.equalizedNetwork(model, calibration: mels, options: QuantizerOptions())
        /// The stored quantization of an observed tensor, or nil where the engine keeps no int8 copy of it.
        func quant(_ key: String) -> (Float, Int32)? {
            let (scale, zero): (String, String)
            if key == "input" || key == "pool" { (scale, zero) = (key + ".scale", key + ".zero_point") }
            else if key.hasSuffix(".act") { (scale, zero) = (String(key.dropLast(4)) + ".act_scale", String(key.dropLast(4)) + ".act_zero_point") }
            else if key.hasSuffix(".se.gated") { (scale, zero) = (String(key.dropLast(6)) + ".out_scale", String(key.dropLast(6)) + ".out_zero_point") }
            else if key.hasSuffix(".out") { (scale, zero) = (String(key.dropLast(4)) + ".out_scale", String(key.dropLast(4)) + ".out_zero_point") }
            else { return nil }
            guard let s = q.tensors[scale], let z = q.tensors[zero] else { return nil }
            let name = String(key.dropLast(4))
            if key.hasSuffix(".se.gated") { return (s.float32Values()![0], q.int32(zero)[0]) }
            // Pre-activation outputs of hardswish layers and projections feeding a residual add are not stored.
            if key.hasSuffix(".out"), q.tensors[name + ".act_scale"] != nil { return nil }
            if key.hasSuffix(".project.out"), q.tensors[name.replacingOccurrences(of: ".project", with: ".add") + ".out_scale"] != nil { return nil }
            _ = z
            return (s.float32Values()![0], q.int32(zero)[0])
        }
        /// Float logits of every clip with the tensors in `fake` fake-quantized.
        func run(_ fake: (String) -> Bool) -> [[Float]] {
            mels.map { m in
                Quantizer.calibrationForward(arch: model.architecture, net: net, melBins: 128, mel: m.mel, frames: m.frames) { k, v in
                    guard fake(k), let (s, z) = quant(k) else { return }
                    for i in 0..<v.count {
                        let qv = min(max((v[i] / s).rounded(.toNearestOrEven) + Float(z), -128), 127)
                        v[i] = s * (qv - Float(z))
                    }
                }
            }
        }
        let float = run { _ in false }
        /// Worst max |dp| over the clips.
        func worst(_ l: [[Float]]) -> Float { zip(float, l).map { fidelity(float: $0, int8: $1).maxProbDiff }.max()! }
        var keys: [String] = []
        _ = Quantizer.calibrationForward(arch: model.architecture, net: net, melBins: 128, mel: mels[0].mel,
                                         frames: mels[0].frames) { k, _ in if quant(k) != nil { keys.append(k) } }
        print(String(format: "sensitivity: all int8 %.4f", worst(run { _ in true })))
        // Weights alone: the float network with every conv/linear weight replaced by its int8 per-channel value.
        /// `net` with the weights of the layers in `names` replaced by their int8 per-channel values.
        func quantizedWeights(_ names: [String], levels: (String) -> Float = { _ in 127 }) -> FoldedNetwork {
            var wnet = net
            for name in names {
                var l = wnet.layers[name]!
                for c in 0..<l.cout {
                    var m: Float = 0
                    for i in 0..<l.per { m = max(m, abs(l.weights[c * l.per + i])) }
                    let s = m > 0 ? m / levels(name) : 1
                    for i in 0..<l.per { l.weights[c * l.per + i] = s * (l.weights[c * l.per + i] / s).rounded() }
                }
                wnet.layers[name] = l
            }
            return wnet
        }
        /// Worst max |dp| of `n`.
        func worstOf(_ n: FoldedNetwork) -> Float {
            worst(mels.map { Quantizer.calibrationForward(arch: model.architecture, net: n, melBins: 128, mel: $0.mel, frames: $0.frames) { _, _ in } })
        }
        if ProcessInfo.processInfo.environment["EARTAG_INT8_SENSITIVITY"] == "weights" {
            for name in net.layers.keys.sorted() {
                print(String(format: "sensitivity: weights of %@ alone %.4f", name, worstOf(quantizedWeights([name]))))
            }
        }
        if ProcessInfo.processInfo.environment["EARTAG_INT8_SENSITIVITY"] == "wide" {
            /// 12-bit weights where the float-lane sums stay exact (stem, depthwise, 1x1 with cin <= 64).
            func wide(_ n: String) -> Bool { n == "features.0" || n.hasSuffix(".depthwise") || (net.layers[n]!.per <= 64 && !n.hasPrefix("classifier")) }
            let wn = quantizedWeights(Array(net.layers.keys), levels: { wide($0) ? 2047 : 127 })
            print(String(format: "sensitivity: weights 12-bit where exact, else 8 %.4f", worstOf(wn)))
            let wn2 = quantizedWeights(Array(net.layers.keys), levels: { ["features.0", "features.1.depthwise", "features.1.project", "features.2.expand", "features.2.depthwise", "features.2.project", "features.3.depthwise", "features.3.project", "features.4.project"].contains($0) ? 2047 : 127 })
            print(String(format: "sensitivity: weights 12-bit in the 9 most sensitive layers %.4f", worstOf(wn2)))
            /// Worst max |dp| of network `n` with the activations in `fake` fake-quantized.
            func combined(_ n: FoldedNetwork, _ fake: @escaping (String) -> Bool) -> Float {
                worst(mels.map { m in
                    Quantizer.calibrationForward(arch: model.architecture, net: n, melBins: 128, mel: m.mel, frames: m.frames) { k, v in
                        guard fake(k), let (s, z) = quant(k) else { return }
                        for i in 0..<v.count { v[i] = s * (min(max((v[i] / s).rounded(.toNearestOrEven) + Float(z), -128), 127) - Float(z)) }
                    }
                })
            }
            print(String(format: "sensitivity: 12-bit weights where exact + int8 activations %.4f", combined(wn) { _ in true }))
            // The first v2 engine re-rounded the gated SE map to the depthwise output's quantization (now: its own).
            let gatedQuant: (String) -> (Float, Int32)? = { k in
                guard k.hasSuffix(".se.gated") else { return quant(k) }
                let p = String(k.dropLast(9))
                return quant(p + ".depthwise.act") ?? quant(p + ".depthwise.out")
            }
            let withGate = worst(mels.map { m in
                Quantizer.calibrationForward(arch: model.architecture, net: wn, melBins: 128, mel: m.mel, frames: m.frames) { k, v in
                    guard let (s, z) = gatedQuant(k) else { return }
                    for i in 0..<v.count { v[i] = s * (min(max((v[i] / s).rounded(.toNearestOrEven) + Float(z), -128), 127) - Float(z)) }
                }
            })
            print(String(format: "sensitivity: ... with the gated SE maps re-rounded on the depthwise grid %.4f", withGate))
            let prefix: Set = ["features.0.act", "features.1.depthwise.out"]
            let floatPrefix = quantizedWeights(Array(net.layers.keys).filter { !["features.0", "features.1.depthwise", "features.1.project"].contains($0) },
                                               levels: { wide($0) ? 2047 : 127 })
            print(String(format: "sensitivity: ... with stem and block 1 in float (weights and activations) %.4f",
                         combined(floatPrefix) { !prefix.contains($0) }))
            print(String(format: "sensitivity: ... and block 1's output in float too %.4f",
                         combined(floatPrefix) { !prefix.contains($0) && $0 != "features.1.add.out" }))
        }
        var wnet = net
        for (name, var l) in wnet.layers {
            for c in 0..<l.cout {
                var m: Float = 0
                for i in 0..<l.per { m = max(m, abs(l.weights[c * l.per + i])) }
                let s = m > 0 ? m / 127 : 1
                for i in 0..<l.per { l.weights[c * l.per + i] = s * (l.weights[c * l.per + i] / s).rounded() }
            }
            wnet.layers[name] = l
        }
        let wl = mels.map { Quantizer.calibrationForward(arch: model.architecture, net: wnet, melBins: 128, mel: $0.mel, frames: $0.frames) { _, _ in } }
        print(String(format: "sensitivity: weights only %.4f", worst(wl)))
        // The int8 engine itself.
        let engine = try Int8Engine(model: q, maxFrames: 1001)
        print(String(format: "sensitivity: engine %.4f", worst(mels.map { engine.run(mel: $0.mel, frames: $0.frames).logits })))
        guard ProcessInfo.processInfo.environment["EARTAG_INT8_SENSITIVITY"] == "all" else { return }
        for k in keys {
            print(String(format: "sensitivity: %@ alone %.4f, all but it %.4f", k, worst(run { $0 == k }), worst(run { $0 != k })))
        }
    }
}
