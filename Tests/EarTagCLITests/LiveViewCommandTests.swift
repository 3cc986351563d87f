// `eartag listen --view` in a real terminal (tmux): the expected labels of a reference clip are on screen, and
// SIGINT (Ctrl-C) leaves the terminal clean (normal screen back, cursor visible).
import Foundation
import XCTest
import EarTagTestSupport

final class LiveViewCommandTests: CLITestCase {
    /// Runs tmux on a private server socket; returns its standard output. posix_spawn and waitpid, not Process:
    /// `new-session` forks the tmux server, and Foundation's Process did not notice the client's exit then.
    @discardableResult
    func tmux(_ socketName: String, _ arguments: [String]) throws -> String {
        let outURL = FileManager.default.temporaryDirectory.appendingPathComponent("eartag-tmux-\(UUID())")
        defer { try? FileManager.default.removeItem(at: outURL) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outURL.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = (["tmux", "-L", socketName] + arguments).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, "/usr/bin/tmux", &actions, nil, argv, environ) == 0 else {
            throw XCTSkip("cannot run tmux")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
    }

    /// Polls the pane until `condition` holds for its text (returns the last capture).
    func capture(_ socketName: String, timeout: Double, until condition: (String) -> Bool) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var screen = ""
        repeat {
            screen = try tmux(socketName, ["capture-pane", "-p", "-t", "view"])
            if condition(screen) { return screen }
            usleep(100_000)
        } while Date() < deadline
        return screen
    }

    /// The speech clip's view shows Speech as the top label with its bar; Ctrl-C restores the terminal.
    func testLiveViewShowsSpeechAndRestoresTheTerminal() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/tmux") else {
            let message = "tmux is not installed (make deps installs it)"
            if Reference.inCI { XCTFail(message) }
            throw XCTSkip(message)
        }
        let model = try importedModel()
        let dir = try makeTemporaryDirectory("eartag-view")
        defer { try? FileManager.default.removeItem(at: dir) }
        let raw = dir.appendingPathComponent("speech.raw")
        try pcm16(["speech"]).write(to: raw)
        // `cat RAW -` keeps stdin open after the clip (it then reads the terminal), so the view stays up.
        let script = dir.appendingPathComponent("run.sh")
        try """
        trap 'true' INT
        cat '\(raw.path)' - | '\(Self.binary)' listen --stdin --view --window 5 --model '\(model)' 2>'\(dir.path)/stderr'
        echo "eartag exited $?"
        sleep 60

        """.write(to: script, atomically: true, encoding: .utf8)
        let socketName = "eartag-test-\(UUID().uuidString.prefix(8))"
        try tmux(socketName, ["new-session", "-d", "-x", "120", "-y", "40", "-s", "view", "sh '\(script.path)'"])
        defer { _ = try? tmux(socketName, ["kill-server"]) }
        let screen = try capture(socketName, timeout: 30) { $0.contains("window      5.0 -    10.0 s") }
        XCTAssertTrue(screen.contains("EarTag live view: stdin"), screen)
        XCTAssertTrue(screen.contains("window      5.0 -    10.0 s"), screen)
        let rows = screen.split(separator: "\n").filter { $0.contains(" [") && !$0.hasPrefix("level") }
        XCTAssertEqual(rows.count, 10, screen)
        XCTAssertTrue(rows.first?.hasPrefix("Speech ") ?? false, "top label of the speech clip: \(screen)")
        XCTAssertTrue(rows.first?.contains("#####") ?? false, screen)
        XCTAssertTrue(screen.contains("Speech") && screen.contains("start Speech"), "the Speech event is listed: \(screen)")
        XCTAssertTrue(screen.contains("level  ") && screen.contains(" dBFS ["), screen)
        XCTAssertTrue(screen.contains("real-time factor"), screen)
        XCTAssertEqual(try tmux(socketName, ["display", "-p", "-t", "view", "#{alternate_on}"]), "1\n")
        try tmux(socketName, ["send-keys", "-t", "view", "C-c"])
        let after = try capture(socketName, timeout: 10) { $0.contains("eartag exited") }
        XCTAssertTrue(after.contains("eartag exited 0"), after)
        XCTAssertFalse(after.contains("EarTag live view"), "the view is gone: \(after)")
        XCTAssertEqual(try tmux(socketName, ["display", "-p", "-t", "view", "#{alternate_on} #{cursor_flag}"]), "0 1\n")
        let stderr = try String(contentsOf: dir.appendingPathComponent("stderr"), encoding: .utf8)
        XCTAssertEqual(stderr, "", "nothing else was written to the terminal")
    }
}
