// Capture device listing: hardware PCMs by stable card id, plus the capture-capable PCM name hints (e.g. `default`).
// ref: alsa-lib control.h (snd_card_next, snd_ctl_card_info, snd_ctl_pcm_next_device, snd_ctl_pcm_info),
//      namehint.c (snd_device_name_hint), https://www.alsa-project.org/alsa-doc/alsa-lib/group___control.html
import CALSA

/// A PCM a capture can be opened with: `name` is accepted by `snd_pcm_open`, `description` is for people.
public struct CaptureDevice: Sendable, Equatable, CustomStringConvertible {
    /// The PCM name, e.g. `hw:CARD=Device,DEV=0` or `default`.
    public var name: String
    /// A one-line human description, e.g. "USB PnP Sound Device: USB Audio".
    public var description: String
    /// Whether this is a hardware device found by walking the cards (false: a configuration hint).
    public var isHardware: Bool

    /// Memberwise initialiser.
    public init(name: String, description: String, isHardware: Bool) {
        self.name = name
        self.description = description
        self.isHardware = isHardware
    }
}

/// Lists hardware capture PCMs (`hw:CARD=<id>,DEV=<n>`, stable across card renumbering) and the capture-capable PCM
/// hints of the ALSA configuration; with no sound card it returns the hints only. Cards that fail to answer are skipped.
public func listCaptureDevices() throws -> [CaptureDevice] {
    var out = hardwareCaptureDevices()
    let seen = Set(out.map(\.name))
    for hint in try captureHints() where !seen.contains(hint.name) {
        out.append(hint)
    }
    return out
}

/// Walks every card's control interface and keeps the PCM devices that have a capture stream.
func hardwareCaptureDevices() -> [CaptureDevice] {
    var out: [CaptureDevice] = []
    guard let info = try? ALSA.pcmInfoMalloc() else { return out }
    defer { ALSA.pcmInfoFree(info) }
    guard let cardInfo = try? ALSA.ctlCardInfoMalloc() else { return out }
    defer { ALSA.ctlCardInfoFree(cardInfo) }
    var card: Int32 = -1
    while true {
        guard let next = try? ALSA.cardNext(card), next >= 0 else { break }
        card = next
        let ctlName = "hw:\(card)"
        guard let ctl = try? ALSA.ctlOpen(ctlName) else { continue }
        defer { ALSA.ctlClose(ctl) }
        guard (try? ALSA.ctlCardInfo(ctl, cardInfo, device: ctlName)) != nil else { continue }
        let cardID = ALSA.ctlCardInfoGetID(cardInfo)
        let cardName = ALSA.ctlCardInfoGetName(cardInfo)
        var device: Int32 = -1
        while true {
            guard let d = try? ALSA.ctlPCMNextDevice(ctl, device, name: ctlName), d >= 0 else { break }
            device = d
            ALSA.pcmInfoSetDevice(info, device)
            ALSA.pcmInfoSetSubdevice(info, 0)
            ALSA.pcmInfoSetStream(info, SND_PCM_STREAM_CAPTURE)
            // -ENOENT: this PCM device is playback-only.
            guard (try? ALSA.ctlPCMInfo(ctl, info, name: ctlName)) != nil else { continue }
            let pcmName = ALSA.pcmInfoGetName(info)
            out.append(CaptureDevice(name: "hw:CARD=\(cardID),DEV=\(device)",
                                     description: AudioError.oneLine("\(cardName): \(pcmName)"), isHardware: true))
        }
    }
    return out
}

/// The "pcm" name hints whose IOID is not "Output" (absent IOID means both directions).
func captureHints() throws -> [CaptureDevice] {
    let hints = try ALSA.deviceNameHint(iface: "pcm")
    defer { ALSA.deviceNameFreeHint(hints) }
    var out: [CaptureDevice] = []
    var i = 0
    while let hint = hints[i] {
        i += 1
        guard let name = ALSA.deviceNameGetHint(hint, "NAME") else { continue }
        if ALSA.deviceNameGetHint(hint, "IOID") == "Output" { continue }
        let desc = ALSA.deviceNameGetHint(hint, "DESC") ?? name
        out.append(CaptureDevice(name: name, description: AudioError.oneLine(desc), isHardware: false))
    }
    return out
}
