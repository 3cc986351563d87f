// The Ogg/Vorbis header check before libsndfile (docs/robustness.md, finding 14): broken Vorbis headers are refused
// with a typed one-line error, valid Vorbis and other Ogg codecs still reach libsndfile.
import Foundation
import XCTest
import CSndFile
@testable import EarTagAudio
import EarTagTestSupport

/// Ogg inputs through `OggVorbisHeaderCheck`, `loadAudio(bytes:)` and `loadAudio(path:)`.
final class OggVorbisCheckTests: XCTestCase {
    /// Temporary folder of the test.
    var dir: URL!

    /// Makes the temporary folder.
    override func setUpWithError() throws { dir = try makeTemporaryDirectory("eartag-ogg") }

    /// Removes the temporary folder.
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A path in the test folder.
    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// The fuzz regression that leaked in libsndfile, without the target's mode byte.
    func leakInput() throws -> [UInt8] {
        Array(try XCTUnwrap(FuzzInputs.file("regressions/audio/ogg_vorbis_header_leak")).dropFirst())
    }

    /// A 0.25 s mono Ogg file written by libsndfile in `format` at `rate`.
    func oggFile(_ name: String, format: Int32, rate: Int) throws -> [UInt8] {
        let p = path(name)
        try Fixtures.write(Fixtures.signal(frames: rate / 4, channels: 1, rate: rate), channels: 1, rate: rate,
                           format: format, to: p)
        return Array(try Data(contentsOf: URL(fileURLWithPath: p)))
    }

    /// A valid Ogg/Vorbis file (libsndfile's encoder, 16 kHz).
    func vorbisFile() throws -> [UInt8] {
        try oggFile("valid.ogg", format: Int32(SF_FORMAT_OGG | SF_FORMAT_VORBIS), rate: 16000)
    }

    /// Asserts `body` throws `.brokenOggVorbisHeader` for `file`, whose one-line message names the file; returns it.
    @discardableResult
    func assertBroken(_ file: String, _ body: () throws -> Void, line: UInt = #line) -> String {
        do {
            try body()
            XCTFail("accepted", line: line)
        } catch let error as AudioError {
            guard case .brokenOggVorbisHeader(let f, let detail) = error else {
                XCTFail("\(error)", line: line)
                return ""
            }
            XCTAssertEqual(f, file, line: line)
            XCTAssert(error.description.hasPrefix("\(file): broken Ogg/Vorbis header ("), error.description, line: line)
            XCTAssertFalse(error.description.contains("\n"), line: line)
            return detail
        } catch {
            XCTFail("\(error)", line: line)
        }
        return ""
    }

    /// The regression input is refused before libsndfile, from memory and from a file, naming the input.
    func testRegressionInputIsRefusedNamingTheFile() throws {
        let bytes = try leakInput()
        let detail = assertBroken("leak.ogg") { _ = try loadAudio(bytes: bytes, name: "leak.ogg") }
        XCTAssert(detail.contains("OV_EBADHEADER"), detail)
        let p = path("leak.ogg")
        try Fixtures.writeBytes(bytes, to: p)
        assertBroken(p) { _ = try loadAudio(path: p) }
        assertBroken(p) { _ = try SoundFile(readingPath: p) }
        XCTAssertEqual(VorbisFile.testHeaders(OggByteSource(bytes: bytes)), .badHeader)
    }

    /// Every kept Ogg regression (each leaked 5 784 bytes in libsndfile 1.2.0 before the check) is refused before
    /// libsndfile; `make test-asan` replays them with no LeakSanitizer suppression for libvorbis.
    func testOggLeakRegressionsAreRefused() throws {
        let inputs = FuzzInputs.files("audio").filter { $0.path.contains("regressions/audio/") && $0.path.contains("ogg") }
        XCTAssertEqual(inputs.count, 7, inputs.map(\.path).joined(separator: " "))
        for (path, input) in inputs {
            XCTAssertThrowsError(try loadAudio(bytes: Array(input.dropFirst()), name: "regression.ogg")) { error in
                switch error {
                case AudioError.brokenOggVorbisHeader("regression.ogg", _): break
                case AudioError.malformedFile("regression.ogg", let d) where d.contains("ID3v2"): break
                default: XCTFail("\(path): \(error)")
                }
            }
        }
    }

    /// Valid Ogg/Vorbis files (the fuzz seed, libsndfile's own encoding, sox's) still decode.
    func testValidVorbisStillDecodes() throws {
        let seed = Array(try XCTUnwrap(FuzzInputs.file("corpus/audio/tone_ogg")).dropFirst())
        let fromSeed = try loadAudio(bytes: seed, name: "tone.ogg")
        XCTAssertGreaterThan(fromSeed.samples.count, 0)
        XCTAssertEqual(fromSeed.formatName, "OGG Vorbis")
        let bytes = try vorbisFile()
        XCTAssertEqual(VorbisFile.testHeaders(OggByteSource(bytes: bytes)), .ok)
        XCTAssertNil(OggVorbisHeaderCheck.standard.problem(OggByteSource(bytes: bytes)))
        let fromFile = try loadAudio(path: path("valid.ogg"), targetRate: 16000)
        XCTAssertEqual(fromFile.sourceFrames, 4000)
        XCTAssertEqual(fromFile.formatName, "OGG Vorbis")
        let soxOgg = path("sox.ogg")
        let sox = Process()
        sox.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        sox.arguments = ["sox", "-n", "-r", "22050", "-c", "2", soxOgg, "synth", "0.5", "sine", "440"]
        try sox.run()
        sox.waitUntilExit()
        XCTAssertEqual(sox.terminationStatus, 0, "sox could not write an Ogg/Vorbis file")
        let fromSox = try loadAudio(path: soxOgg, targetRate: 22050)
        XCTAssertEqual(fromSox.sourceChannels, 2)
        XCTAssertEqual(fromSox.sourceFrames, 11025)
    }

    /// An Ogg/Opus file is not Vorbis (OV_ENOTVORBIS): it goes to libsndfile, which decodes it.
    func testOggOpusStillGoesToLibsndfile() throws {
        let bytes = try oggFile("opus.ogg", format: Int32(SF_FORMAT_OGG | SF_FORMAT_OPUS), rate: 48000)
        XCTAssertEqual(VorbisFile.testHeaders(OggByteSource(bytes: bytes)), .notVorbis)
        let audio = try loadAudio(bytes: bytes, name: "opus.ogg", targetRate: 48000)
        XCTAssertEqual(audio.formatName, "OGG Opus")
        XCTAssertGreaterThan(audio.samples.count, 0)
        XCTAssertEqual(try loadAudio(path: path("opus.ogg"), targetRate: 48000).formatName, "OGG Opus")
    }

    /// An Ogg page of an unknown codec goes to libsndfile and gives its usual error.
    func testUnknownOggCodecGetsLibsndfilesError() throws {
        let page = OggStream.page(serial: 7, sequence: 0, flags: 2, packets: [Array("\u{1}nocodec".utf8) + [0, 1, 2]])
        XCTAssertEqual(VorbisFile.testHeaders(OggByteSource(bytes: page)), .notVorbis)
        XCTAssertThrowsError(try loadAudio(bytes: page, name: "unknown.ogg")) { error in
            if case AudioError.brokenOggVorbisHeader = error { XCTFail("refused by the Vorbis check: \(error)") }
            XCTAssert("\(error)".hasPrefix("unknown.ogg: "), "\(error)")
        }
    }

    /// The header streams libsndfile 1.2.0 refuses (and leaks on) but libvorbisfile accepts or calls "not Vorbis":
    /// each is refused by the page walk.
    func testPageWalkRefusesWhatVorbisfileLetsThrough() throws {
        let stream = try OggStream(try vorbisFile())
        let (id, comment, setup) = (stream.packets[0], stream.packets[1], stream.packets[2])
        let serial = stream.serial
        let cases: [(String, [UInt8], VorbisFileStatus, String)] = [
            ("id page alone", OggStream.page(serial: serial, sequence: 0, flags: 2, packets: [id]), .notVorbis, "OV_ENOTVORBIS"),
            ("comment on the first page",
             OggStream.page(serial: serial, sequence: 0, flags: 2, packets: [id, comment])
                + OggStream.page(serial: serial, sequence: 1, flags: 0, packets: [setup]) + stream.audio,
             .ok, "2 complete packet(s)"),
            ("end-of-stream flag on the comment page",
             OggStream.page(serial: serial, sequence: 0, flags: 2, packets: [id])
                + OggStream.page(serial: serial, sequence: 1, flags: 4, packets: [comment])
                + OggStream.page(serial: serial, sequence: 2, flags: 0, packets: [setup]) + stream.audio,
             .ok, "end-of-stream"),
            ("a version-1 page among the headers",
             OggStream.page(serial: serial, sequence: 0, flags: 2, packets: [id])
                + OggStream.page(serial: serial, sequence: 1, flags: 0, packets: [comment])
                + OggStream.page(serial: serial, sequence: 2, flags: 0, packets: [[9, 9]], version: 1)
                + OggStream.page(serial: serial, sequence: 2, flags: 0, packets: [setup]) + stream.audio,
             .ok, "Ogg version 1"),
            // The continued packet's tail on the comment page is dropped by libogg: the version-1 page still counts.
            ("a version-1 page after a continued comment page",
             OggStream.page(serial: serial, sequence: 0, flags: 2, packets: [id])
                + OggStream.page(serial: serial, sequence: 1, flags: 1, packets: [[7, 7, 7, 7, 7], comment])
                + OggStream.page(serial: serial, sequence: 2, flags: 0, packets: [[9, 9]], version: 1)
                + OggStream.page(serial: serial, sequence: 2, flags: 0, packets: [setup]) + stream.audio,
             .ok, "Ogg version 1"),
        ]
        for (what, bytes, status, expected) in cases {
            XCTAssertEqual(VorbisFile.testHeaders(OggByteSource(bytes: bytes)), status, what)
            let detail = assertBroken("case.ogg") { _ = try loadAudio(bytes: bytes, name: "case.ogg") }
            XCTAssert(detail.contains(expected), "\(what): \(detail)")
        }
        // The same three packets on well-formed pages decode, also after a continued packet's tail libogg drops.
        let good = OggStream.page(serial: serial, sequence: 0, flags: 2, packets: [id])
            + OggStream.page(serial: serial, sequence: 1, flags: 0, packets: [comment, setup]) + stream.audio
        XCTAssertGreaterThan(try loadAudio(bytes: good, name: "good.ogg").samples.count, 0)
        let tail = OggStream.page(serial: serial, sequence: 0, flags: 2, packets: [id])
            + OggStream.page(serial: serial, sequence: 1, flags: 1, packets: [[7, 7, 7, 7, 7], comment])
            + OggStream.page(serial: serial, sequence: 2, flags: 0, packets: [setup]) + stream.audio
        XCTAssertGreaterThan(try loadAudio(bytes: tail, name: "tail.ogg").samples.count, 0)
    }

    /// The probe is a seam: any vorbisfile failure but OV_ENOTVORBIS refuses; OV_ENOTVORBIS on a stream libsndfile
    /// does not read as Vorbis (Opus) passes; the OV_E* codes map to their names.
    func testProbeSeamAndStatusNames() throws {
        let vorbis = OggByteSource(bytes: try vorbisFile())
        let opus = OggByteSource(bytes: try oggFile("opus.ogg", format: Int32(SF_FORMAT_OGG | SF_FORMAT_OPUS), rate: 48000))
        for status in [VorbisFileStatus.readError, .fault, .badHeader, .versionMismatch, .other(-1)] {
            let check = OggVorbisHeaderCheck(probe: { _ in status })
            XCTAssertEqual(check.problem(vorbis), status.problem)
            XCTAssertEqual(check.problem(opus), status.problem)
        }
        let notVorbis = OggVorbisHeaderCheck(probe: { _ in .notVorbis })
        XCTAssertNil(notVorbis.problem(opus))
        XCTAssertNotNil(notVorbis.problem(vorbis))
        let codes: [(Int32, VorbisFileStatus, String)] = [
            (0, .ok, "accepted"), (-128, .readError, "OV_EREAD"), (-129, .fault, "OV_EFAULT"),
            (-132, .notVorbis, "OV_ENOTVORBIS"), (-133, .badHeader, "OV_EBADHEADER"),
            (-134, .versionMismatch, "OV_EVERSION"), (-130, .other(-130), "-130"),
        ]
        for (code, status, name) in codes {
            XCTAssertEqual(VorbisFileStatus(code: code), status)
            XCTAssert(status.problem.contains(name), status.problem)
        }
    }

    /// An Ogg stream behind an ID3v2 tag (libsndfile skips the tag, then refuses embedded Ogg) is refused before
    /// libsndfile opens it; the page walk finds the first page of a real file at byte 0.
    func testOggBehindID3IsRefusedAndPagesAreFound() throws {
        let bytes = try vorbisFile()
        let tag: [UInt8] = Array("ID3".utf8) + [4, 0, 0, 0, 0, 0, 20] + [UInt8](repeating: 0, count: 20)
        XCTAssertEqual(OggVorbisHeaderCheck.id3End(OggByteSource(bytes: tag + tag + bytes)), 60)
        XCTAssertThrowsError(try loadAudio(bytes: tag + bytes, name: "tagged.ogg")) { error in
            guard case AudioError.malformedFile("tagged.ogg", let detail) = error else { return XCTFail("\(error)") }
            XCTAssert(detail.contains("ID3v2"), detail)
        }
        let first = try XCTUnwrap(OggPage.next(in: OggByteSource(bytes: bytes), from: 0))
        XCTAssertEqual(first.offset, 0)
        XCTAssert(first.isBeginning && first.packetEnds == 1)
        XCTAssert(first.bodyPrefix.starts(with: OggVorbisHeaderCheck.vorbisMagic))
        // A corrupted CRC makes libogg (and the walk) skip the page.
        var corrupt = bytes
        corrupt[22] ^= 0xFF
        XCTAssertNotEqual(OggPage.next(in: OggByteSource(bytes: corrupt), from: 0)?.offset, 0)
    }
}

/// Takes an Ogg/Vorbis file apart into its three header packets and audio pages, and builds Ogg pages.
struct OggStream {
    /// The header packets (identification, comment, setup), reassembled from their pages.
    var packets: [[UInt8]] = []
    /// The pages after the headers, unchanged.
    var audio: [UInt8] = []
    /// The logical stream's serial number.
    var serial: UInt32 = 0

    /// Splits `bytes` (one logical stream whose headers end on a page boundary, as encoders write them).
    init(_ bytes: [UInt8]) throws {
        let src = OggByteSource(bytes: bytes)
        var at: Int64 = 0
        var partial: [UInt8] = []
        while packets.count < 3 {
            let page = try XCTUnwrap(OggPage.next(in: src, from: at))
            serial = page.serial
            var p = Int(page.offset) + page.header.count
            for lace in page.header[27...] {
                partial += bytes[p..<(p + Int(lace))]
                p += Int(lace)
                if lace < 255 { packets.append(partial); partial = [] }
            }
            at = page.end
        }
        // The audio pages keep their serial and sequence numbers (2 onwards with libsndfile's encoder).
        audio = Array(bytes[Int(at)...])
    }

    /// One page holding whole `packets` (each under 255 x 255 bytes) with a valid CRC.  // ref: RFC 3533 section 6
    static func page(serial: UInt32, sequence: UInt32, flags: UInt8, packets: [[UInt8]], version: UInt8 = 0) -> [UInt8] {
        var lacing: [UInt8] = []
        for packet in packets {
            lacing += [UInt8](repeating: 255, count: packet.count / 255) + [UInt8(packet.count % 255)]
        }
        /// Little-endian bytes of an integer.
        func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        var header = OggPage.capture + [version, flags] + le(UInt64(0)) + le(serial) + le(sequence) + le(UInt32(0))
        header += [UInt8(lacing.count)] + lacing
        let body = packets.flatMap { $0 }
        let crc = le(OggPage.crc(body, OggPage.crc(header)))
        header[22..<26] = crc[0..<4]
        return header + body
    }
}
