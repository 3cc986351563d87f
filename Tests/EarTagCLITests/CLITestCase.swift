// Helpers for tests that run the built `eartag` binary.
import Foundation
import XCTest
import EarTagTestSupport

/// What one run of the binary produced.
struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Base class: runs `eartag` and imports the reference model once per test process.
class CLITestCase: XCTestCase {
    /// Children may exit before reading all of their stdin: a write to that pipe must fail, not kill the tests.
    override class func setUp() {
        super.setUp()
        signal(SIGPIPE, SIG_IGN)
    }

    /// The directory holding the built products (beside the test bundle).
    static var productsDirectory: URL {
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            return bundle.bundleURL.deletingLastPathComponent()
        }
        return Bundle.main.bundleURL
    }

    /// Path of the built binary.
    static var binary: String { productsDirectory.appendingPathComponent("eartag").path }

    /// Runs the binary (or another executable) with arguments and extra environment, capturing both streams; in
    /// `currentDirectory` when given.
    func run(_ arguments: [String], environment: [String: String] = [:], stdin: Data? = nil,
             binary: String = CLITestCase.binary, currentDirectory: URL? = nil) throws -> RunResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        if let currentDirectory { p.currentDirectoryURL = currentDirectory }
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "EARTAG_MODEL")
        for (k, v) in environment { env[k] = v }
        p.environment = env
        // stderr goes to a file so that a full stderr pipe can never stall the child while stdout is read.
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("eartag-stderr-\(UUID())")
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errURL) }
        let err = try FileHandle(forWritingTo: errURL)
        let out = Pipe(), input = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = input
        try p.run()
        try err.close()
        // stdin is written from another thread so that a child filling its stdout pipe cannot deadlock us.
        let writer = input.fileHandleForWriting
        let done = DispatchSemaphore(value: 0)
        Thread {
            if let stdin { try? writer.write(contentsOf: stdin) }
            try? writer.close()
            done.signal()
        }.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        done.wait()
        let errData = try Data(contentsOf: errURL)
        return RunResult(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Path of mn04_as imported by `eartag import` into a per-process temporary folder.
    func importedModel() throws -> String {
        if let m = Self.cachedModel { return m }
        let checkpoint = try Reference.path("efficientat/mn04_as_mAP_432.pt")
        let labels = try Reference.path("efficientat/class_labels_indices.csv")
        let dir = try makeTemporaryDirectory("eartag-cli")
        let model = dir.appendingPathComponent("mn04_as.safetensors").path
        let r = try run(["import", checkpoint, "--labels", labels, "-o", model])
        XCTAssertEqual(r.status, 0, r.stderr)
        Self.cachedModel = model
        return model
    }

    nonisolated(unsafe) static var cachedModel: String?

    /// Asserts a failed run: non-zero status, nothing on stdout, one stderr line naming `subject`.
    func assertOneLineError(_ r: RunResult, naming subject: String, file: StaticString = #filePath,
                            line: UInt = #line) {
        XCTAssertNotEqual(r.status, 0, "expected failure", file: file, line: line)
        XCTAssertLessThan(r.status, 128, "crashed (signal)", file: file, line: line)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "stderr: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(subject), "stderr does not name \(subject): \(r.stderr)", file: file, line: line)
    }
}
