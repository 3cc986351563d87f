// The Ogg/Vorbis header check run before libsndfile opens a file (docs/robustness.md, finding 14).
//
// libsndfile 1.2.0 leaks the vorbis_info of libvorbis (about 5.8 kB) whenever its Vorbis reader refuses a header:
// ogg_vorbis.c vorbis_read_header calls vorbis_info_init and then returns an error before ogg_vorbis_open sets
// `psf->codec_close = vorbis_close`, so psf_close never calls vorbis_info_clear. The reader only runs when
// ogg.c ogg_stream_classify finds the first Ogg page to be a beginning-of-stream page whose body starts with
// "\x01vorbis" (ogg_read_first_page, ogg_page_classify); it then refuses (and leaks) when
//   1. the first page holds more than the identification packet ("First page contains extraneous packets"),
//   2. vorbis_synthesis_headerin refuses the identification header,
//   3. the file ends, or a page with the end-of-stream flag came, before the comment and setup packets
//      ("End of file before finding all Vorbis headers", ogg_stream_next_page returns 0 once `eos` is set),
//   4. ogg_stream_pagein refuses a header page of the stream (Ogg version byte not 0: SFE_INTERNAL),
//   5. libogg reports a hole among the header packets ("Corrupt secondary header").
// (The comment and setup packets' vorbis_synthesis_headerin results are ignored by libsndfile: no failure there.)
// ref: libsndfile 1.2.0 src/ogg.c (ogg_read_first_page, ogg_stream_classify, ogg_stream_next_page),
//      src/ogg_vorbis.c (vorbis_read_header, ogg_vorbis_open), src/sndfile.c (psf_open_file, psf_close)
//
// libvorbisfile's ov_test_callbacks reads the same three headers (lib/vorbisfile.c _fetch_headers) and fails with
// OV_EBADHEADER on 2 and 5 and on a missing page after the comment packet, but it ignores the end-of-stream flag (3),
// drops a page it cannot page in (4), reads past extra packets on the first page (1), and gives OV_ENOTVORBIS when
// the stream stops right after the identification page. So, for a stream libsndfile classifies as Vorbis, the check
// below requires ov_test_callbacks to succeed AND walks the pages itself for 1, 3 and 4; any other ov_test failure
// but OV_ENOTVORBIS is refused as well (an Ogg/Opus or Ogg/FLAC stream gives OV_ENOTVORBIS and goes to libsndfile).
// The walk counts packets from lacing values as libogg does, including its dropping of a continued packet whose start
// it never saw.
//
// libsndfile also reads an Ogg stream behind ID3v2 tags (sndfile.c guess_file_type -> id3_skip, any tag version) and
// then refuses it ("embedding not supported") only after ogg_open, which may already have leaked: such input is
// refused here before libsndfile sees it (libsndfile never decodes it).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One Ogg page as libogg's ogg_sync_pageseek accepts it (capture pattern, complete header and body, valid CRC).
struct OggPage {
    /// Byte offset of the page in the input.
    let offset: Int64
    /// The 27-byte header plus its lacing values.
    let header: [UInt8]
    /// The first bytes of the body (up to 8).
    let bodyPrefix: [UInt8]
    /// Header plus body bytes.
    let length: Int64

    /// The stream structure version (libogg pages in only version 0).  // ref: RFC 3533 section 6
    var version: UInt8 { header[4] }
    /// Whether the first packet continues one from the previous page.
    var isContinued: Bool { header[5] & 1 != 0 }
    /// Beginning-of-stream flag.
    var isBeginning: Bool { header[5] & 2 != 0 }
    /// End-of-stream flag.
    var isEnd: Bool { header[5] & 4 != 0 }
    /// The logical stream's serial number.
    var serial: UInt32 { UInt32(header[14]) | UInt32(header[15]) << 8 | UInt32(header[16]) << 16 | UInt32(header[17]) << 24 }
    /// Packets that end on this page (lacing values below 255).
    var packetEnds: Int { header[27...].reduce(0) { $0 + ($1 < 255 ? 1 : 0) } }
    /// Offset just past the page.
    var end: Int64 { offset + length }

    /// "OggS".
    static let capture: [UInt8] = [0x4F, 0x67, 0x67, 0x53]

    /// The CRC-32 lookup table of Ogg pages (polynomial 0x04c11db7, not reflected, initial value 0).
    // ref: libogg src/framing.c crc_lookup / ogg_page_checksum_set
    static let crcTable: [UInt32] = (0..<256).map { i -> UInt32 in
        var r = UInt32(i) << 24
        for _ in 0..<8 { r = r & 0x8000_0000 != 0 ? (r << 1) ^ 0x04C1_1DB7 : r << 1 }
        return r
    }

    /// The Ogg CRC of `bytes` continued from `crc`.
    static func crc(_ bytes: [UInt8], _ crc: UInt32 = 0) -> UInt32 {
        var c = crc
        for b in bytes { c = (c << 8) ^ crcTable[Int((c >> 24) ^ UInt32(b))] }
        return c
    }

    /// The first page at or after `start` in libogg's sync order: a failed candidate (no "OggS", bad CRC) skips to
    /// the next 'O'; a candidate cut by the end of the input ends the search (libogg waits for data that never comes).
    // ref: libogg src/framing.c ogg_sync_pageseek
    static func next(in src: OggByteSource, from start: Int64) -> OggPage? {
        var p = start
        while src.count - p >= 27 {
            let head = src.bytes(at: p, count: 27)
            guard head.count == 27 else { return nil }
            if Array(head[0..<4]) == capture {
                let headerLength = 27 + Int(head[26])
                guard src.count - p >= Int64(headerLength) else { return nil }
                let header = src.bytes(at: p, count: headerLength)
                guard header.count == headerLength else { return nil }
                let bodyLength = header[27...].reduce(0) { $0 + Int($1) }
                guard src.count - p >= Int64(headerLength + bodyLength) else { return nil }
                let body = src.bytes(at: p + Int64(headerLength), count: bodyLength)
                guard body.count == bodyLength else { return nil }
                var zeroed = header
                zeroed[22..<26] = [0, 0, 0, 0]
                let stored = UInt32(header[22]) | UInt32(header[23]) << 8 | UInt32(header[24]) << 16
                    | UInt32(header[25]) << 24
                if crc(body, crc(zeroed)) == stored {
                    return OggPage(offset: p, header: header, bodyPrefix: Array(body.prefix(8)),
                                   length: Int64(headerLength + bodyLength))
                }
            }
            guard let o = nextCapitalO(in: src, after: p) else { return nil }
            p = o
        }
        return nil
    }

    /// Offset of the next byte 'O' after `p`, reading in 64 KB blocks.
    static func nextCapitalO(in src: OggByteSource, after p: Int64) -> Int64? {
        var at = p + 1
        while at < src.count {
            let block = src.bytes(at: at, count: Int(min(Int64(1 << 16), src.count - at)))
            if block.isEmpty { return nil }
            if let i = block.firstIndex(of: 0x4F) { return at + Int64(i) }
            at += Int64(block.count)
        }
        return nil
    }
}

/// Refuses, before libsndfile opens them, the Ogg inputs on which libsndfile 1.2.0 would leak (see the file comment).
/// `probe` is the vorbisfile call, replaceable in tests.
struct OggVorbisHeaderCheck {
    /// Reads the Vorbis headers of a source (vorbisfile's ov_test_callbacks + ov_clear by default).
    var probe: (OggByteSource) -> VorbisFileStatus

    /// The check with libvorbisfile.
    static let standard = OggVorbisHeaderCheck(probe: VorbisFile.testHeaders)

    /// "\x01vorbis": the identification packet's start, libsndfile's test for a Vorbis stream.
    static let vorbisMagic: [UInt8] = [1] + Array("vorbis".utf8)

    /// Throws `AudioError.brokenOggVorbisHeader` (or `.malformedFile` for Ogg behind ID3v2 tags) when libsndfile must
    /// not open `src`; returns for every input that does not start with "OggS" or "ID3".
    func check(_ src: OggByteSource, name: String) throws {
        let magic = src.bytes(at: 0, count: 4)
        if magic.starts(with: Array("ID3".utf8)) {
            let start = Self.id3End(src)
            if start > 0, src.bytes(at: start, count: 4) == OggPage.capture {
                throw AudioError.malformedFile(file: name, detail: "an Ogg stream behind an ID3v2 tag, which libsndfile does not read")
            }
            return
        }
        guard magic == OggPage.capture else { return }
        if let problem = problem(src) { throw AudioError.brokenOggVorbisHeader(file: name, detail: problem) }
    }

    /// Checks the file at `path` (opened read-only, without blocking on a FIFO); an unopenable path or a non-regular
    /// file is left to libsndfile's own error.
    func check(path: String) throws {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return }
        try check(OggByteSource(fileDescriptor: fd, size: Int64(st.st_size)), name: path)
    }

    /// Why libsndfile would leak on this Ogg input, or nil when it may read it.
    func problem(_ src: OggByteSource) -> String? {
        let status = probe(src)
        if status != .ok && status != .notVorbis { return status.problem }
        guard let first = OggPage.next(in: src, from: 0), first.isBeginning,
              first.bodyPrefix.starts(with: Self.vorbisMagic) else { return nil }  // libsndfile's reader never runs
        if status == .notVorbis {
            return "the identification header is not followed by the comment and setup headers (OV_ENOTVORBIS)"
        }
        if first.isContinued || first.packetEnds != 1 {
            return "the first page holds \(first.packetEnds) complete packet(s), not the identification header alone"
        }
        var ends = 0
        var at = first.end
        var inPacket = first.header.last == 255  // the previous page of the stream ends inside a packet
        while ends < 2, let page = OggPage.next(in: src, from: at) {
            at = page.end
            guard page.serial == first.serial else { continue }
            if page.version != 0 { return "header page at byte \(page.offset) has Ogg version \(page.version)" }
            var lacing = page.header[27...]
            if page.isContinued && !inPacket {
                // libogg drops the segments of a continued packet whose start it never saw, up to its last segment.
                // ref: libogg src/framing.c ogg_stream_pagein ("are we a 'continued packet' page?")
                lacing = lacing.firstIndex(where: { $0 < 255 }).map { lacing[($0 + 1)...] } ?? lacing[lacing.endIndex...]
            }
            ends += lacing.reduce(0) { $0 + ($1 < 255 ? 1 : 0) }
            if let last = lacing.last { inPacket = last == 255 }
            if page.isEnd && ends < 2 { return "the stream ends (end-of-stream page) before its setup header" }
        }
        return ends < 2 ? "the file ends before the comment and setup headers" : nil
    }

    /// Where libsndfile looks for a format after skipping ID3v2 tags: each tag is 10 bytes plus its syncsafe size,
    /// skipped while the skip stays inside the file.  // ref: libsndfile 1.2.0 src/id3.c id3_skip
    static func id3End(_ src: OggByteSource) -> Int64 {
        var offset: Int64 = 0
        while true {
            let h = src.bytes(at: offset, count: 10)
            guard h.count == 10, h.starts(with: Array("ID3".utf8)) else { return offset }
            let size = Int64(h[6] & 0x7F) << 21 | Int64(h[7] & 0x7F) << 14 | Int64(h[8] & 0x7F) << 7 | Int64(h[9] & 0x7F)
            guard offset + size + 10 < src.count else { return offset }
            offset += size + 10
        }
    }
}
