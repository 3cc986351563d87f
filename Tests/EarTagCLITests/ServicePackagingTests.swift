// The systemd unit, `make install` / `make uninstall` and the Debian package from `make deb`.
//
// Fast tests (always): `systemd-analyze verify` on the unit as `make install` writes it, the security exposure
// figure (printed, must be below 2.0), install/uninstall into a temporary DESTDIR, and the binary running with
// write+execute memory refused (the unit's MemoryDenyWriteExecute=yes).
// Slow tests: `make deb` (a static-stdlib build, minutes) only with EARTAG_TEST_DEB=1 (`make test-packaging`);
// `dpkg -i` / `dpkg -r` / `dpkg -P` on this machine only with EARTAG_TEST_DEB=1 and (CI or EARTAG_TEST_DPKG=1).
import Foundation
import XCTest
import EarTagTestSupport

final class ServicePackagingTests: CLITestCase {
    static let root = Reference.packageRoot
    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    // MARK: helpers

    /// Runs a tool (found in PATH unless absolute) in the package root; make's own variables are not inherited.
    func tool(_ name: String, _ arguments: [String], environment extra: [String: String] = [:],
              in directory: URL? = nil) throws -> RunResult {
        let p = Process()
        let path = name.hasPrefix("/") ? name : try requireTool(name)
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        p.currentDirectoryURL = directory ?? Self.root
        var env = Self.environment
        // Under `make test` the outer make's flags (jobserver descriptors, -s ...) must not reach the inner make.
        for k in ["MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"] { env.removeValue(forKey: k) }
        for (k, v) in extra { env[k] = v }
        p.environment = env
        let tmp = try makeTemporaryDirectory("eartag-tool")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let outURL = tmp.appendingPathComponent("out"), errURL = tmp.appendingPathComponent("err")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        try out.close()
        try err.close()
        return RunResult(status: p.terminationStatus,
                         stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
                         stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
    }

    /// Path of a tool in PATH; a missing tool fails the test under CI (env CI set) and skips it elsewhere.
    func requireTool(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let path = Self.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        let message = "\(name) not found in PATH"
        if Reference.inCI { XCTFail(message, file: file, line: line) }
        throw XCTSkip(message)
    }

    /// `make TARGET VAR=value...` in the package root, asserting success.
    @discardableResult
    func make(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
        let r = try tool("make", arguments)
        XCTAssertEqual(r.status, 0, "make \(arguments.joined(separator: " ")):\n\(r.stdout)\n\(r.stderr)",
                       file: file, line: line)
        return r
    }

    /// Installs into a fresh DESTDIR with the given prefix, using the binary under test.
    func install(prefix: String) throws -> URL {
        let dest = try makeTemporaryDirectory("eartag-destdir")
        addTeardownBlock { try? FileManager.default.removeItem(at: dest) }
        try make(["install", "DESTDIR=\(dest.path)", "PREFIX=\(prefix)", "INSTALL_BIN=\(Self.binary)"])
        return dest
    }

    /// What the unit's ExecStart= runs: the binary and the --config file.
    func execStart(ofUnit unit: String) throws -> (binary: String, config: String) {
        let text = try String(contentsOfFile: unit, encoding: .utf8)
        let lines = text.split(separator: "\n").filter { $0.hasPrefix("ExecStart=") }
        XCTAssertEqual(lines.count, 1, "one ExecStart= line in \(unit)")
        let words = try XCTUnwrap(lines.first).dropFirst("ExecStart=".count).split(separator: " ").map(String.init)
        XCTAssertEqual(Array(words.dropFirst().prefix(2)), ["listen", "--config"], "ExecStart= in \(unit)")
        XCTAssertEqual(words.count, 4, "ExecStart= in \(unit)")
        return (words[0], words.count > 3 ? words[3] : "")
    }

    /// `systemd-analyze verify` on an installed unit. verify insists that ExecStart='s binary exists on this
    /// machine, so the unit is copied (same name) with only the binary path prefixed by the root it was installed
    /// into; every other line is verified as installed.
    func verifyInstalledUnit(_ unit: String, installedUnder root: URL, file: StaticString = #filePath,
                             line: UInt = #line) throws {
        let analyze = try requireTool("systemd-analyze")
        let (binary, _) = try execStart(ofUnit: unit)
        let staged = root.path + binary
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: staged), "ExecStart= binary \(staged) missing",
                      file: file, line: line)
        let dir = try makeTemporaryDirectory("eartag-verify")
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = try String(contentsOfFile: unit, encoding: .utf8)
            .replacingOccurrences(of: "\nExecStart=\(binary) ", with: "\nExecStart=\(staged) ")
        let copy = dir.appendingPathComponent("eartag.service")
        try text.write(to: copy, atomically: true, encoding: .utf8)
        let r = try tool(analyze, ["verify", copy.path])
        XCTAssertEqual(r.status, 0, "systemd-analyze verify: \(r.stdout)\(r.stderr)", file: file, line: line)
        XCTAssertEqual((r.stdout + r.stderr).trimmingCharacters(in: .whitespacesAndNewlines), "",
                       "systemd-analyze verify printed warnings", file: file, line: line)
    }

    /// The overall exposure `systemd-analyze security --offline=true` gives a unit file; printed.
    func exposure(ofUnit unit: String, file: StaticString = #filePath, line: UInt = #line) throws -> Double {
        let analyze = try requireTool("systemd-analyze")
        let r = try tool(analyze, ["security", "--offline=true", "--no-pager", unit])
        XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
        let marker = "Overall exposure level for eartag.service:"
        let summary = try XCTUnwrap(r.stdout.split(separator: "\n").first { $0.contains(marker) },
                                    "no exposure line in:\n\(r.stdout)\(r.stderr)", file: file, line: line)
        let figure = summary.components(separatedBy: marker)[1].split(separator: " ").first.map(String.init)
        let value = try XCTUnwrap(figure.flatMap(Double.init), "cannot parse \(summary)", file: file, line: line)
        print("systemd-analyze security --offline=true \(unit): exposure \(value) (\(summary))")
        // The items still counted against the unit, for the log.
        for l in r.stdout.split(separator: "\n") where l.hasPrefix("✗") { print("  \(l)") }
        return value
    }

    /// Every regular file or symlink under a directory, as paths relative to it.
    func files(under dir: URL) -> [String] {
        guard let e = FileManager.default.enumerator(atPath: dir.path) else { return [] }
        var found: [String] = []
        while let rel = e.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent(rel).path, isDirectory: &isDir),
               isDir.boolValue { continue }
            found.append(rel)
        }
        return found.sorted()
    }

    // MARK: unit

    func testUnitAsInstalledPassesSystemdAnalyzeVerify() throws {
        let dest = try install(prefix: "/usr")
        let unit = dest.appendingPathComponent("lib/systemd/system/eartag.service").path
        try verifyInstalledUnit(unit, installedUnder: dest)
        // Another prefix: the unit still runs the binary that was installed.
        let local = try install(prefix: "/usr/local")
        try verifyInstalledUnit(local.appendingPathComponent("lib/systemd/system/eartag.service").path,
                                installedUnder: local)
    }

    func testUnitExposureIsBelowTwo() throws {
        let source = Self.root.appendingPathComponent("systemd/eartag.service").path
        XCTAssertLessThan(try exposure(ofUnit: source), 2.0)
        let dest = try install(prefix: "/usr")
        XCTAssertLessThan(try exposure(ofUnit: dest.appendingPathComponent("lib/systemd/system/eartag.service").path),
                          2.0)
    }

    func testUnitSettingsTheServiceRelies() throws {
        let text = try String(contentsOfFile: Self.root.appendingPathComponent("systemd/eartag.service").path,
                              encoding: .utf8)
        let settings = Set(text.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("#") })
        for required in ["Type=notify", "NotifyAccess=main", "WatchdogSec=30", "Restart=on-failure", "RestartSec=5",
                         "TimeoutStopSec=5", "DynamicUser=yes", "SupplementaryGroups=audio", "CapabilityBoundingSet=",
                         "DevicePolicy=closed", "DeviceAllow=char-alsa rw", "RestrictAddressFamilies=AF_UNIX",
                         "IPAddressDeny=any", "MemoryDenyWriteExecute=yes", "ProtectSystem=strict",
                         "StateDirectory=eartag", "ConfigurationDirectory=eartag",
                         "ExecStart=/usr/bin/eartag listen --config /etc/eartag/eartag.toml"] {
            XCTAssertTrue(settings.contains(required), "systemd/eartag.service lacks \(required)")
        }
        XCTAssertFalse(settings.contains { $0.hasPrefix("PrivateDevices=yes") }, "PrivateDevices= hides /dev/snd")
    }

    /// MemoryDenyWriteExecute=yes must not break the Swift runtime: run the binary with the kernel's equivalent
    /// (prctl PR_SET_MDWE, Linux 6.3+, inherited across exec), set by a python3 wrapper, and tag a clip.
    func testBinaryRunsWithWriteExecuteMemoryRefused() throws {
        try runUnderMDWE(binary: Self.binary)
    }

    func runUnderMDWE(binary: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let python = try requireTool("python3")
        let wrapper = """
            import ctypes, os, sys
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(65, 1, 0, 0, 0) != 0 or libc.prctl(66, 0, 0, 0, 0) != 1:
                sys.exit(77)  # kernel without PR_SET_MDWE
            libc.mmap.restype = ctypes.c_void_p
            if libc.mmap(None, 4096, 7, 0x22, -1, 0) != ctypes.c_void_p(-1).value:
                sys.exit("a writable+executable mapping was allowed: MDWE not in force")
            os.execv(sys.argv[1], sys.argv[1:])
            """
        let model = try importedModel()
        let clip = try Reference.path("audio/speech.wav")
        let r = try tool(python, ["-c", wrapper, binary, "tag", "--model", model, "--top", "3", clip])
        if r.status == 77 { throw XCTSkip("this kernel has no PR_SET_MDWE (Linux 6.3+)") }
        XCTAssertEqual(r.status, 0, "under MDWE: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stdout.contains("Speech"), "under MDWE: \(r.stdout)", file: file, line: line)
    }

    // MARK: make install / uninstall

    func testInstallPlacesEveryFileWhereTheUnitExpectsAndUninstallRemovesThem() throws {
        let dest = try install(prefix: "/usr")
        let unit = dest.appendingPathComponent("lib/systemd/system/eartag.service")
        let (binary, config) = try execStart(ofUnit: unit.path)
        XCTAssertEqual(binary, "/usr/bin/eartag")
        XCTAssertEqual(config, "/etc/eartag/eartag.toml")
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: dest.path + binary))
        let installedConfig = try String(contentsOfFile: dest.path + config, encoding: .utf8)
        XCTAssertTrue(installedConfig.contains("path = \"/usr/share/eartag/default.safetensors\""))
        let hasWeights = FileManager.default.fileExists(
            atPath: Self.root.appendingPathComponent("Weights/default.safetensors").path)
        var expected = ["etc/eartag/eartag.toml", "lib/systemd/system/eartag.service", "usr/bin/eartag",
                        "usr/share/doc/eartag/service.md"]
        if hasWeights { expected.append("usr/share/eartag/default.safetensors") }
        // eartag-train (the offline tools) is installed when it was built beside eartag.
        let trainTool = URL(fileURLWithPath: Self.binary).deletingLastPathComponent().appendingPathComponent("eartag-train").path
        if FileManager.default.isExecutableFile(atPath: trainTool) { expected.append("usr/bin/eartag-train") }
        XCTAssertEqual(files(under: dest), expected.sorted())
        // The installed binary is the one built.
        XCTAssertEqual(FileManager.default.contents(atPath: dest.path + binary),
                       FileManager.default.contents(atPath: Self.binary))

        // A second install keeps an edited configuration; uninstall removes the rest and keeps the edit.
        let edited = installedConfig + "\n# edited by the administrator\n"
        try edited.write(toFile: dest.path + config, atomically: true, encoding: .utf8)
        let again = try make(["install", "DESTDIR=\(dest.path)", "PREFIX=/usr", "INSTALL_BIN=\(Self.binary)"])
        XCTAssertTrue(again.stdout.contains("keeping the existing"), again.stdout)
        XCTAssertEqual(try String(contentsOfFile: dest.path + config, encoding: .utf8), edited)
        try make(["uninstall", "DESTDIR=\(dest.path)", "PREFIX=/usr"])
        XCTAssertEqual(files(under: dest), ["etc/eartag/eartag.toml"])

        // Unedited, the configuration goes too, with the directories install created for EarTag alone.
        try FileManager.default.removeItem(atPath: dest.path + config)
        try make(["install", "DESTDIR=\(dest.path)", "PREFIX=/usr", "INSTALL_BIN=\(Self.binary)"])
        try make(["uninstall", "DESTDIR=\(dest.path)", "PREFIX=/usr"])
        XCTAssertEqual(files(under: dest), [])
        for dir in ["etc/eartag", "usr/share/doc/eartag", "usr/share/eartag"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: dest.appendingPathComponent(dir).path), dir)
        }
    }

    func testInstallWithOtherPrefixPointsUnitAndConfigAtIt() throws {
        let dest = try install(prefix: "/opt/eartag")
        let unit = dest.appendingPathComponent("lib/systemd/system/eartag.service").path
        let (binary, config) = try execStart(ofUnit: unit)
        XCTAssertEqual(binary, "/opt/eartag/bin/eartag")
        XCTAssertEqual(config, "/etc/eartag/eartag.toml")
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: dest.path + binary))
        XCTAssertTrue(try String(contentsOfFile: unit, encoding: .utf8)
            .contains("Documentation=file:/opt/eartag/share/doc/eartag/service.md"))
        XCTAssertTrue(try String(contentsOfFile: dest.path + config, encoding: .utf8)
            .contains("path = \"/opt/eartag/share/eartag/default.safetensors\""))
        try make(["uninstall", "DESTDIR=\(dest.path)", "PREFIX=/opt/eartag"])
        XCTAssertEqual(files(under: dest), [])
    }

    func testInstallRefusesAMissingBinary() throws {
        let dest = try makeTemporaryDirectory("eartag-destdir")
        defer { try? FileManager.default.removeItem(at: dest) }
        let r = try tool("make", ["install", "DESTDIR=\(dest.path)", "INSTALL_BIN=/nonexistent/eartag"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("make build"), r.stderr)
        XCTAssertEqual(files(under: dest), [])
    }

    // MARK: make deb

    nonisolated(unsafe) static var builtDeb: Result<String, Error>?

    /// Runs `make deb` once per test process (EARTAG_TEST_DEB=1 only) and returns the package path.
    func debPackage() throws -> String {
        guard Self.environment["EARTAG_TEST_DEB"] == "1" else {
            throw XCTSkip("`make deb` (static build, minutes) runs only with EARTAG_TEST_DEB=1: make test-packaging")
        }
        for t in ["dpkg-deb", "dpkg", "ldd"] { _ = try requireTool(t) }
        if let built = Self.builtDeb { return try built.get() }
        let result = Result<String, Error> {
            let r = try tool("make", ["deb"])
            guard r.status == 0 else {
                throw NSError(domain: "make deb", code: Int(r.status),
                              userInfo: [NSLocalizedDescriptionKey: "make deb failed:\n\(r.stdout)\n\(r.stderr)"])
            }
            let build = Self.root.appendingPathComponent("build")
            let debs = try FileManager.default.contentsOfDirectory(atPath: build.path)
                .filter { $0.hasPrefix("eartag_") && $0.hasSuffix(".deb") }
            guard debs.count == 1 else {
                throw NSError(domain: "make deb", code: 1,
                              userInfo: [NSLocalizedDescriptionKey: "expected one build/eartag_*.deb, found \(debs)"])
            }
            return build.appendingPathComponent(debs[0]).path
        }
        Self.builtDeb = result
        return try result.get()
    }

    func testDebContentsControlAndStandaloneBinary() throws {
        let deb = try debPackage()
        let arch = try tool("dpkg", ["--print-architecture"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(deb.hasSuffix("_\(arch).deb"), deb)

        let listing = try tool("dpkg-deb", ["-c", deb])
        XCTAssertEqual(listing.status, 0, listing.stderr)
        print("dpkg-deb -c \(deb):\n\(listing.stdout)")
        for path in ["./usr/bin/eartag", "./lib/systemd/system/eartag.service", "./etc/eartag/eartag.toml",
                     "./usr/share/doc/eartag/service.md"] {
            let line = listing.stdout.split(separator: "\n").first { $0.hasSuffix(" \(path)") }
            XCTAssertNotNil(line, "\(path) not in the package")
            if let line { XCTAssertTrue(line.contains("root/root"), "\(path) not owned by root: \(line)") }
        }

        let field = { (name: String) throws -> String in
            try self.tool("dpkg-deb", ["-f", deb, name]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        XCTAssertEqual(try field("Package"), "eartag")
        XCTAssertEqual(try field("Architecture"), arch)
        let depends = try field("Depends")
        print("Depends: \(depends)")
        for lib in ["libsndfile1", "libsoxr0", "libfftw3-single3", "libasound2", "libc6"] {
            XCTAssertTrue(depends.contains(lib), "Depends lacks \(lib): \(depends)")
        }
        XCTAssertFalse(depends.contains("swift"), depends)

        let control = try makeTemporaryDirectory("eartag-control")
        defer { try? FileManager.default.removeItem(at: control) }
        XCTAssertEqual(try tool("dpkg-deb", ["-e", deb, control.path]).status, 0)
        XCTAssertEqual(try String(contentsOf: control.appendingPathComponent("conffiles"), encoding: .utf8),
                       "/etc/eartag/eartag.toml\n")
        for script in ["postinst", "prerm", "postrm"] {
            XCTAssertTrue(FileManager.default.isExecutableFile(atPath: control.appendingPathComponent(script).path),
                          script)
            let sh = try tool("sh", ["-n", control.appendingPathComponent(script).path])
            XCTAssertEqual(sh.status, 0, "\(script): \(sh.stderr)")
        }

        // The packaged binary needs no toolchain: nothing from /opt/swift, no libswift*, nothing missing.
        let tree = try makeTemporaryDirectory("eartag-deb-tree")
        defer { try? FileManager.default.removeItem(at: tree) }
        XCTAssertEqual(try tool("dpkg-deb", ["-x", deb, tree.path]).status, 0)
        let binary = tree.appendingPathComponent("usr/bin/eartag").path
        let ldd = try tool("ldd", [binary])
        print("ldd \(binary):\n\(ldd.stdout)")
        XCTAssertEqual(ldd.status, 0, ldd.stderr)
        for bad in ["/opt/swift", "libswift", "libFoundation", "not found"] {
            XCTAssertFalse(ldd.stdout.contains(bad), "packaged binary links \(bad):\n\(ldd.stdout)")
        }
        let help = try tool(binary, ["--help"], environment: ["LD_LIBRARY_PATH": ""])
        XCTAssertEqual(help.status, 0, help.stderr)
        XCTAssertTrue(help.stdout.contains("listen"), help.stdout)
        try runUnderMDWE(binary: binary)

        // The unit as the package installs it verifies and keeps the exposure below 2.0.
        let unit = tree.appendingPathComponent("lib/systemd/system/eartag.service").path
        let (execBinary, config) = try execStart(ofUnit: unit)
        XCTAssertEqual(execBinary, "/usr/bin/eartag")
        XCTAssertTrue(FileManager.default.fileExists(atPath: tree.path + config))
        try verifyInstalledUnit(unit, installedUnder: tree)
        XCTAssertLessThan(try exposure(ofUnit: unit), 2.0)
    }

    /// dpkg -i / -r / -P on this machine: only in CI or with EARTAG_TEST_DPKG=1, and only as root.
    func testDebInstallsAndRemovesWithDpkg() throws {
        guard Reference.inCI || Self.environment["EARTAG_TEST_DPKG"] == "1" else {
            throw XCTSkip("dpkg -i on this machine runs only in CI or with EARTAG_TEST_DPKG=1")
        }
        let deb = try debPackage()
        guard getuid() == 0 else {
            let message = "dpkg -i needs root"
            if Reference.inCI { XCTFail(message) }
            throw XCTSkip(message)
        }
        let status = try tool("dpkg-query", ["-W", "-f=${Status}", "eartag"])
        guard !status.stdout.contains("installed") else {
            XCTFail("a package eartag is already installed here (\(status.stdout)): not touching it")
            return
        }
        let fm = FileManager.default
        let owned = ["/usr/bin/eartag", "/lib/systemd/system/eartag.service", "/etc/eartag/eartag.toml",
                     "/usr/share/doc/eartag/service.md"]
        for path in owned where fm.fileExists(atPath: path) {
            XCTFail("\(path) exists and belongs to no package: not overwriting it")
            return
        }
        addTeardownBlock { [self] in
            // Whatever happened, leave the machine as it was.
            if let s = try? tool("dpkg-query", ["-W", "-f=${Status}", "eartag"]), s.stdout.contains("installed")
                || s.stdout.contains("config-files") {
                _ = try? tool("dpkg", ["-P", "eartag"])
            }
        }

        let install = try tool("dpkg", ["-i", deb])
        XCTAssertEqual(install.status, 0, "dpkg -i: \(install.stdout)\(install.stderr)")
        print("dpkg -i:\n\(install.stdout)\(install.stderr)")
        for path in owned { XCTAssertTrue(fm.fileExists(atPath: path), "\(path) not installed") }
        let (binary, config) = try execStart(ofUnit: "/lib/systemd/system/eartag.service")
        XCTAssertTrue(fm.isExecutableFile(atPath: binary))
        XCTAssertTrue(fm.fileExists(atPath: config))
        // The unit exactly as installed by the package, with its binary in place.
        let analyze = try requireTool("systemd-analyze")
        let verify = try tool(analyze, ["verify", "/lib/systemd/system/eartag.service"])
        XCTAssertEqual(verify.status, 0, "verify: \(verify.stdout)\(verify.stderr)")
        let run = try tool(binary, ["--help"], environment: ["LD_LIBRARY_PATH": ""])
        XCTAssertEqual(run.status, 0, run.stderr)
        // Enabled for the next boot even without a running systemd (deb-systemd-helper writes the symlink).
        let wants = "/etc/systemd/system/multi-user.target.wants/eartag.service"
        if fm.fileExists(atPath: "/usr/bin/deb-systemd-helper") {
            XCTAssertNotNil(try? fm.destinationOfSymbolicLink(atPath: wants), "\(wants) not created")
        }

        let remove = try tool("dpkg", ["-r", "eartag"])
        XCTAssertEqual(remove.status, 0, "dpkg -r: \(remove.stdout)\(remove.stderr)")
        for path in ["/usr/bin/eartag", "/lib/systemd/system/eartag.service", "/usr/share/doc/eartag/service.md"] {
            XCTAssertFalse(fm.fileExists(atPath: path), "\(path) left after dpkg -r")
        }
        XCTAssertTrue(fm.fileExists(atPath: "/etc/eartag/eartag.toml"), "dpkg -r keeps the conffile")

        let purge = try tool("dpkg", ["-P", "eartag"])
        XCTAssertEqual(purge.status, 0, "dpkg -P: \(purge.stdout)\(purge.stderr)")
        for path in ["/etc/eartag", wants, "/etc/systemd/system/eartag.service",
                     "/var/lib/systemd/deb-systemd-helper-enabled/eartag.service",
                     "/var/lib/systemd/deb-systemd-helper-masked/eartag.service"] {
            XCTAssertFalse(fm.fileExists(atPath: path) || (try? fm.destinationOfSymbolicLink(atPath: path)) != nil,
                           "\(path) left after dpkg -P")
        }
        let after = try tool("dpkg-query", ["-W", "-f=${Status}", "eartag"])
        XCTAssertFalse(after.stdout.contains("installed") || after.stdout.contains("config-files"), after.stdout)
    }
}
