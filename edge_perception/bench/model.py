"""`edge-perception bench model --json`: FP32 vs INT8 latency of the shipped model.

Both models run on the same preprocessed frame at the model's input size, alternating call by
call in one run (so machine noise hits both alike); prints one JSON line with the medians and
the FP32/INT8 ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

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
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    return p


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
    models = {"fp32": fp32.module, "int8": int8.model.module}
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
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(get_args_parser().parse_args()))
