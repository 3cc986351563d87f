// Locates EfficientAT reference material (../shared/reference) for parity tests and compares arrays.
import Foundation
import XCTest
import EarTagModel

/// Paths into the read-only reference folder shared by every checkout.
public enum Reference {
    /// The package root, found from this source file's location.
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `$EARTAG_REFERENCE` if set, else `<package root>/../shared/reference`.
    public static var root: URL {
        if let env = ProcessInfo.processInfo.environment["EARTAG_REFERENCE"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/reference")
    }

    /// True under CI, where a missing reference file is a failure rather than a skip.
    public static var inCI: Bool { ProcessInfo.processInfo.environment["CI"] != nil }

    /// Returns the path of a reference file, failing the test under CI and skipping it elsewhere when missing.
    public static func path(_ relative: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let p = root.appendingPathComponent(relative).path
        if FileManager.default.fileExists(atPath: p) { return p }
        let message = "reference file missing: \(p) (the parity tests need ../shared/reference beside the checkout)"
        if inCI {
            XCTFail(message, file: file, line: line)
            throw XCTSkip(message)
        }
        throw XCTSkip(message)
    }

    /// Reads a reference `.npy` file.
    public static func npy(_ relative: String, file: StaticString = #filePath, line: UInt = #line) throws
        -> NumpyArray {
        try NumpyArray.read(path: path(relative, file: file, line: line))
    }
}

/// Largest absolute element-wise difference of two equally long arrays (infinity when lengths differ).
public func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count else { return .infinity }
    var m: Float = 0
    for i in a.indices {
        let d = abs(a[i] - b[i])
        if d.isNaN { return .nan }
        m = max(m, d)
    }
    return m
}

/// A fresh temporary directory for one test, removed by the caller when done.
public func makeTemporaryDirectory(_ tag: String = "eartag") throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("\(tag)-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
