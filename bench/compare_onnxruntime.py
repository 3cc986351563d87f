"""Times ONNX Runtime (fp32 and static int8) against EarTag (float and int8) on the same mel input.

Run through `bench/compare-onnxruntime`, which provides the virtual environment. The ONNX graph is built with the
`onnx` helper API from EarTag's own float safetensors (no PyTorch); BatchNorm is folded into the convolutions in
float64, as EarTag's float engine does.
"""
import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process


def read_safetensors(path):
    """Returns (metadata dict, {name: float32 array}) of an EarTag float model file."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    meta = header.pop("__metadata__", {})
    if meta.get("format") != "eartag.float.v1":
        sys.exit(f"compare-onnxruntime: {path}: not an EarTag float model (format {meta.get('format')!r})")
    tensors = {}
    for name, t in header.items():
        if t["dtype"] != "F32":
            continue
        a, b = t["data_offsets"]
        tensors[name] = np.frombuffer(body[a:b], dtype="<f4").reshape(t["shape"]).astype(np.float32)
    return meta, tensors


class GraphBuilder:
    """Accumulates ONNX nodes and initializers for the MobileNetV3 of one EarTag float model."""

    def __init__(self, tensors, eps):
        self.t = tensors
        self.eps = eps
        self.nodes = []
        self.inits = []
        self.count = 0

    def name(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, hint, array):
        n = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), n))
        return n

    def node(self, op, inputs, hint, **attrs):
        out = self.name(hint)
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def folded(self, conv, bn, eps=None):
        """Conv weight and bias with the BatchNorm folded in (float64, then float32)."""
        # ref: EfficientAT models/mn/block_types.py ConvNormActivation: conv (no bias) then BatchNorm2d.
        eps = self.eps if eps is None else eps
        w = self.t[conv + ".weight"].astype(np.float64)
        g = self.t[bn + ".weight"].astype(np.float64)
        b = self.t[bn + ".bias"].astype(np.float64)
        m = self.t[bn + ".running_mean"].astype(np.float64)
        v = self.t[bn + ".running_var"].astype(np.float64)
        s = g / np.sqrt(v + eps)
        return (w * s.reshape(-1, 1, 1, 1)), (b - m * s)

    def act(self, x, kind):
        if kind == "RE":
            return self.node("Relu", [x], "relu")
        if kind == "HS":
            return self.node("HardSwish", [x], "hswish")
        return x

    def conv_bn(self, x, prefix, stride=1, group=1, act=None):
        w, b = self.folded(prefix + ".0", prefix + ".1")
        k = w.shape[2]
        pad = (k - 1) // 2
        y = self.node("Conv", [x, self.const("w", w), self.const("b", b)], "conv", kernel_shape=[k, k],
                      strides=[stride, stride], pads=[pad, pad, pad, pad], group=group)
        return self.act(y, act)


def build_onnx(meta, tensors):
    """The float model as an ONNX graph with input `mel` (1, 1, bins, T) and output `logits` (1, classes)."""
    arch = json.loads(meta["eartag.architecture"])
    frontend = json.loads(meta["eartag.frontend"])
    if arch.get("dilated"):
        sys.exit("compare-onnxruntime: dilated models are not supported by this script")
    if arch.get("seDims", ["c"]) not in (["c"], []):
        sys.exit("compare-onnxruntime: only channel squeeze-excitation is supported by this script")
    g = GraphBuilder(tensors, arch["batchNormEps"])
    x = g.conv_bn("mel", "features.0", stride=2, act="HS")
    for i, blk in enumerate(arch["blocks"]):
        base = f"features.{i + 1}.block"
        j = 0
        inp = x
        if blk["expandedChannels"] != blk["inputChannels"]:
            x = g.conv_bn(x, f"{base}.{j}", act=blk["activation"])
            j += 1
        x = g.conv_bn(x, f"{base}.{j}", stride=blk["stride"], group=blk["expandedChannels"], act=blk["activation"])
        j += 1
        if blk.get("seChannels"):
            # ref: EfficientAT models/mn/attention_pooling... ConcurrentSEBlock / SqueezeExcitation: mean over (F, T),
            # fc1, ReLU, fc2, sigmoid, scale.
            p = f"{base}.{j}.conc_se_layers.0"
            s = g.node("GlobalAveragePool", [x], "se_pool")
            w1 = tensors[p + ".fc1.weight"]
            w2 = tensors[p + ".fc2.weight"]
            s = g.node("Conv", [s, g.const("w", w1.reshape(*w1.shape, 1, 1)), g.const("b", tensors[p + ".fc1.bias"])],
                       "se_fc1", kernel_shape=[1, 1])
            s = g.node("Relu", [s], "se_relu")
            s = g.node("Conv", [s, g.const("w", w2.reshape(*w2.shape, 1, 1)), g.const("b", tensors[p + ".fc2.bias"])],
                       "se_fc2", kernel_shape=[1, 1])
            s = g.node("Sigmoid", [s], "se_gate")
            x = g.node("Mul", [x, s], "se_scale")
            j += 1
        x = g.conv_bn(x, f"{base}.{j}")
        if blk["stride"] == 1 and blk["inputChannels"] == blk["outputChannels"]:
            x = g.node("Add", [x, inp], "residual")
    x = g.conv_bn(x, f"features.{len(arch['blocks']) + 1}", act="HS")
    if arch["head"] == "mlp":
        x = g.node("GlobalAveragePool", [x], "pool")
        x = g.node("Flatten", [x], "flatten")
        x = g.node("Gemm", [x, g.const("w", tensors["classifier.2.weight"]), g.const("b", tensors["classifier.2.bias"])],
                   "fc_hidden", transB=1)
        x = g.node("HardSwish", [x], "hswish")
        x = g.node("Gemm", [x, g.const("w", tensors["classifier.5.weight"]), g.const("b", tensors["classifier.5.bias"])],
                   "fc_out", transB=1)
    else:
        # ref: EfficientAT models/mn/model.py fully_convolutional head: conv (no bias), BatchNorm2d (eps 1e-5), pool.
        w, b = g.folded("classifier.0", "classifier.1", eps=1e-5)
        x = g.node("Conv", [x, g.const("w", w), g.const("b", b)], "head_conv", kernel_shape=[1, 1])
        x = g.node("GlobalAveragePool", [x], "pool")
        x = g.node("Flatten", [x], "flatten")
    g.nodes.append(helper.make_node("Identity", [x], ["logits"]))
    bins = frontend["nMels"]
    graph = helper.make_graph(
        g.nodes, "eartag_mn",
        [helper.make_tensor_value_info("mel", TensorProto.FLOAT, [1, 1, bins, "T"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, arch["numClasses"]])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="eartag")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


class MelReader(CalibrationDataReader):
    """Feeds calibration mels to ONNX Runtime's quantizer, one (1, 1, bins, T) tensor at a time."""

    def __init__(self, mels):
        self.items = iter([{"mel": m[None, None].astype(np.float32)} for m in mels])

    def get_next(self):
        return next(self.items, None)


def session(path):
    """A single-threaded ONNX Runtime session with all graph optimizations."""
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def time_ort(sess, mel, runs, warmup=5):
    """Median milliseconds of one run of `sess` on `mel`."""
    feed = {"mel": mel[None, None].astype(np.float32)}
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), sess.run(None, feed)[0][0]


def time_eartag(binary, model, mel_path, frames, runs):
    """Median engine milliseconds from `eartag bench --mel` (one thread)."""
    out = subprocess.run([binary, "bench", "--model", model, "--mel", mel_path, "--frames", str(frames),
                          "--runs", str(runs), "--threads", "1", "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["engine_ms"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eartag", required=True)
    ap.add_argument("--model", required=True, help="EarTag float safetensors")
    ap.add_argument("--int8", required=True, help="EarTag int8 safetensors")
    ap.add_argument("--mel", required=True, help="timing input, .npy [bins, frames] with at least 1000 frames")
    ap.add_argument("--calibration-mels", nargs="+", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--expect-logits", help="golden logits (.npy) of --mel: check the ONNX graph reproduces them")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    meta, tensors = read_safetensors(a.model)
    fp32_path = os.path.join(a.workdir, "model.fp32.onnx")
    int8_path = os.path.join(a.workdir, "model.int8.qdq.onnx")
    prep_path = os.path.join(a.workdir, "model.fp32.prep.onnx")
    onnx.save(build_onnx(meta, tensors), fp32_path)
    # ONNX Runtime's recommended pre-processing (shape inference, graph optimization) before quantize_static.
    quant_pre_process(fp32_path, prep_path, skip_symbolic_shape=True)
    calib = [np.load(p).reshape(np.load(p).shape[-2:]) for p in a.calibration_mels]
    quantize_static(prep_path, int8_path, MelReader(calib), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    mel = np.load(a.mel)
    mel = mel.reshape(mel.shape[-2:])
    if mel.shape[1] < 1000:
        sys.exit(f"compare-onnxruntime: {a.mel}: needs at least 1000 frames, has {mel.shape[1]}")
    fp32, q8 = session(fp32_path), session(int8_path)
    check = ""
    if a.expect_logits:
        want = np.load(a.expect_logits).reshape(-1)
        got = fp32.run(None, {"mel": mel[None, None].astype(np.float32)})[0][0]
        diff = float(np.max(np.abs(got - want)))
        if not diff <= 1e-3:
            sys.exit(f"compare-onnxruntime: the ONNX graph's logits differ from {a.expect_logits} by {diff:.3g}")
        check = f"; ONNX fp32 graph matches the golden logits within {diff:.1e}"
    result = {"ort_fp32_ms": {}, "ort_int8_ms": {}, "eartag_float_ms": {}, "eartag_int8_ms": {}}
    for frames in (1000, 100):
        m = np.ascontiguousarray(mel[:, :frames])
        ms, _ = time_ort(fp32, m, a.runs)
        result["ort_fp32_ms"][str(frames)] = round(ms, 4)
        ms, _ = time_ort(q8, m, a.runs)
        result["ort_int8_ms"][str(frames)] = round(ms, 4)
        result["eartag_float_ms"][str(frames)] = time_eartag(a.eartag, a.model, a.mel, frames, a.runs)
        result["eartag_int8_ms"][str(frames)] = time_eartag(a.eartag, a.int8, a.mel, frames, a.runs)
    if a.json:
        print(json.dumps(result))
        return
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}; single thread; median of {a.runs} runs; "
          f"input {a.mel}{check}")
    print(f"{'engine':<16}{'1000 frames (10 s)':>20}{'100 frames (1 s)':>20}")
    for key, label in (("ort_fp32_ms", "ORT fp32"), ("ort_int8_ms", "ORT int8 (QDQ)"),
                       ("eartag_float_ms", "EarTag float"), ("eartag_int8_ms", "EarTag int8")):
        print(f"{label:<16}{result[key]['1000']:>17.3f} ms{result[key]['100']:>17.3f} ms")
    for key, label in (("eartag_float_ms", "EarTag float"), ("eartag_int8_ms", "EarTag int8")):
        r = [result["ort_fp32_ms"][f] / result[key][f] for f in ("1000", "100")]
        print(f"{label} speed-up over ORT fp32: {r[0]:.2f}x (10 s), {r[1]:.2f}x (1 s)")


if __name__ == "__main__":
    main()
