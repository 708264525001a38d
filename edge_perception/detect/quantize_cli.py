"""`edge-perception quantize`: FP32 checkpoint → shipped models (FP32, INT8, ONNX) + manifest.

Calibrates INT8 static quantization (torch.ao FX, per-channel weights) on training images run
through the same fused preprocessing used at inference — or, with `--qat-steps N`, fine-tunes
N batches with fake quantization first (quantization-aware training) — exports ONNX (FP32, the
INT8 model with its own scales for onnxruntime, and INT8 QDQ for TensorRT) checked against
PyTorch with onnxruntime; writes SHA256SUMS.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from ..preprocess import Preprocessor
from ..train.data import DataSpec, read_data_yaml
from .model_io import file_sha256, load_model_file, save_fp32, save_torchscript
from .quantize import (default_backend, export_int8_onnx, export_onnx, quantize_fx,
                       quantize_onnx_qdq)
from .spec import ModelSpec

__all__ = ["get_args_parser", "main", "write_manifest"]


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, add_help=add_help,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="FP32 weights file (train's ema_fp32.pt)")
    p.add_argument("--data", required=True, help="YOLO data.yaml (train split calibrates)")
    p.add_argument("--out-dir", default="models")
    p.add_argument("--name", default="hazard")
    p.add_argument("--version", default="1")
    p.add_argument("--calib-images", type=int, default=600,
                   help="training images observed for PTQ (v2: 300 gave 0.596 val "
                        "mAP@0.5, 600 and 1500 0.621, before the ReLU6-aware observers)")
    p.add_argument("--backend", default="auto", help="x86, fbgemm or qnnpack (auto: by CPU)")
    p.add_argument("--float-modules", default="",
                   help="comma-separated module names kept in float (e.g. heads.0.cls)")
    p.add_argument("--score-threshold", type=float, default=0.35,
                   help="the operating threshold recorded in the model metadata")
    p.add_argument("--qat-steps", type=int, default=0,
                   help="quantization-aware fine-tuning batches (0: post-training only)")
    p.add_argument("--qat-lr", type=float, default=1e-4)
    p.add_argument("--qat-init", default="histogram", choices=("histogram", "minmax"),
                   help="QAT activation ranges: fixed at the post-training histogram "
                        "observer's choice on the calibration images, or observed during the "
                        "first half of the steps (moving-average min/max)")
    p.add_argument("--qat-batch-size", type=int, default=16)
    p.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/edge_perception"),
                   help="training image cache (QAT), as for train")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    p.add_argument("--no-onnx", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    return p


def write_manifest(out_dir: Path) -> Path:
    """SHA256SUMS in `sha256sum -c` format for every model file in out_dir."""
    lines = [f"{file_sha256(p)}  {p.name}" for p in sorted(out_dir.iterdir())
             if p.suffix in (".pt", ".ts", ".onnx")]
    path = out_dir / "SHA256SUMS"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(args: argparse.Namespace) -> int:
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    fp32 = load_model_file(args.weights, torch.device("cpu"))
    spec = fp32.spec
    backend = default_backend() if args.backend == "auto" else args.backend
    meta = {"name": args.name, "version": args.version, "score_threshold": args.score_threshold,
            "trained": dict(fp32.meta), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                  time.gmtime())}
    save_fp32(out / f"{args.name}_fp32.pt", fp32.module, spec, {**meta, "precision": "fp32"})

    data = read_data_yaml(args.data)
    train = data.images("train")
    rng = np.random.default_rng(args.seed)
    picks = rng.choice(len(train), size=min(args.calib_images, len(train)), replace=False)
    pre = Preprocessor(spec)
    calib = []
    for i in picks:
        bgr = cv2.imread(str(train[int(i)]), cv2.IMREAD_COLOR)
        x, _ = pre(bgr, "bgr8")
        calib.append(torch.from_numpy(x.copy()))
    example = calib[0]
    float_modules = tuple(m for m in args.float_modules.split(",") if m)
    t0 = time.perf_counter()
    if args.qat_steps:
        if float_modules:
            raise SystemExit("--float-modules applies to post-training quantization only")
        q = _qat(fp32.module, spec, data, calib, backend, args)
        method = {"method": "qat", "qat_steps": args.qat_steps, "qat_lr": args.qat_lr,
                  "qat_batch_size": args.qat_batch_size, "qat_init": args.qat_init,
                  "calibration_images": len(calib) if args.qat_init == "histogram" else 0,
                  "seed": args.seed}
    else:
        q = quantize_fx(fp32.module, calib, backend, example, float_modules)
        method = {"method": "ptq", "float_modules": list(float_modules),
                  "calibration_images": len(calib)}
    print(f"quantized ({backend}, {method['method']}) in {time.perf_counter() - t0:.1f} s")
    int8_meta = {**meta, "precision": "int8", "backend": backend, **method}
    save_torchscript(out / f"{args.name}_int8.ts", q, spec, int8_meta, example)
    report: dict[str, object] = {"backend": backend, "calibration_images": len(calib)}
    if not args.no_onnx:
        onnx_fp32 = out / f"{args.name}_fp32.onnx"
        export_onnx(fp32.module, onnx_fp32, example)
        quantize_onnx_qdq(onnx_fp32, out / f"{args.name}_int8_qdq.onnx",
                          [c.numpy() for c in calib[:100]])
        report["onnx_max_abs_diff"] = check_onnx(onnx_fp32, fp32.module, calib[:8])
        # the INT8 model itself for onnxruntime (no torch on the vehicle), from the saved file
        ts = torch.jit.load(str(out / f"{args.name}_int8.ts"))
        onnx_int8 = out / f"{args.name}_int8.onnx"
        export_int8_onnx(ts, onnx_int8, example, {
            "spec.json": json.dumps(spec.to_dict()),
            "meta.json": json.dumps({**int8_meta, "exported_from": f"{args.name}_int8.ts"})})
        report["onnx_int8_max_abs_diff"] = check_onnx(onnx_int8, ts, calib[:8])
    manifest = write_manifest(out)
    report["manifest"] = str(manifest)
    print(json.dumps(report))
    return 0


def _qat(module: torch.nn.Module, spec: ModelSpec, data: DataSpec, calib: list[torch.Tensor],
         backend: str, args: argparse.Namespace) -> torch.nn.Module:
    """Quantization-aware fine-tuning on augmented training batches (as `train` makes them),
    activation ranges from the histogram observer on `calib` unless --qat-init minmax."""
    from ..train.data import Augmenter, ImageCache
    from ..train.engine import batches
    from ..train.loss import DetectionLoss
    from ..train.qat import histogram_ranges, qat_finetune

    example = calib[0]
    ranges = (histogram_ranges(module, example, backend, calib)
              if args.qat_init == "histogram" else None)

    torch.manual_seed(args.seed)
    cache = ImageCache(data.images("train"), 416, Path(args.cache_dir))
    aug = Augmenter(cache, spec.input_width, spec.input_height, spec.pad)
    # A seed/epoch pair the float training did not use, so these are fresh canvases.
    stream = batches(aug, len(cache), args.qat_batch_size, args.seed + 1000, 0, spec)
    return qat_finetune(module, example, backend, stream, args.qat_steps,
                        DetectionLoss(spec.strides, len(spec.class_names)), lr=args.qat_lr,
                        activation_ranges=ranges)


def check_onnx(path: Path, module: torch.nn.Module, inputs: list[torch.Tensor]) -> float:
    """Largest |onnxruntime - PyTorch| over all outputs of `inputs`."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    with torch.inference_mode():
        for x in inputs:
            ref = module(x)
            got = sess.run(None, {"images": x.numpy()})
            worst = max(worst, *(float(np.abs(r.numpy() - g).max()) for r, g in zip(ref, got)))
    return worst


if __name__ == "__main__":
    raise SystemExit(main(get_args_parser().parse_args()))
