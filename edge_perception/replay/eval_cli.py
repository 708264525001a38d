"""`edge-perception bag eval`: detector precision, recall and mAP@0.5 on a bag of images.

    edge-perception bag eval frames_bag --labels frames_labels --json
    edge-perception bag eval frames_bag --labels frames_labels --graph   # via detector_node

Frame i on the image topic (log-time order, counted from 0) is scored against
LABELS/{i:06d}.txt (YOLO rows `class cx cy w h`, normalised to that frame's size; a missing
file means a frame without hazards). By default the frames go through the library
(`Detector.detect`, the node's own pipeline) at a near-zero threshold, so mAP is the full
COCO AP; precision/recall are counted at --score-threshold (default: the model's shipped
threshold). With --graph they go through a real detector_node over DDS with the
deterministic player (every frame answered); the node reports only boxes above the
threshold, so mAP there is that of the thresholded boxes. One JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..detect.metrics import Metrics, coco_metrics
from ..train.data import read_labels
from .images import ImageFrame, image_topics, iter_images

__all__ = ["get_args_parser", "main", "frame_labels", "evaluate_frames", "label_file"]


def label_file(labels_dir: Path, index: int) -> Path:
    return Path(labels_dir) / f"{index:06d}.txt"


def frame_labels(labels_dir: Path, index: int, width: int, height: int) -> np.ndarray:
    """Rows (class, x1, y1, x2, y2) in pixels of frame `index` (empty when no file)."""
    return read_labels(label_file(labels_dir, index), width, height)


def evaluate_frames(frames: Iterable[ImageFrame], labels_dir: Path,
                    detect: Callable[[ImageFrame], np.ndarray], names: dict[int, str],
                    score_threshold: float) -> Metrics:
    """`detect(frame) -> (N, 6) x1, y1, x2, y2, score, class` on each frame, scored with
    pycocotools against the frame's label file."""
    gts, dets = [], []
    for f in frames:
        h, w = f.image.shape[:2]
        gts.append(frame_labels(labels_dir, f.index, w, h))
        dets.append(np.asarray(detect(f), np.float32).reshape(-1, 6))
    return coco_metrics(gts, dets, names, score_threshold)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help)
    p.add_argument("bag", type=Path, help="bag folder (or .mcap/.db3 file)")
    p.add_argument("--labels", type=Path, required=True,
                   help="folder of YOLO label files 000000.txt, 000001.txt, ... (frame order)")
    p.add_argument("--topic", default=None, help="image topic (default: the bag's only one)")
    p.add_argument("--model", default=None,
                   help="model file (default: the shipped INT8 model, FP32 on CUDA)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--score-threshold", type=float, default=None,
                   help="threshold for precision/recall (default: the model's shipped one)")
    p.add_argument("--graph", action="store_true",
                   help="through a real detector_node with the deterministic player")
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    return p


def _graph_detections(bag: Path, topic: str, model: str, device: str,
                      threshold: float) -> list[np.ndarray]:
    import rclpy
    from rclpy.context import Context

    from ..nodes.detector_replay import hazards_to_rows, replay_through_detector

    ctx = Context()
    rclpy.init(args=[], context=ctx)
    try:
        stats = replay_through_detector(bag, topic, {
            "model_path": model, "device": device, "score_threshold": threshold}, ctx)
    finally:
        rclpy.try_shutdown(context=ctx)
    if stats.unacknowledged or not stats.matched:
        raise RuntimeError(f"detector_node did not answer {len(stats.unacknowledged)} of "
                           f"{stats.images} frames")
    return [hazards_to_rows(m) for m in stats.answers]


def main(args: argparse.Namespace) -> int:
    from ..detect.eval_cli import detector_for_eval

    say = (lambda *_: None) if args.json else (lambda *a: print(*a, file=sys.stderr))
    if not args.labels.is_dir() or not any(args.labels.glob("*.txt")):
        print(f"error: {args.labels} has no label files", file=sys.stderr)
        return 2
    topic = args.topic
    if topic is None:
        topics = image_topics(args.bag)
        if len(topics) != 1:
            print(f"error: pick --topic among {topics}", file=sys.stderr)
            return 2
        topic = topics[0]
    try:
        det, thr = detector_for_eval(args.model, args.device, args.score_threshold)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    names = dict(enumerate(det.spec.class_names))
    t0 = time.perf_counter()
    if args.graph:
        say(f"bag eval: {topic} → detector_node ({det.model.path.name}, deterministic)")
        model_info = {"model": str(det.model.path), "sha256": det.model.sha256,
                      "device": args.device, "path": "graph"}
        rows = _graph_detections(args.bag, topic, str(det.model.path), args.device, thr)
        del det  # the node loads its own copy
        it = iter(rows)
        m = evaluate_frames(iter_images(args.bag, topic), args.labels, lambda _f: next(it),
                            names, thr)
        if len(rows) != m.images:
            raise RuntimeError(f"{len(rows)} answers for {m.images} frames")
    else:
        say(f"bag eval: {topic} → {det.model.path.name} on {det.device}")
        det.warmup()

        def detect(f: ImageFrame) -> np.ndarray:
            found = det.detect(f.image, f.encoding)
            return np.array([(*d.box, d.score, d.class_id) for d in found], np.float32)

        m = evaluate_frames(iter_images(args.bag, topic), args.labels, detect, names, thr)
        model_info = {"model": str(det.model.path), "sha256": det.model.sha256,
                      "device": str(det.device), "path": "library"}
    seconds = time.perf_counter() - t0
    extra = sorted(p.name for p in args.labels.glob("*.txt")
                   if not p.stem.isdigit() or int(p.stem) >= m.images)
    record = {"bag": str(args.bag), "topic": topic, "labels": str(args.labels), **model_info,
              "precision": m.precision, "recall": m.recall, "map50": m.map50,
              "map50_95": m.map50_95, "ap50_per_class": m.ap50_per_class,
              "score_threshold": thr, "frames": m.images, "ground_truth": m.ground_truth,
              "unused_label_files": len(extra), "seconds": round(seconds, 2)}
    print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(get_args_parser().parse_args()))
