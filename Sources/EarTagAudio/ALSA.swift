// Thin Swift wrappers over the libasound (ALSA) calls EarTag uses: one function per C call, negative errno returns
// turned into a typed `ALSAError` carrying `snd_strerror` text.
// ref: /usr/include/alsa/*.h (alsa-lib 1.2.8) and https://www.alsa-project.org/alsa-doc/alsa-lib/
import CALSA
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An ALSA failure: which libasound call failed, the errno it returned (positive) and `snd_strerror`'s text.
public struct ALSAError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The libasound function that failed, e.g. "snd_pcm_open".
    public var function: String
    /// The positive errno value (ALSA returns `-code`).
    public var code: Int32
    /// `snd_strerror(-code)`.
    public var message: String
    /// The PCM or control device the call was about, if any.
    public var device: String?
    /// alsa-lib's own diagnostic for the failure (e.g. "Unknown PCM foo"), when the capture thread caught one.
    public var detail: String?

    /// Wraps an errno (sign ignored) returned by `function`; the message comes from `snd_strerror`.
    // ref: alsa-lib error.c snd_strerror (accepts negative or positive errno)
    public init(function: String, code: Int32, device: String? = nil, detail: String? = nil) {
        self.function = function
        self.code = code < 0 ? -code : code
        self.message = String(cString: snd_strerror(self.code))
        self.device = device
        self.detail = detail
    }

    /// One line: `<device>: <function> failed: <message> [errno N]`, plus ` (alsa-lib: <detail>)` if known.
    public var description: String {
        let prefix = device.map { "\($0): " } ?? ""
        let suffix = detail.map { " (alsa-lib: \($0))" } ?? ""
        return AudioError.oneLine("\(prefix)\(function) failed: \(message) [errno \(code)]\(suffix)")
    }
}

/// One thin wrapper per libasound call used; throwing variants for setup, plain integer returns for the capture loop.
enum ALSA {
    /// Throws `ALSAError` for a negative return code, otherwise returns it.
    @discardableResult
    static func check(_ rc: Int32, _ function: String, _ device: String? = nil) throws -> Int32 {
        if rc < 0 { throw ALSAError(function: function, code: rc, device: device) }
        return rc
    }

    /// Calls `body` with a C string that stays valid for the call.
    private static func withC<R>(_ s: String, _ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        try s.withCString(body)
    }

    // MARK: diagnostics

    /// `snd_lib_error_set_local`: routes alsa-lib's diagnostics on the calling thread only to `handler` (nil restores
    /// printing to stderr); returns the previous handler.  // ref: error.c snd_lib_error_set_local (alsa-lib >= 1.1.6)
    @discardableResult
    static func libErrorSetLocal(_ handler: snd_local_error_handler_t?) -> snd_local_error_handler_t? {
        snd_lib_error_set_local(handler)
    }

    // MARK: PCM open / close

    /// `snd_pcm_open(&pcm, name, SND_PCM_STREAM_CAPTURE, mode)`: opens a PCM by name in the global configuration.
    // ref: pcm.c snd_pcm_open
    static func pcmOpenCapture(name: String, mode: Int32 = 0) throws -> OpaquePointer {
        var pcm: OpaquePointer?
        try check(withC(name) { snd_pcm_open(&pcm, $0, SND_PCM_STREAM_CAPTURE, mode) }, "snd_pcm_open", name)
        guard let pcm else { throw ALSAError(function: "snd_pcm_open", code: EINVAL, device: name) }
        return pcm
    }

    /// `snd_pcm_open_lconf`: opens PCM `name` defined in a local configuration tree (no global config involved).
    // ref: pcm.c snd_pcm_open_lconf
    static func pcmOpenCaptureLconf(name: String, config: OpaquePointer, mode: Int32 = 0) throws -> OpaquePointer {
        var pcm: OpaquePointer?
        try check(withC(name) { snd_pcm_open_lconf(&pcm, $0, SND_PCM_STREAM_CAPTURE, mode, config) },
                  "snd_pcm_open_lconf", name)
        guard let pcm else { throw ALSAError(function: "snd_pcm_open_lconf", code: EINVAL, device: name) }
        return pcm
    }

    /// `snd_pcm_close`: closes the PCM and frees its handle.  // ref: pcm.c snd_pcm_close
    @discardableResult
    static func pcmClose(_ pcm: OpaquePointer) -> Int32 { snd_pcm_close(pcm) }

    // MARK: hw params

    /// `snd_pcm_hw_params_malloc`.  // ref: pcm.c snd_pcm_hw_params_malloc
    static func hwParamsMalloc() throws -> OpaquePointer {
        var p: OpaquePointer?
        try check(snd_pcm_hw_params_malloc(&p), "snd_pcm_hw_params_malloc")
        guard let p else { throw ALSAError(function: "snd_pcm_hw_params_malloc", code: ENOMEM) }
        return p
    }

    /// `snd_pcm_hw_params_free`.  // ref: pcm.c snd_pcm_hw_params_free
    static func hwParamsFree(_ p: OpaquePointer) { snd_pcm_hw_params_free(p) }

    /// `snd_pcm_hw_params_any`: fills `p` with the full configuration space of the PCM.  // ref: pcm.c
    static func hwParamsAny(_ pcm: OpaquePointer, _ p: OpaquePointer, device: String) throws {
        try check(snd_pcm_hw_params_any(pcm, p), "snd_pcm_hw_params_any", device)
    }

    /// `snd_pcm_hw_params_set_access`.  // ref: pcm.c snd_pcm_hw_params_set_access
    static func hwParamsSetAccess(_ pcm: OpaquePointer, _ p: OpaquePointer, _ access: snd_pcm_access_t,
                                  device: String) throws {
        try check(snd_pcm_hw_params_set_access(pcm, p, access), "snd_pcm_hw_params_set_access", device)
    }

    /// `snd_pcm_hw_params_test_format`: whether the space still contains `format`.  // ref: pcm.c
    static func hwParamsTestFormat(_ pcm: OpaquePointer, _ p: OpaquePointer, _ format: snd_pcm_format_t) -> Bool {
        snd_pcm_hw_params_test_format(pcm, p, format) == 0
    }

    /// `snd_pcm_hw_params_set_format`.  // ref: pcm.c snd_pcm_hw_params_set_format
    static func hwParamsSetFormat(_ pcm: OpaquePointer, _ p: OpaquePointer, _ format: snd_pcm_format_t,
                                  device: String) throws {
        try check(snd_pcm_hw_params_set_format(pcm, p, format), "snd_pcm_hw_params_set_format", device)
    }

    /// `snd_pcm_hw_params_test_rate(rate, dir 0)`: whether exactly `rate` Hz is possible.  // ref: pcm.c
    static func hwParamsTestRate(_ pcm: OpaquePointer, _ p: OpaquePointer, _ rate: Int) -> Bool {
        snd_pcm_hw_params_test_rate(pcm, p, UInt32(rate), 0) == 0
    }

    /// `snd_pcm_hw_params_set_rate(rate, dir 0)`: restricts to exactly `rate` Hz.  // ref: pcm.c
    static func hwParamsSetRate(_ pcm: OpaquePointer, _ p: OpaquePointer, _ rate: Int, device: String) throws {
        try check(snd_pcm_hw_params_set_rate(pcm, p, UInt32(rate), 0), "snd_pcm_hw_params_set_rate", device)
    }

    /// `snd_pcm_hw_params_set_rate_near`: restricts to the rate nearest `rate`; returns the chosen rate.  // ref: pcm.c
    static func hwParamsSetRateNear(_ pcm: OpaquePointer, _ p: OpaquePointer, _ rate: Int, device: String) throws -> Int {
        var val = UInt32(rate)
        var dir: Int32 = 0
        try check(snd_pcm_hw_params_set_rate_near(pcm, p, &val, &dir), "snd_pcm_hw_params_set_rate_near", device)
        return Int(val)
    }

    /// `snd_pcm_hw_params_set_rate_resample(0/1)`: whether alsa-lib may resample in software (plug devices).
    // ref: pcm.c snd_pcm_hw_params_set_rate_resample
    static func hwParamsSetRateResample(_ pcm: OpaquePointer, _ p: OpaquePointer, _ on: Bool, device: String) throws {
        try check(snd_pcm_hw_params_set_rate_resample(pcm, p, on ? 1 : 0), "snd_pcm_hw_params_set_rate_resample",
                  device)
    }

    /// `snd_pcm_hw_params_test_channels`: whether exactly `n` channels are possible.  // ref: pcm.c
    static func hwParamsTestChannels(_ pcm: OpaquePointer, _ p: OpaquePointer, _ n: Int) -> Bool {
        snd_pcm_hw_params_test_channels(pcm, p, UInt32(n)) == 0
    }

    /// `snd_pcm_hw_params_set_channels`.  // ref: pcm.c snd_pcm_hw_params_set_channels
    static func hwParamsSetChannels(_ pcm: OpaquePointer, _ p: OpaquePointer, _ n: Int, device: String) throws {
        try check(snd_pcm_hw_params_set_channels(pcm, p, UInt32(n)), "snd_pcm_hw_params_set_channels", device)
    }

    /// `snd_pcm_hw_params_get_channels_min`: the smallest channel count left in the space.  // ref: pcm.c
    static func hwParamsGetChannelsMin(_ p: OpaquePointer, device: String) throws -> Int {
        var val: UInt32 = 0
        try check(snd_pcm_hw_params_get_channels_min(p, &val), "snd_pcm_hw_params_get_channels_min", device)
        return Int(val)
    }

    /// `snd_pcm_hw_params_set_period_size_near`: returns the chosen period in frames.  // ref: pcm.c
    static func hwParamsSetPeriodSizeNear(_ pcm: OpaquePointer, _ p: OpaquePointer, _ frames: Int,
                                          device: String) throws -> Int {
        var val = snd_pcm_uframes_t(frames)
        var dir: Int32 = 0
        try check(snd_pcm_hw_params_set_period_size_near(pcm, p, &val, &dir),
                  "snd_pcm_hw_params_set_period_size_near", device)
        return Int(val)
    }

    /// `snd_pcm_hw_params_set_buffer_size_near`: returns the chosen buffer in frames.  // ref: pcm.c
    static func hwParamsSetBufferSizeNear(_ pcm: OpaquePointer, _ p: OpaquePointer, _ frames: Int,
                                          device: String) throws -> Int {
        var val = snd_pcm_uframes_t(frames)
        try check(snd_pcm_hw_params_set_buffer_size_near(pcm, p, &val), "snd_pcm_hw_params_set_buffer_size_near",
                  device)
        return Int(val)
    }

    /// `snd_pcm_hw_params`: installs the (now single) configuration and prepares the PCM.  // ref: pcm.c
    static func hwParamsInstall(_ pcm: OpaquePointer, _ p: OpaquePointer, device: String) throws {
        try check(snd_pcm_hw_params(pcm, p), "snd_pcm_hw_params", device)
    }

    /// `snd_pcm_hw_params_get_period_size`: the installed period in frames.  // ref: pcm.c
    static func hwParamsGetPeriodSize(_ p: OpaquePointer, device: String) throws -> Int {
        var val: snd_pcm_uframes_t = 0
        var dir: Int32 = 0
        try check(snd_pcm_hw_params_get_period_size(p, &val, &dir), "snd_pcm_hw_params_get_period_size", device)
        return Int(val)
    }

    /// `snd_pcm_hw_params_get_buffer_size`: the installed buffer in frames.  // ref: pcm.c
    static func hwParamsGetBufferSize(_ p: OpaquePointer, device: String) throws -> Int {
        var val: snd_pcm_uframes_t = 0
        try check(snd_pcm_hw_params_get_buffer_size(p, &val), "snd_pcm_hw_params_get_buffer_size", device)
        return Int(val)
    }

    // MARK: sw params

    /// `snd_pcm_sw_params_malloc`.  // ref: pcm.c snd_pcm_sw_params_malloc
    static func swParamsMalloc() throws -> OpaquePointer {
        var p: OpaquePointer?
        try check(snd_pcm_sw_params_malloc(&p), "snd_pcm_sw_params_malloc")
        guard let p else { throw ALSAError(function: "snd_pcm_sw_params_malloc", code: ENOMEM) }
        return p
    }

    /// `snd_pcm_sw_params_free`.  // ref: pcm.c snd_pcm_sw_params_free
    static func swParamsFree(_ p: OpaquePointer) { snd_pcm_sw_params_free(p) }

    /// `snd_pcm_sw_params_current`: the PCM's current software parameters.  // ref: pcm.c
    static func swParamsCurrent(_ pcm: OpaquePointer, _ p: OpaquePointer, device: String) throws {
        try check(snd_pcm_sw_params_current(pcm, p), "snd_pcm_sw_params_current", device)
    }

    /// `snd_pcm_sw_params_set_start_threshold`: frames requested before a capture stream auto-starts.  // ref: pcm.c
    static func swParamsSetStartThreshold(_ pcm: OpaquePointer, _ p: OpaquePointer, _ frames: Int,
                                          device: String) throws {
        try check(snd_pcm_sw_params_set_start_threshold(pcm, p, snd_pcm_uframes_t(frames)),
                  "snd_pcm_sw_params_set_start_threshold", device)
    }

    /// `snd_pcm_sw_params_set_avail_min`: frames available before `snd_pcm_wait` reports ready.  // ref: pcm.c
    static func swParamsSetAvailMin(_ pcm: OpaquePointer, _ p: OpaquePointer, _ frames: Int, device: String) throws {
        try check(snd_pcm_sw_params_set_avail_min(pcm, p, snd_pcm_uframes_t(frames)),
                  "snd_pcm_sw_params_set_avail_min", device)
    }

    /// `snd_pcm_sw_params`: installs the software parameters.  // ref: pcm.c snd_pcm_sw_params
    static func swParamsInstall(_ pcm: OpaquePointer, _ p: OpaquePointer, device: String) throws {
        try check(snd_pcm_sw_params(pcm, p), "snd_pcm_sw_params", device)
    }

    // MARK: streaming (no allocation, no throwing: used inside the capture loop)

    /// `snd_pcm_prepare`.  // ref: pcm.c snd_pcm_prepare
    static func pcmPrepare(_ pcm: OpaquePointer, device: String) throws {
        try check(snd_pcm_prepare(pcm), "snd_pcm_prepare", device)
    }

    /// `snd_pcm_readi`: frames read (>= 0) or a negative errno.  // ref: pcm.c snd_pcm_readi
    static func pcmReadi(_ pcm: OpaquePointer, _ buffer: UnsafeMutableRawPointer, frames: Int) -> Int {
        snd_pcm_readi(pcm, buffer, snd_pcm_uframes_t(frames))
    }

    /// `snd_pcm_recover(err, silent 1)`: re-prepares after -EPIPE, resumes after -ESTRPIPE; 0 or a negative errno.
    // ref: pcm.c snd_pcm_recover
    static func pcmRecover(_ pcm: OpaquePointer, _ err: Int32) -> Int32 { snd_pcm_recover(pcm, err, 1) }

    /// `snd_pcm_wait`: 1 when ready, 0 on timeout, a negative errno on xrun/suspend/disconnect.  // ref: pcm.c
    static func pcmWait(_ pcm: OpaquePointer, timeoutMilliseconds: Int32) -> Int32 { snd_pcm_wait(pcm, timeoutMilliseconds) }

    /// `snd_pcm_drop`: stops the stream, dropping pending frames.  // ref: pcm.c snd_pcm_drop
    @discardableResult
    static func pcmDrop(_ pcm: OpaquePointer) -> Int32 { snd_pcm_drop(pcm) }

    // MARK: local configuration

    /// `snd_config_top`: an empty configuration tree.  // ref: conf.c snd_config_top
    static func configTop() throws -> OpaquePointer {
        var c: OpaquePointer?
        try check(snd_config_top(&c), "snd_config_top")
        guard let c else { throw ALSAError(function: "snd_config_top", code: ENOMEM) }
        return c
    }

    /// `snd_config_delete`: frees a configuration tree.  // ref: conf.c snd_config_delete
    static func configDelete(_ c: OpaquePointer) { snd_config_delete(c) }

    /// `snd_input_buffer_open`: an input stream over a copy of `text`.  // ref: input.c snd_input_buffer_open
    static func inputBufferOpen(_ text: String) throws -> OpaquePointer {
        var input: OpaquePointer?
        let rc = text.withCString { snd_input_buffer_open(&input, $0, Int(strlen($0))) }
        try check(rc, "snd_input_buffer_open")
        guard let input else { throw ALSAError(function: "snd_input_buffer_open", code: ENOMEM) }
        return input
    }

    /// `snd_input_close`.  // ref: input.c snd_input_close
    static func inputClose(_ input: OpaquePointer) { snd_input_close(input) }

    /// `snd_config_load`: parses configuration text from `input` into `config`.  // ref: conf.c snd_config_load
    static func configLoad(_ config: OpaquePointer, _ input: OpaquePointer) throws {
        try check(snd_config_load(config, input), "snd_config_load")
    }

    // MARK: cards and controls (device listing)

    /// `snd_card_next`: the next card index after `card` (-1 starts), or -1 when there are no more.  // ref: control.c
    static func cardNext(_ card: Int32) throws -> Int32 {
        var c = card
        try check(snd_card_next(&c), "snd_card_next")
        return c
    }

    /// `snd_ctl_open(name, 0)`: opens a control device such as "hw:0".  // ref: control.c snd_ctl_open
    static func ctlOpen(_ name: String) throws -> OpaquePointer {
        var ctl: OpaquePointer?
        try check(withC(name) { snd_ctl_open(&ctl, $0, 0) }, "snd_ctl_open", name)
        guard let ctl else { throw ALSAError(function: "snd_ctl_open", code: EINVAL, device: name) }
        return ctl
    }

    /// `snd_ctl_close`.  // ref: control.c snd_ctl_close
    static func ctlClose(_ ctl: OpaquePointer) { snd_ctl_close(ctl) }

    /// `snd_ctl_card_info_malloc`.  // ref: control.c
    static func ctlCardInfoMalloc() throws -> OpaquePointer {
        var p: OpaquePointer?
        try check(snd_ctl_card_info_malloc(&p), "snd_ctl_card_info_malloc")
        guard let p else { throw ALSAError(function: "snd_ctl_card_info_malloc", code: ENOMEM) }
        return p
    }

    /// `snd_ctl_card_info_free`.  // ref: control.c
    static func ctlCardInfoFree(_ p: OpaquePointer) { snd_ctl_card_info_free(p) }

    /// `snd_ctl_card_info`: fills `info` for the card behind `ctl`.  // ref: control.c snd_ctl_card_info
    static func ctlCardInfo(_ ctl: OpaquePointer, _ info: OpaquePointer, device: String) throws {
        try check(snd_ctl_card_info(ctl, info), "snd_ctl_card_info", device)
    }

    /// `snd_ctl_card_info_get_id`: the card's stable id string (e.g. "Device").  // ref: control.c
    static func ctlCardInfoGetID(_ info: OpaquePointer) -> String { String(cString: snd_ctl_card_info_get_id(info)) }

    /// `snd_ctl_card_info_get_name`: the card's short name.  // ref: control.c
    static func ctlCardInfoGetName(_ info: OpaquePointer) -> String {
        String(cString: snd_ctl_card_info_get_name(info))
    }

    /// `snd_ctl_pcm_next_device`: the next PCM device number after `device` (-1 starts), -1 at the end.
    // ref: control.c snd_ctl_pcm_next_device
    static func ctlPCMNextDevice(_ ctl: OpaquePointer, _ device: Int32, name: String) throws -> Int32 {
        var d = device
        try check(snd_ctl_pcm_next_device(ctl, &d), "snd_ctl_pcm_next_device", name)
        return d
    }

    /// `snd_pcm_info_malloc`.  // ref: pcm.c snd_pcm_info_malloc
    static func pcmInfoMalloc() throws -> OpaquePointer {
        var p: OpaquePointer?
        try check(snd_pcm_info_malloc(&p), "snd_pcm_info_malloc")
        guard let p else { throw ALSAError(function: "snd_pcm_info_malloc", code: ENOMEM) }
        return p
    }

    /// `snd_pcm_info_free`.  // ref: pcm.c snd_pcm_info_free
    static func pcmInfoFree(_ p: OpaquePointer) { snd_pcm_info_free(p) }

    /// `snd_pcm_info_set_device`.  // ref: pcm.c
    static func pcmInfoSetDevice(_ p: OpaquePointer, _ device: Int32) { snd_pcm_info_set_device(p, UInt32(device)) }

    /// `snd_pcm_info_set_subdevice`.  // ref: pcm.c
    static func pcmInfoSetSubdevice(_ p: OpaquePointer, _ sub: Int32) { snd_pcm_info_set_subdevice(p, UInt32(sub)) }

    /// `snd_pcm_info_set_stream`.  // ref: pcm.c
    static func pcmInfoSetStream(_ p: OpaquePointer, _ stream: snd_pcm_stream_t) { snd_pcm_info_set_stream(p, stream) }

    /// `snd_ctl_pcm_info`: PCM info for the device/subdevice/stream set in `info`; fails (-ENOENT) if the device
    /// has no such stream.  // ref: control.c snd_ctl_pcm_info
    static func ctlPCMInfo(_ ctl: OpaquePointer, _ info: OpaquePointer, name: String) throws {
        try check(snd_ctl_pcm_info(ctl, info), "snd_ctl_pcm_info", name)
    }

    /// `snd_pcm_info_get_name`: the PCM device's name, e.g. "USB Audio".  // ref: pcm.c
    static func pcmInfoGetName(_ p: OpaquePointer) -> String { String(cString: snd_pcm_info_get_name(p)) }

    /// `snd_device_name_hint(-1, iface)`: the NULL-terminated hint array for all cards.  // ref: namehint.c
    static func deviceNameHint(iface: String) throws -> UnsafeMutablePointer<UnsafeMutableRawPointer?> {
        var hints: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
        try check(withC(iface) { snd_device_name_hint(-1, $0, &hints) }, "snd_device_name_hint")
        guard let hints else { throw ALSAError(function: "snd_device_name_hint", code: ENOMEM) }
        return hints
    }

    /// `snd_device_name_get_hint(hint, id)`: one field ("NAME", "DESC", "IOID") as a Swift string (C copy freed);
    /// nil when absent.  // ref: namehint.c snd_device_name_get_hint
    static func deviceNameGetHint(_ hint: UnsafeMutableRawPointer, _ id: String) -> String? {
        guard let c = withC(id, { snd_device_name_get_hint(hint, $0) }) else { return nil }
        defer { free(c) }
        return String(cString: c)
    }

    /// `snd_device_name_free_hint`.  // ref: namehint.c
    static func deviceNameFreeHint(_ hints: UnsafeMutablePointer<UnsafeMutableRawPointer?>) {
        snd_device_name_free_hint(hints)
    }
}
