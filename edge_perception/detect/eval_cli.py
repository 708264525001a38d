"""`edge-perception eval`: COCO metrics of a model on any YOLO-format data.yaml split.

Runs the deployed path (fused preprocessing → model → NMS → original pixels) on every image,
scores it with pycocotools, writes a PR-curve PNG and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ..train.data import label_path, read_data_yaml, read_labels
from .detector import Detector, DetectorConfig, load_detector
from .metrics import Metrics, coco_metrics

__all__ = ["get_args_parser", "main", "evaluate", "plot_pr_curve"]


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, add_help=add_help,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None,
                   help="model file (default: the shipped INT8 model, FP32 on CUDA)")
    p.add_argument("--data", required=True, help="YOLO data.yaml (paths relative to it)")
    p.add_argument("--split", default="val")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--score-threshold", type=float, default=None,
                   help="threshold for precision/recall (default: the model's shipped one)")
    p.add_argument("--limit", type=int, default=0, help="evaluate only every k-th image so "
                   "that at most this many are used (0 = all)")
    p.add_argument("--pr-curve", default=None, help="PNG path (default: next to --output)")
    p.add_argument("--output", default="runs/eval", help="folder for the PR curve and JSON")
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    return p


def evaluate(detector: Detector, images: list[Path], names: dict[int, str],
             score_threshold: float, progress: bool = True) -> Metrics:
    """Detections at a near-zero threshold for AP; P/R at `score_threshold`."""
    from tqdm import tqdm

    gts, dets = [], []
    for p in tqdm(images, desc="eval", unit="img", disable=not progress, mininterval=5):
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot decode {p}")
        h, w = bgr.shape[:2]
        found = detector.detect(bgr, "bgr8")
        dets.append(np.array([(*d.box, d.score, d.class_id) for d in found],
                             np.float32).reshape(-1, 6))
        gts.append(read_labels(label_path(p), w, h))
    return coco_metrics(gts, dets, names, score_threshold)


def detector_for_eval(model: str | None, device: str,
                      score_threshold: float | None) -> tuple[Detector, float]:
    """The detector to evaluate (keeping every box: the threshold only sets where precision
    and recall are read) and that threshold: the given one, else the model's shipped one.
    Raises FileNotFoundError for a missing model file."""
    model_path = Path(model) if model else None
    if model_path is not None and not model_path.is_file():
        raise FileNotFoundError(f"model file not found: {model_path}")
    det = load_detector(model_path, device, DetectorConfig(score_threshold=0.001))
    thr = score_threshold
    if thr is None:
        thr = float(det.model.meta.get("score_threshold", DetectorConfig().score_threshold))
    return det, thr


def plot_pr_curve(m: Metrics, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    recall = np.linspace(0, 1, 101)
    for name, prec in m.pr_curve.items():
        ap = m.ap50_per_class[name]
        if ap is not None:  # a class with no ground truth here has no curve
            ax.plot(recall, np.clip(prec, 0, None), label=f"{name} AP50={ap:.3f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
           title=f"{title}\nmAP@0.5={m.map50:.3f}  mAP@0.5:0.95={m.map50_95:.3f}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    data = read_data_yaml(args.data)
    try:
        images = data.images(args.split)
    except (KeyError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.limit and len(images) > args.limit:
        images = images[:: -(-len(images) // args.limit)]
    try:
        det, thr = detector_for_eval(args.model, args.device, args.score_threshold)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    det.warmup()
    t0 = time.perf_counter()
    m = evaluate(det, images, data.names, thr, progress=not args.json)
    seconds = time.perf_counter() - t0
    out = Path(args.output)
    png = Path(args.pr_curve) if args.pr_curve else out / f"pr_curve_{det.model.path.stem}.png"
    plot_pr_curve(m, png, f"{det.model.path.name} on {args.split} ({m.images} images)")
    record = {"model": str(det.model.path), "sha256": det.model.sha256, "device": str(det.device),
              "data": str(args.data), "split": args.split, **m.to_json(),
              "ms_per_image": round(1000 * seconds / max(1, m.images), 2), "pr_curve": str(png)}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"metrics_{det.model.path.stem}.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(get_args_parser().parse_args()))
