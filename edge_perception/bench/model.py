"""`edge-perception bench model --json`: FP32 vs INT8 latency of the shipped model.

Both models run on the same preprocessed frame at the model's input size, alternating call by
call in one run (so machine noise hits both alike); prints one JSON line with the medians and
the FP32/INT8 ratio. Also in the alternation (unless --no-ort): the same INT8 model exported
to QDQ ONNX (`export_int8_onnx`: its own scales, no recalibration) run by onnxruntime, with its
largest output difference from PyTorch, and the peak RSS of a process that runs it with
onnxruntime alone (no torch imported).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..detect.detector import default_model_path, load_detector
from ..detect.model_io import load_model_file
from ..preprocess import Preprocessor

__all__ = ["get_args_parser", "main"]


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, add_help=add_help,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fp32", default=None, help="FP32 model (default: shipped)")
    p.add_argument("--int8", default=None, help="INT8 model (default: shipped)")
    p.add_argument("--iterations", type=int, default=60)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--no-ort", action="store_true",
                   help="skip the onnxruntime run of the exported INT8 model")
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    return p


# Peak RSS from VmHWM: ru_maxrss would carry over the forking parent's peak across exec.
_ORT_ALONE = """
import sys, numpy as np, onnxruntime as ort
so = ort.SessionOptions(); so.intra_op_num_threads = int(sys.argv[2]); so.log_severity_level = 3
s = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
x = np.zeros((1, 3, int(sys.argv[3]), int(sys.argv[4])), np.float32)
for _ in range(5):
    s.run(None, {"images": x})
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0]
print(int(hwm.split()[1]) // 1024)
"""


def _ort_int8(module: torch.nn.Module, x: torch.Tensor,
              threads: int) -> tuple[Any, dict[str, object]]:
    """An onnxruntime session of `module` exported to QDQ ONNX, and figures about it: its
    largest output difference from PyTorch on `x`, and the peak RSS of a process that runs the
    file with onnxruntime alone."""
    import onnxruntime as ort

    from ..detect.quantize import export_int8_onnx

    with tempfile.TemporaryDirectory(prefix="bench_model_") as tmp:
        path = Path(tmp) / "int8_qdq_torch.onnx"
        export_int8_onnx(module, path, x)
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = threads, 1, 3
        # idle onnxruntime workers spin by default, which took CPU from the torch calls
        # alternating with them (FP32 measured 2x slower)
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        alone = subprocess.run([sys.executable, "-c", _ORT_ALONE, str(path), str(threads),
                                str(x.shape[2]), str(x.shape[3])], capture_output=True,
                               text=True, timeout=300, check=True)
    with torch.inference_mode():
        ref = module(x)
    got = sess.run(None, {"images": x.numpy()})
    diff = max(float(np.abs(r.numpy() - o).max()) for r, o in zip(ref, got))
    return sess, {"int8_ort_max_abs_diff": round(diff, 4),
                  "int8_ort_alone_peak_rss_mb": int(alone.stdout.split()[-1])}


def main(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    fp32_path = args.fp32 or default_model_path("fp32")
    int8_path = args.int8 or default_model_path("int8")
    int8 = load_detector(int8_path, "cpu")  # sets the quantized engine for this CPU
    fp32 = load_model_file(fp32_path, torch.device("cpu"))
    spec = int8.spec
    frame = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), np.uint8)
    x, _ = Preprocessor(spec, device="cpu", threads=1)(frame, "bgr8")
    x = torch.from_numpy(x.copy())
    models: dict[str, Callable[[torch.Tensor], object]] = {
        "fp32": fp32.module, "int8": int8.model.module}
    extra: dict[str, object] = {}
    if not args.no_ort:
        sess, extra = _ort_int8(int8.model.module, x, torch.get_num_threads())
        feed = {"images": x.numpy()}
        models["int8_ort"] = lambda _x: sess.run(None, feed)
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for _ in range(args.warmup):
            for m in models.values():
                m(x)
        for _ in range(args.iterations):
            for name, m in models.items():
                t = time.perf_counter()
                m(x)
                times[name].append(1000 * (time.perf_counter() - t))
    med = {k: statistics.median(v) for k, v in times.items()}
    record = {
        "bench": "model", "input": f"{spec.input_width}x{spec.input_height}",
        "threads": torch.get_num_threads(), "iterations": args.iterations,
        "fp32_ms_median": round(med["fp32"], 2), "int8_ms_median": round(med["int8"], 2),
        "fp32_ms_p90": round(float(np.percentile(times["fp32"], 90)), 2),
        "int8_ms_p90": round(float(np.percentile(times["int8"], 90)), 2),
        "ratio_fp32_over_int8": round(med["fp32"] / med["int8"], 2),
        "engine": torch.backends.quantized.engine,
    }
    if "int8_ort" in med:
        record.update({
            "int8_ort_ms_median": round(med["int8_ort"], 2),
            "ratio_int8_over_int8_ort": round(med["int8"] / med["int8_ort"], 2), **extra})
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(get_args_parser().parse_args()))
