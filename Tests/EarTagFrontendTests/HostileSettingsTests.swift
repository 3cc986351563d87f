import XCTest
import EarTagModel
@testable import EarTagFrontend

/// Frontend settings come from model files (metadata `eartag.frontend`): absurd sizes are refused before any buffer
/// is allocated (docs/robustness.md).
final class HostileSettingsTests: XCTestCase {
    /// Checks: huge nFFT / nMels / sample rate / hop and non-finite coefficients are refused; the defaults are not.
    func testHugeOrNonFiniteSettingsAreRefused() throws {
        XCTAssertNoThrow(try LogMelFrontend(settings: .efficientAT))
        var cases: [(String, FrontendSettings)] = []
        var s = FrontendSettings.efficientAT; s.nFFT = 1 << 40; s.winLength = 800; cases.append(("nFFT", s))
        s = .efficientAT; s.nMels = 1 << 30; cases.append(("nMels", s))
        s = .efficientAT; s.sampleRate = Int.max; s.fmax = 15000; cases.append(("sampleRate", s))
        s = .efficientAT; s.hopLength = Int.max; cases.append(("hopLength", s))
        s = .efficientAT; s.normDiv = .nan; cases.append(("finite", s))
        s = .efficientAT; s.preemphasis = .infinity; cases.append(("finite", s))
        s = .efficientAT; s.logOffset = .infinity; cases.append(("logOffset", s))
        for (word, settings) in cases {
            XCTAssertThrowsError(try LogMelFrontend(settings: settings), word) { e in
                guard case FrontendError.invalidSettings(let why) = e else { return XCTFail("\(e)") }
                XCTAssertTrue(why.contains(word), "\(word): \(why)")
            }
        }
    }
}
