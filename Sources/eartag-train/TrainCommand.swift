// `eartag-train train`: the training throughput benchmark now; the training loop over a corpus comes later.
import ArgumentParser
import EarTagTraining
import Foundation

/// `eartag-train train --benchmark ...`: trains on synthetic 10 s clips and prints clips per second.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a student (for now only --benchmark: training throughput on synthetic 10 s clips).")

    @Flag(help: "Measure training throughput on synthetic 10 s clips instead of training.") var benchmark = false
    @Option(help: "Width multiplier of the student (EfficientAT MN, 0.1 to 1.0 and the larger published ones).")
    var width: Double = 0.4
    @Option(name: .customLong("batch-size"), help: "Clips per step.") var batchSize: Int = 8
    @Option(help: "Timed steps (after one warm-up step).") var steps: Int = 20
    @Option(help: "Threads (default: every core).") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Flag(help: "Print one JSON object instead of the text report.") var json = false

    func validate() throws {
        guard benchmark else {
            throw ValidationError("train: only --benchmark is implemented yet (the training loop over a corpus is "
                                  + "not written); run 'eartag-train train --benchmark'")
        }
        guard width > 0, width <= 4, width.isFinite else { throw ValidationError("--width must be in (0, 4], got \(width)") }
        guard batchSize >= 2 else {
            throw ValidationError("--batch-size must be at least 2 (BatchNorm in training mode), got \(batchSize)")
        }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    func run() throws {
        let r: TrainingBenchmark.Result
        do {
            r = try TrainingBenchmark.run(width: width, batch: batchSize, steps: steps, threads: threads)
        } catch {
            FileHandle.standardError.write(Data("eartag-train: benchmark: \(error)\n".utf8))
            throw ExitCode(1)
        }
        if json {
            let fmt = { (v: Double) in String(format: "%.3f", v) }
            print("{\"width\":\(r.width),\"batch_size\":\(r.batch),\"steps\":\(r.steps),\"threads\":\(r.threads),"
                  + "\"clip_seconds\":\(r.clipSeconds),\"clips_per_s\":\(fmt(r.clipsPerSecond)),"
                  + "\"median_step_ms\":\(fmt(r.medianStepSeconds * 1000))}")
            return
        }
        print(String(format: "width %.2f, batch %d, %d steps, %d threads, %.0f s clips", r.width, r.batch, r.steps,
                     r.threads, r.clipSeconds))
        print(String(format: "clips_per_s %.2f (median step %.1f ms)", r.clipsPerSecond, r.medianStepSeconds * 1000))
        let total = r.layerMilliseconds.reduce(0) { $0 + $1.1 }
        print("per step, by layer kind (forward + backward):")
        for (name, ms) in r.layerMilliseconds.sorted(by: { $0.1 > $1.1 }) {
            let label = name.padding(toLength: max(20, name.count), withPad: " ", startingAt: 0)
            print("  " + label + String(format: " %8.1f ms  %5.1f%%", ms, 100 * ms / max(total, 1e-9)))
        }
    }
}
