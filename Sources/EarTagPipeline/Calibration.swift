// `eartag quantize`: calibration audio through the real frontend, then the quantizer.
import FoundationEssentials
import EarTagPlatform
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EarTagAudio
import EarTagEngine
import EarTagFrontend
import EarTagModel

/// Errors of the calibration step.
public struct CalibrationError: Error, CustomStringConvertible {
    public var description: String
}

/// Builds calibration mels from audio files and folders and quantizes a float model with them.
public enum Calibration {
    /// Audio file extensions looked for inside folders.
    static let audioExtensions: Set<String> = ["wav", "flac", "ogg", "oga", "mp3", "aiff", "aif", "au"]

    /// The audio files named by `inputs` (files as given; folders searched recursively, sorted), at most `limit`.
    public static func audioFiles(_ inputs: [String], limit: Int) throws -> [String] {
        var out: [String] = []
        let fm = FileManager.default
        for input in inputs {
            var isDirectory = false
            guard fm.fileExists(atPath: input, isDirectory: &isDirectory) else {
                throw CalibrationError(description: "\(input): no such file or folder")
            }
            if !isDirectory {
                out.append(input)
                continue
            }
            let found = ((try? fm.subpathsOfDirectory(atPath: input)) ?? [])
                .filter { audioExtensions.contains(PathText.pathExtension($0).lowercased()) }
                .sorted()
                .map { PathText.appending(input, $0) }
            out += found
        }
        guard !out.isEmpty else { throw CalibrationError(description: "no calibration audio found in \(inputs)") }
        return Array(out.prefix(limit))
    }

    /// Log-mels of up to `windowsPerFile` consecutive windows of `windowSeconds` from each file.
    public static func mels(files: [String], frontend settings: FrontendSettings, windowSeconds: Double = 10,
                            windowsPerFile: Int = 3, report: (String) -> Void = { _ in }) throws
        -> [(mel: [Float], frames: Int)] {
        let frontend = try LogMelFrontend(settings: settings)
        let window = Int(windowSeconds * Double(settings.sampleRate))
        var out: [(mel: [Float], frames: Int)] = []
        for file in files {
            let audio: DecodedAudio
            do {
                audio = try loadAudio(path: file, targetRate: settings.sampleRate)
            } catch {
                report("skipping calibration file \(error)")
                continue
            }
            var start = 0
            var taken = 0
            repeat {
                let piece = Array(audio.samples[start..<min(audio.samples.count, start + window)])
                if piece.count >= frontend.minimumSampleCount {
                    let mel = try frontend.compute(piece)
                    out.append((mel.data, mel.frames))
                }
                start += window
                taken += 1
            } while start < audio.samples.count && taken < windowsPerFile
        }
        guard !out.isEmpty else { throw CalibrationError(description: "none of the calibration files could be used") }
        return out
    }
}
