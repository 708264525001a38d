"""`edge-perception bench preprocess`: the fused Numba path against the OpenCV path.

Times both on synthetic camera frames (bgr8 → the model input), alternating them in one run so
that background load hits both alike, and measures the Numba JIT cost: compiling from scratch
and loading from the cache, each in a fresh process with a private cache directory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

__all__ = ["get_args_parser", "main", "measure_jit"]

_JIT_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from edge_perception.detect.spec import ModelSpec
from edge_perception.preprocess import Preprocessor
p = Preprocessor(ModelSpec(), device=sys.argv[1])
img = np.zeros((1080, 1920, 3), np.uint8)
t1 = time.perf_counter()
p(img, "bgr8")
t2 = time.perf_counter()
p.warmup()
t3 = time.perf_counter()
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "first_call_ms": (t2 - t1) * 1e3,
                  "all_encodings_ms": (t3 - t1) * 1e3}))
"""


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, add_help=add_help)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="where the fused kernel runs")
    parser.add_argument("--sizes", default="1920x1080,1280x720",
                        help="comma-separated WIDTHxHEIGHT source frames (bgr8)")
    parser.add_argument("--iters", type=int, default=60, help="timed frames per path and size")
    parser.add_argument("--warmup-iters", type=int, default=5, help="untimed frames first")
    parser.add_argument("--threading-layer", default="default",
                        choices=("default", "omp", "workqueue", "tbb"),
                        help="Numba threading layer for the fused CPU kernel")
    parser.add_argument("--no-jit", action="store_true",
                        help="skip the JIT measurement (two fresh processes)")
    return parser


def _frame(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A camera-like frame: smooth gradients with texture, bgr8."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), np.uint8)
    img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(-12, 13, img.shape, np.int16)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def _time_alternating(paths: dict[str, Any], iters: int, warmup: int) -> dict[str, list[float]]:
    """Run every path once per round, rotating the order each round; seconds per call."""
    names = list(paths)
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(warmup + iters):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            paths[name]()
            dt = time.perf_counter() - t0
            if i >= warmup:
                times[name].append(dt)
    return times


def measure_jit(device: str = "cpu") -> dict[str, float]:
    """Cold compile and cached load of the kernels, each in a fresh process (own cache dir)."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for phase in ("cold", "cached"):
            proc = subprocess.run([sys.executable, "-c", _JIT_SCRIPT, device], env=env,
                                  capture_output=True, text=True, timeout=600, check=True)
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            for key, val in res.items():
                out[f"{phase}_{key}"] = round(float(val), 1)
    return out


def _threading_layer() -> str | None:
    import numba

    try:
        return str(numba.threading_layer())
    except ValueError:  # no parallel kernel ran in this process
        return None


def main(args: argparse.Namespace) -> int:
    import cv2
    import numba
    from tqdm import tqdm

    from ..detect.spec import ModelSpec
    from ..preprocess import Preprocessor
    from ..preprocess.reference import preprocess_cv2

    if args.threading_layer != "default":  # before the first parallel kernel runs
        numba.config.THREADING_LAYER = args.threading_layer
    spec = ModelSpec()
    load_before = os.getloadavg()
    fused = Preprocessor(spec, device=args.device)
    fused.warmup()
    paths_of: dict[str, Any] = {}
    if args.device == "cpu":
        single = Preprocessor(spec, threads=1)
        single.warmup()
    else:
        from numba import cuda
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",") if s]
    results: dict[str, Any] = {}
    for w, h in tqdm(sizes, desc="bench preprocess", unit="size", disable=None,
                     file=sys.stderr):
        img = _frame(w, h)

        def run_fused(img: np.ndarray = img) -> None:
            fused(img, "bgr8")
            if args.device == "cuda":
                cuda.synchronize()

        paths_of = {"fused": run_fused, "opencv": lambda img=img: preprocess_cv2(
            img, "bgr8", spec.input_width, spec.input_height, spec.pad, spec.mean, spec.std)}
        if args.device == "cpu":
            paths_of["fused_1thread"] = lambda img=img: single(img, "bgr8")
        times = _time_alternating(paths_of, args.iters, args.warmup_iters)
        med = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
        row: dict[str, float] = {f"{k}_ms": round(v, 3) for k, v in med.items()}
        row.update({f"{k}_min_ms": round(min(v) * 1e3, 3) for k, v in times.items()})
        row["ratio_opencv_over_fused"] = round(med["opencv"] / med["fused"], 2)
        if "fused_1thread" in med:
            row["ratio_opencv_over_fused_1thread"] = round(med["opencv"] / med["fused_1thread"],
                                                           2)
        results[f"{w}x{h}"] = row
    report: dict[str, Any] = {
        "bench": "preprocess",
        "device": args.device,
        "input": f"bgr8 → {spec.input_width}x{spec.input_height} float32 CHW",
        "opencv_path": "cv2.resize INTER_LINEAR + copyMakeBorder + cvtColor + numpy "
                       "normalise + HWC→CHW",
        "sizes": results,
        "jit_ms": None if args.no_jit else measure_jit(args.device),
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": _threading_layer(),
        "opencv_threads": cv2.getNumThreads(),
        "cpu_count": os.cpu_count(),
        "loadavg_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "args": vars(args),
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        for size, row in results.items():
            print(f"{size}: " + ", ".join(f"{k}={v}" for k, v in row.items()))
        print(f"JIT (ms): {report['jit_ms']}")
        print(f"load average before/after: {report['loadavg_1min_before_after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(get_args_parser().parse_args()))
