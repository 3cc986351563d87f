#!/usr/bin/env python3
"""Writes the synthetic seed corpora under Fuzz/corpus/<target>/ (nothing here comes from a real checkpoint)."""
import json, os, struct, zipfile, io

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus")

def put(target, name, data):
    d = os.path.join(ROOT, target); os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f: f.write(data if isinstance(data, bytes) else data.encode())

def s(text):  # SHORT_BINUNICODE
    b = text.encode(); return b"\x8c" + bytes([len(b)]) + b

def glob(mod, name): return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"

def i1(v): return b"K" + bytes([v])

def tensor(key, storage, numel, offset, shape, stride, param=False):
    p = glob("torch._utils", "_rebuild_tensor_v2") + b"("
    p += b"(" + s("storage") + glob("torch", storage) + s(key) + s("cpu") + i1(numel) + b"tQ"
    p += i1(offset) + b"(" + b"".join(i1(x) for x in shape) + b"t" + b"(" + b"".join(i1(x) for x in stride) + b"t"
    p += b"\x89" + glob("collections", "OrderedDict") + b")R" + b"tR"
    if param:
        p = glob("torch._utils", "_rebuild_parameter") + b"(" + p + b"\x88" + glob("collections", "OrderedDict") + b")R" + b"tR"
    return p

def state_dict(entries, wrap=None):
    p = b"\x80\x02" + glob("collections", "OrderedDict") + b")R" + b"q\x00("
    for name, t in entries: p += s(name) + t
    p += b"u"
    if wrap: p = b"\x80\x02}(" + s(wrap) + p[2:] + b"u"
    return p + b"."

def checkpoint(pickle, storages, top="archive"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        def w(name, data): z.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
        w(f"{top}/data.pkl", pickle)
        for k, v in storages.items(): w(f"{top}/data/{k}", v)
        w(f"{top}/version", b"3\n")
    return buf.getvalue()

f32 = lambda *v: struct.pack(f"<{len(v)}f", *v)
one = state_dict([("conv.weight", tensor("0", "FloatStorage", 4, 0, [2, 2], [2, 1])),
                  ("bn.num_batches_tracked", tensor("1", "LongStorage", 1, 0, [], []))])
put("pickle", "state_dict.pkl", one)
put("checkpoint", "tiny.pt", checkpoint(one, {"0": f32(1, 2, 3, 4), "1": struct.pack("<q", 7)}))
two = state_dict([("a", tensor("0", "HalfStorage", 6, 1, [2, 2], [1, 2], param=True)),
                  ("module.b", tensor("1", "DoubleStorage", 2, 0, [2], [1]))], wrap="state_dict")
put("pickle", "wrapped.pkl", two)
put("checkpoint", "half_double.pt", checkpoint(two, {"0": struct.pack("<6e", 1, 2, 3, 4, 5, 6),
                                                    "1": struct.pack("<2d", 0.5, -1)}))
bf = state_dict([("module.x", tensor("k", "BFloat16Storage", 3, 0, [3, 1], [1, 0]))])
put("checkpoint", "bf16_stride0.pt", checkpoint(bf, {"k": b"\x80\x3f\x00\x40\x40\x40"}, top="m"))
put("pickle", "bf16.pkl", bf)
put("checkpoint", "short_storage.pt", checkpoint(one, {"0": f32(1, 2), "1": b""}))
put("checkpoint", "forbidden_global.pt", checkpoint(b"\x80\x02" + glob("os", "system") + b".", {}))

def safetensors(tensors, metadata=None):
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None: header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data

arch = {"family": "mn", "widthMult": 0.4}
put("safetensors", "plain.safetensors", safetensors({"w": ("F32", [2, 2], f32(1, 2, 3, 4)),
                                                     "i": ("I8", [3], b"\x01\xff\x02")}))
put("safetensors", "float_meta.safetensors", safetensors({"w": ("F32", [1], f32(1))},
    {"format": "eartag.float.v1", "eartag.name": "x", "eartag.architecture": json.dumps(arch),
     "eartag.frontend": "{}", "eartag.labels": "[]"}))
put("safetensors", "int8_meta.safetensors", safetensors({"q": ("I8", [2], b"\x01\x02"),
                                                          "b": ("I32", [1], struct.pack("<i", -5))},
    {"format": "eartag.int8.v1", "eartag.name": "x", "eartag.architecture": json.dumps(arch),
     "eartag.frontend": "{}", "eartag.labels": "[]"}))
put("safetensors", "empty.safetensors", safetensors({}))

def npy(descr, shape, raw, major=1):
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    h = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}".encode()
    h += b" " * ((64 - (10 + len(h) + 1) % 64) % 64) + b"\n"
    n = struct.pack("<H", len(h)) if major == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([major, 0]) + n + h + raw
put("npy", "f4.npy", npy("<f4", [2, 3], f32(*range(6))))
put("npy", "f8_v2.npy", npy("<f8", [2], struct.pack("<2d", 1, 2), major=2))
put("npy", "i4.npy", npy("<i4", [], struct.pack("<i", 3)))
put("npy", "i8_empty.npy", npy("<i8", [0, 5], b""))

put("labels", "labels.csv", 'index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/0bt9lr,Dog\n2,/m/x,"Say ""hi"", then"\r\n')
put("labels", "thresholds.csv", "# label,on,off\nClass 0,0.4\n\"Class 1\",0.5,0.3\n/m/2,0.9,0.1\n\n")
put("labels", "bom_thresholds.csv", "\ufeffClass 3,0.2\r\n")

put("listen_config", "full.toml", """# comment
[source]
device = "hw:CARD=USB,DEV=0"
stdin = false
file = ""
rate = 48000
channels = 2
sample_format = "s32le"

[model]
path = "models/mn04.safetensors"
threads = 2

[window]
length = 5
hop = 0.5
min_dbfs = -60

[events]
threshold = 0.4
off_threshold = 0.25
confirm = "3/4"
hold = 1.5
cooldown = 2
labels = ["Class 0", "/m/1"]
exclude = ["Class 2"]
thresholds_file = "thresholds.csv"

[output]
format = "jsonl"
windows = true
top = 3
""")
put("listen_config", "small.toml", '[source]\nstdin = true\nrate = 16000\n[output]\nformat = "text"\n')
put("listen_config", "bad.toml", '[source]\nrate = "fast"\n[nope]\n')

def wav(fmt_tag, channels, rate, bits, frames_raw, extensible=False, data_size=None, extra=b""):
    block = channels * bits // 8
    if extensible:
        sub = struct.pack("<H", fmt_tag) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * block, block, bits) + struct.pack("<HHI", 22, bits, 0) + sub
    else:
        fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    size = len(frames_raw) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra + b"data" + struct.pack("<I", size) + frames_raw
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + body

# First byte: rate (bits 0-1), channels-1 (bits 2-3), sample format (bits 4-6); second: chunk, no-WAV flag, block.
put("pcm_stream", "wav_s16_mono", b"\x10\x07" + wav(1, 1, 16000, 16, struct.pack("<8h", 0, 1000, -1000, 32767, -32768, 5, 6, 7)))
put("pcm_stream", "wav_f32_stereo", b"\x00\x20" + wav(3, 2, 48000, 32, f32(0.5, -0.5, 1, -1)))
put("pcm_stream", "wav_ext_s24", b"\x00\x03" + wav(1, 2, 44100, 24, bytes(range(12)), extensible=True, extra=b"LIST\x04\x00\x00\x00abcd"))
put("pcm_stream", "wav_u8_trailer", b"\x00\x3f" + wav(1, 1, 8000, 8, b"\x80\x81\x7f\x00", data_size=4) + b"LIST\x02\x00\x00\x00xy")
put("pcm_stream", "rf64_huge_size", b"\x00\x10" + wav(1, 1, 32000, 16, b"\x01\x00\x02\x00", data_size=0xFFFFFFFF).replace(b"RIFF", b"RF64", 1))
put("pcm_stream", "raw_s16", b"\x11\x41" + struct.pack("<6h", 1, 2, 3, -4, -5, 6))
put("pcm_stream", "raw_f64_stereo", b"\x54\xc1" + struct.pack("<4d", 0.1, 0.2, -0.3, 1e300))
put("pcm_stream", "raw_s24_odd", b"\x28\x42" + bytes(range(11)))

# Teacher store (eartag-train teach): index.csv, skipped.csv, a logits matrix in float32 and float16, and
# EfficientAT's pickled fname -> row dict (protocol 4, as Python 3.8+ pickle.dump writes it).
put("teacher_store", "index.csv", "row,file,duration\n0,a.wav,10.0\n1,\"b, c.wav\",2.5\n2,mix/d.wav,\n")
put("teacher_store", "skipped.csv", "file,reason\nbroken.ogg,\"broken.ogg: not a recognised audio format\"\n")
def npy_matrix(descr, rows, cols, data):
    h = ("{'descr': '%s', 'fortran_order': False, 'shape': (%d, %d), }" % (descr, rows, cols)).encode()
    h += b" " * ((64 - (10 + len(h) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + data
put("teacher_store", "logits.npy", npy_matrix("<f4", 3, 2, struct.pack("<6f", 0, 1, 2, 3, -4, 5.5)))
put("teacher_store", "logits_f2.npy", npy_matrix("<f2", 2, 2, struct.pack("<4e", 1, -2, 0.5, 65504)))
import pickle
put("teacher_store", "fname_to_index.pkl", pickle.dumps({"a.wav": 0, "b.wav": 1, "Y-0Bdfz.wav": 2}, protocol=4))

# Regressions: inputs that crashed or over-allocated before their fix (Fuzz/regressions/<target>/).
REG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "regressions")
def reg(target, name, data):
    d = os.path.join(REG, target); os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f: f.write(data)

def long8(v): return b"\x8a\x08" + struct.pack("<q", v)
def tensor_raw(key, numel, offset_op, shape_ops, stride_ops):
    p = glob("torch._utils", "_rebuild_tensor_v2") + b"("
    p += b"(" + s("storage") + glob("torch", "FloatStorage") + s(key) + s("cpu") + i1(numel) + b"tQ"
    p += offset_op + b"(" + shape_ops + b"t(" + stride_ops + b"t" + b"\x89" + glob("collections", "OrderedDict") + b")R" + b"tR"
    return p
# A one-element storage viewed as 2^30 elements through a zero stride: 4 GiB of floats were allocated.
reg("checkpoint", "zero_stride_huge.pt", checkpoint(state_dict([("w", tensor_raw("0", 1, i1(0), long8(1 << 30), i1(0)))]),
                                                    {"0": f32(1)}))
# Storage offset Int.max: offset + 1 trapped on overflow.
reg("checkpoint", "offset_overflow.pt", checkpoint(state_dict([("w", tensor_raw("0", 1, long8(2**63 - 1), i1(1), i1(1)))]),
                                                   {"0": f32(1)}))
# 200 000 nested 1-tuples: freeing them recursed once per level and overflowed the stack.
reg("pickle", "deep_tuple_nesting.pkl", b"N" + b"\x85" * 200000 + b".")
# A list appended to itself (a reference cycle: leaked) and a dict changed after being nested.
reg("pickle", "list_cycle.pkl", b"\x80\x02]q\x00h\x00a.")
reg("pickle", "nested_then_changed.pkl", b"\x80\x02}q\x00]h\x00a0h\x00K\x01K\x02s.")
