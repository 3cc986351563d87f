// The offline pieces of tools/make-corpus (selection, licences, size table, refusals), through its own unittest
// script tools/test-make-corpus, so that `make test` runs them.
import Foundation
import XCTest
import EarTagTestSupport

final class MakeCorpusToolTests: CLITestCase {
    /// tools/test-make-corpus passes (python3's unittest: exit status 0, "OK", every test run, none skipped).
    func testOfflinePieces() throws {
        let script = Reference.packageRoot.appendingPathComponent("tools/test-make-corpus").path
        let r = try run(["-v"], binary: script)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("\nOK"), r.stderr)
        XCTAssertTrue(r.stderr.contains("test_choose_is_a_fixed_hash_selection"), r.stderr)
        XCTAssertFalse(r.stderr.contains("skipped"), r.stderr)
    }
}
