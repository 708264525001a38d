"""COCO-style detection metrics with pycocotools (mAP@0.5, mAP@0.5:0.95, per-class AP, P/R)."""

from __future__ import annotations

import contextlib
import io
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["Metrics", "coco_metrics"]


@dataclass
class Metrics:
    map50: float
    map50_95: float
    ap50_per_class: dict[str, float | None]  # None: the class has no ground truth here
    precision: float
    recall: float
    score_threshold: float
    images: int
    ground_truth: int
    pr_curve: dict[str, list[float]] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("pr_curve")
        return d


def coco_metrics(gts: list[np.ndarray], dets: list[np.ndarray], names: dict[int, str],
                 score_threshold: float, iou_match: float = 0.5) -> Metrics:
    """Evaluate per-image ground truth rows (cls, x1, y1, x2, y2) against detections
    (x1, y1, x2, y2, score, cls), all in the same pixel frame, with pycocotools COCOeval."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, results = [], [], []
    aid = 1
    for i, (g, d) in enumerate(zip(gts, dets)):
        images.append({"id": i, "width": 1, "height": 1})
        for c, x1, y1, x2, y2 in g:
            w, h = float(x2 - x1), float(y2 - y1)
            anns.append({"id": aid, "image_id": i, "category_id": int(c) + 1, "iscrowd": 0,
                         "bbox": [float(x1), float(y1), w, h], "area": w * h})
            aid += 1
        for x1, y1, x2, y2, s, c in d:
            results.append({"image_id": i, "category_id": int(c) + 1, "score": float(s),
                            "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]})
    cats = [{"id": k + 1, "name": v} for k, v in sorted(names.items())]
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns, "categories": cats}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(results) if results else None
    if dt is None:
        present = {int(a["category_id"]) - 1 for a in anns}
        return Metrics(0.0, 0.0, {v: 0.0 if k in present else None for k, v in names.items()},
                       0.0, 0.0, score_threshold, len(gts), len(anns))
    ev = COCOeval(gt, dt, "bbox")
    ev.params.maxDets = [1, 10, 100]
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec = ev.eval["precision"]  # T, R, K, A, M
    t50 = int(np.argmin(np.abs(ev.params.iouThrs - 0.5)))
    per_class, curves = {}, {}
    for k, cat in enumerate(cats):
        p = prec[t50, :, k, 0, -1]
        per_class[cat["name"]] = float(np.mean(p[p > -1])) if (p > -1).any() else None
        curves[cat["name"]] = [float(v) for v in p]
    tp, n_det = _matches(gts, dets, score_threshold, iou_match)
    n_gt = len(anns)
    return Metrics(
        map50=float(ev.stats[1]), map50_95=float(ev.stats[0]), ap50_per_class=per_class,
        precision=tp / n_det if n_det else 0.0, recall=tp / n_gt if n_gt else 0.0,
        score_threshold=score_threshold, images=len(gts), ground_truth=n_gt, pr_curve=curves)


def _matches(gts: list[np.ndarray], dets: list[np.ndarray], thr: float, iou_match: float
             ) -> tuple[int, int]:
    """Greedy same-class matching at `iou_match` of detections scoring ≥ thr: (TP, detections)."""
    tp = n = 0
    for g, d in zip(gts, dets):
        d = d[d[:, 4] >= thr] if len(d) else d
        d = d[np.argsort(-d[:, 4])] if len(d) else d
        n += len(d)
        used = np.zeros(len(g), bool)
        for x1, y1, x2, y2, _, c in d:
            if not len(g):
                break
            ix1 = np.maximum(g[:, 1], x1)
            iy1 = np.maximum(g[:, 2], y1)
            ix2 = np.minimum(g[:, 3], x2)
            iy2 = np.minimum(g[:, 4], y2)
            inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
            union = (x2 - x1) * (y2 - y1) + (g[:, 3] - g[:, 1]) * (g[:, 4] - g[:, 2]) - inter
            iou = np.where((g[:, 0] == c) & ~used, inter / np.maximum(union, 1e-9), 0.0)
            j = int(np.argmax(iou))
            if iou[j] >= iou_match:
                used[j] = True
                tp += 1
    return tp, n
