// Finite-difference gradient checks for every layer type of the trainer, on small random shapes, and of whole
// tiny students (mlp and fully convolutional heads, with and without SE, other strides).
// The loss is L = sum_i r_i y_i with fixed random r, so dL/dy = r; central differences in float with a step of
// 1e-2 (the forward passes are accumulated in double for L) are compared with the analytic gradient relative to
// the tensor's largest analytic magnitude.
import EarTagModel
import XCTest
@testable import EarTagTraining

/// Random floats from a seeded generator.
func randomFloats(_ n: Int, seed: UInt64, scale: Double = 1) -> [Float] {
    var r = TrainingRandom(seed: seed)
    return (0..<n).map { _ in Float(r.normal() * scale) }
}

/// sum_i r_i y_i in double.
func projection(_ y: UnsafeMutablePointer<Float>, _ r: [Float]) -> Double {
    var s = 0.0
    for i in r.indices { s += Double(y[i]) * Double(r[i]) }
    return s
}

final class LayerGradientTests: XCTestCase {
    /// Compares the analytic gradient of `values` (count n) with central differences of `loss` at a few indices.
    /// ReLU and hardswish have kinks: where the one-sided differences (forward and backward, step h) disagree,
    /// a kink lies within h, the central difference itself is unreliable and the index is skipped; at most a
    /// third (`maxSkipped`) may be skipped.
    func check(_ name: String, values: UnsafeMutablePointer<Float>, count n: Int, analytic: [Float],
               loss: () -> Double, samples: Int = 24, step: Float = 1e-2, tolerance: Double = 2e-2,
               maxSkipped: Double = 1.0 / 3, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(analytic.count, n, name, file: file, line: line)
        let scale = Double(analytic.reduce(0) { max($0, abs($1)) })
        XCTAssertGreaterThan(scale, 0, "\(name): analytic gradient is all zero", file: file, line: line)
        var rng = TrainingRandom(seed: UInt64(n) &* 7919)
        let indices = n <= samples ? Array(0..<n) : (0..<samples).map { _ in Int(rng.next() % UInt64(n)) }
        var worst = 0.0, skipped = 0
        for i in indices {
            let v = values[i]
            let center = loss()
            values[i] = v + step; let up = loss(); let hi = values[i]
            values[i] = v - step; let down = loss(); let lo = values[i]
            values[i] = v
            let forward = (up - center) / Double(hi - v), backward = (center - down) / Double(v - lo)
            if abs(forward - backward) > tolerance * scale { skipped += 1; continue }
            let central = (up - down) / Double(hi - lo)
            worst = max(worst, abs(central - Double(analytic[i])) / scale)
        }
        XCTAssertLessThanOrEqual(worst, tolerance, "\(name): finite differences disagree", file: file, line: line)
        XCTAssertLessThanOrEqual(Double(skipped), maxSkipped * Double(indices.count), "\(name): too many kinks",
                                 file: file, line: line)
    }

    /// BatchNorm in training mode (batch statistics) with each activation, and in eval mode.
    func testBatchNorm() {
        for (k, act) in [TrainActivation.none, .relu, .hardswish].enumerated() {
            for training in [true, false] {
                let pixels = 37, c = 12  // a channel tail beyond the SIMD8 block
                let bn = BatchNormAct("bn", channels: c, eps: 1e-3, activation: act, threads: 2)
                bn.weight.setValues(randomFloats(c, seed: 1, scale: 0.5).map { $0 + 1 })
                bn.bias.setValues(randomFloats(c, seed: 2, scale: 0.5))
                bn.runningMean.load(randomFloats(c, seed: 5, scale: 0.3))
                let z = FloatStorage(copying: randomFloats(pixels * c, seed: 3 + UInt64(k), scale: 2))
                let r = FloatStorage(copying: randomFloats(pixels * c, seed: 4))
                let out = FloatStorage(pixels * c), dzs = FloatStorage(pixels * c)
                let par = Parallel(threads: 2)
                let loss = { () -> Double in
                    bn.forward(z: z.pointer, out: out.pointer, pixels: pixels, training: training, parallel: par)
                    return projection(out.pointer, r.array)
                }
                _ = loss()
                bn.backward(z: z.pointer, dOut: r.pointer, dZ: dzs.pointer, pixels: pixels, training: training,
                            parallel: par)
                let dz = dzs.array
                let name = "batchnorm \(act) training \(training)"
                let dg = bn.weight.gradient, db = bn.bias.gradient
                check(name + " input", values: z.pointer, count: z.count, analytic: dz, loss: loss)
                check(name + " weight", values: bn.weight.value.pointer, count: c, analytic: dg, loss: loss)
                check(name + " bias", values: bn.bias.value.pointer, count: c, analytic: db, loss: loss)
            }
        }
    }

    /// 1x1 convolution as a matrix product: weight and input gradients.
    func testPointwiseConv() {
        let pixels = 45, cin = 13, cout = 40
        let conv = PointwiseConv("pw", cin: cin, cout: cout)
        conv.weight.setValues(randomFloats(cin * cout, seed: 7))
        let x = FloatStorage(copying: randomFloats(pixels * cin, seed: 8))
        let r = FloatStorage(copying: randomFloats(pixels * cout, seed: 9))
        let z = FloatStorage(pixels * cout), dx = FloatStorage(pixels * cin)
        let gemm = GemmRunner(parallel: Parallel(threads: 2))
        let loss = { () -> Double in
            conv.forward(x: x.pointer, z: z.pointer, pixels: pixels, gemm: gemm)
            return projection(z.pointer, r.array)
        }
        _ = loss()
        conv.backward(x: x.pointer, dZ: r.pointer, dX: dx.pointer, accumulate: false, pixels: pixels, gemm: gemm)
        let dw = conv.weight.gradient
        check("pointwise weight", values: conv.weight.value.pointer, count: cin * cout, analytic: dw, loss: loss)
        check("pointwise input", values: x.pointer, count: x.count, analytic: dx.array, loss: loss)
    }

    /// Depthwise 3x3 and 5x5, stride 1 and 2, and dilation 2: weight and input gradients.
    func testDepthwiseConv() {
        for (kernel, stride, dilation) in [(3, 1, 1), (3, 2, 1), (5, 1, 1), (5, 2, 1), (3, 1, 2), (5, 1, 2)] {
            let g = MapGeometry(batch: 2, rows: 9, cols: 8, channels: 16)
            let dw = DepthwiseConv("dw", channels: 16, kernel: kernel, stride: stride, dilation: dilation, threads: 2)
            dw.weight.setValues(randomFloats(16 * kernel * kernel, seed: 11))
            let o = dw.output(g)
            let x = FloatStorage(copying: randomFloats(g.count, seed: 12))
            let r = FloatStorage(copying: randomFloats(o.count, seed: 13))
            let z = FloatStorage(o.count), dx = FloatStorage(g.count)
            let par = Parallel(threads: 2)
            let loss = { () -> Double in
                dw.forward(x: x.pointer, input: g, z: z.pointer, parallel: par)
                return projection(z.pointer, r.array)
            }
            _ = loss()
            dw.backward(x: x.pointer, input: g, dZ: r.pointer, dX: dx.pointer, parallel: par)
            let name = "depthwise k\(kernel) s\(stride) d\(dilation)"
            let gw = dw.weight.gradient
            check(name + " weight", values: dw.weight.value.pointer, count: gw.count, analytic: gw, loss: loss)
            check(name + " input", values: x.pointer, count: x.count, analytic: dx.array, loss: loss)
        }
    }

    /// Stem 3x3 stride-2 conv from the mel plane: weight gradient (odd sizes hit the padding on both ends).
    func testStemConv() {
        let stem = StemConv(channels: 8, threads: 2)
        stem.weight.setValues(randomFloats(72, seed: 21))
        let batch = 2, mels = 11, frames = 10
        let o = stem.output(batch: batch, mels: mels, frames: frames)
        let mel = FloatStorage(copying: randomFloats(batch * mels * frames, seed: 22))
        let r = FloatStorage(copying: randomFloats(o.count, seed: 23))
        let z = FloatStorage(o.count)
        let par = Parallel(threads: 2)
        let loss = { () -> Double in
            stem.forward(mel: mel.pointer, batch: batch, mels: mels, frames: frames, z: z.pointer, parallel: par)
            return projection(z.pointer, r.array)
        }
        _ = loss()
        stem.backward(mel: mel.pointer, batch: batch, mels: mels, frames: frames, dZ: r.pointer, parallel: par)
        let gw = stem.weight.gradient
        check("stem weight", values: stem.weight.value.pointer, count: 72, analytic: gw, loss: loss)
    }

    /// Channel squeeze-excitation: input and fc gradients.
    func testSqueezeExcite() {
        let g = MapGeometry(batch: 3, rows: 4, cols: 5, channels: 16)
        let se = SqueezeExcite("se", channels: 16, squeeze: 8)
        se.fc1.weight.setValues(randomFloats(128, seed: 31, scale: 0.5))
        se.fc1.bias.setValues(randomFloats(8, seed: 32, scale: 0.5))
        se.fc2.weight.setValues(randomFloats(128, seed: 33, scale: 0.5))
        se.fc2.bias.setValues(randomFloats(16, seed: 34, scale: 0.5))
        let x = FloatStorage(copying: randomFloats(g.count, seed: 35))
        let r = FloatStorage(copying: randomFloats(g.count, seed: 36))
        let out = FloatStorage(g.count), dx = FloatStorage(g.count)
        let par = Parallel(threads: 2)
        let loss = { () -> Double in
            se.forward(x: x.pointer, geometry: g, out: out.pointer, parallel: par)
            return projection(out.pointer, r.array)
        }
        _ = loss()
        se.backward(x: x.pointer, geometry: g, dOut: r.pointer, dX: dx.pointer, parallel: par)
        for p in [se.fc1.weight, se.fc1.bias, se.fc2.weight, se.fc2.bias] {
            let grad = p.gradient
            check("squeeze-excitation \(p.name)", values: p.value.pointer, count: p.count, analytic: grad, loss: loss)
        }
        check("squeeze-excitation input", values: x.pointer, count: x.count, analytic: dx.array, loss: loss)
    }

    /// Linear layer: weight, bias and input gradients.
    func testLinear() {
        let rows = 3, nin = 19, nout = 11
        let lin = LinearLayer("fc", nin: nin, nout: nout)
        lin.weight.setValues(randomFloats(nin * nout, seed: 41))
        lin.bias.setValues(randomFloats(nout, seed: 42))
        let x = FloatStorage(copying: randomFloats(rows * nin, seed: 43))
        let r = FloatStorage(copying: randomFloats(rows * nout, seed: 44))
        let y = FloatStorage(rows * nout), dx = FloatStorage(rows * nin)
        let loss = { () -> Double in
            lin.forward(x: x.pointer, y: y.pointer, rows: rows)
            return projection(y.pointer, r.array)
        }
        _ = loss()
        lin.backward(x: x.pointer, dY: r.pointer, dX: dx.pointer, rows: rows)
        let gw = lin.weight.gradient, gb = lin.bias.gradient
        check("linear weight", values: lin.weight.value.pointer, count: gw.count, analytic: gw, loss: loss)
        check("linear bias", values: lin.bias.value.pointer, count: gb.count, analytic: gb, loss: loss)
        check("linear input", values: x.pointer, count: x.count, analytic: dx.array, loss: loss)
    }

    /// Whole tiny students (stem, every block type, residuals, SE, global pool, both heads, other strides): a few
    /// elements of every parameter tensor against finite differences of the logits' projection. Eval mode
    /// (running statistics, randomised): the wiring is what is checked here; train-mode BatchNorm is checked above
    /// and, for the whole network, by the golden step.
    func testWholeStudents() throws {
        let configurations: [(HeadType, Bool, [Int], Bool)] = [
            (.mlp, true, [2, 2, 2, 2], false), (.fullyConvolutional, false, [2, 2, 1, 2], false),
            (.mlp, true, [2, 1, 2, 2], false),
        ]
        for (head, se, strides, dilated) in configurations {
            let arch = try Architecture.efficientAT(widthMult: 0.1, head: head, numClasses: 5, channelSE: se,
                                                    strides: strides, dilated: dilated)
            let student = try Student(architecture: arch, seed: 3, threads: 2)
            student.dropout = 0

            // Non-trivial BatchNorm affine parameters so that every path carries gradient.
            for p in student.parameters where p.shape.count == 1 {
                let v = p.values, noise = randomFloats(p.count, seed: UInt64(p.name.utf8.count), scale: 0.2)
                p.setValues(zip(v, noise).map { $0 + $1 })
            }
            let batch = 4, mels = 64, frames = 64
            let mel = randomFloats(batch * mels * frames, seed: 51)
            let r = randomFloats(batch * 5, seed: 52)
            let loss = { () -> Double in
                let y = try! student.forward(mels: mel, batch: batch, mels: mels, frames: frames)
                return zip(y, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            }
            _ = loss()
            try student.backward(logitGradient: r)
            let grads = student.gradients()
            let globalMax = grads.values.map { $0.reduce(0) { max($0, abs($1)) } }.max()!
            for p in student.parameters {
                let g = grads[p.name]!
                // Tensors whose exact gradient is zero (a bias before another train-mode BatchNorm) only need to be
                // tiny; see GoldenTrainStepTests.
                if g.reduce(0, { max($0, abs($1)) }) < 1e-5 * globalMax { continue }
                check("\(head) se \(se) strides \(strides) dilated \(dilated) \(p.name)", values: p.value.pointer,
                      count: p.count, analytic: g, loss: loss, samples: 4, step: 2e-3, tolerance: 0.1, maxSkipped: 0.75)
            }
        }
    }
}
