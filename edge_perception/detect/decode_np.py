"""`decode.postprocess` in NumPy, for the onnxruntime detector (no torch in the process).

Same steps and order: sigmoid scores, enabled-class mask, log-distance decoding (clamped at
`decode._MAX_LOG`), score threshold, top-k by score, class-wise greedy NMS that drops a box
whose IoU with a higher-scored box of its class exceeds the threshold
(`torchvision.ops.batched_nms`' rule; a test checks the two agree), then `max_det`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["postprocess_np", "batched_nms_np"]

_MAX_LOG = 6.0  # as decode._MAX_LOG


def _grid(sizes: list[tuple[int, int]], strides: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    pts, strs = [], []
    for (h, w), s in zip(sizes, strides):
        ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        pts.append((np.stack([xs.reshape(-1), ys.reshape(-1)], 1).astype(np.float32) + 0.5) * s)
        strs.append(np.full(h * w, float(s), np.float32))
    return np.concatenate(pts), np.concatenate(strs)


def batched_nms_np(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                   iou_threshold: float) -> np.ndarray:
    """Indices of the kept boxes (x1y1x2y2), highest score first; boxes only suppress boxes
    of their own label."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    alive = np.ones(len(boxes), bool)
    keep = []
    for i in order:
        if not alive[i]:
            continue
        keep.append(i)
        w = np.clip(np.minimum(x2[i], x2) - np.maximum(x1[i], x1), 0, None)
        h = np.clip(np.minimum(y2[i], y2) - np.maximum(y1[i], y1), 0, None)
        inter = w * h
        iou = inter / (areas[i] + areas - inter)
        alive &= ~((labels == labels[i]) & (iou > iou_threshold))
    return np.asarray(keep, np.int64)


def postprocess_np(outputs: Sequence[np.ndarray], strides: Sequence[int], score_thresh: float,
                   iou_thresh: float, max_det: int = 100, pre_nms_topk: int = 1000,
                   classes: Sequence[int] | None = None
                   ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Raw head outputs (cls [B,C,H,W], box [B,4,H,W] per level) → per image boxes
    (x1y1x2y2, input pixels), scores and labels after class-wise NMS."""
    cls_l, box_l = outputs[0::2], outputs[1::2]
    n_img, n_cls = cls_l[0].shape[:2]
    cls = np.concatenate([c.reshape(n_img, n_cls, -1) for c in cls_l], 2).transpose(0, 2, 1)
    box = np.concatenate([b.reshape(n_img, 4, -1) for b in box_l], 2).transpose(0, 2, 1)
    points, strs = _grid([(c.shape[2], c.shape[3]) for c in cls_l], strides)
    scores_all = 1.0 / (1.0 + np.exp(-cls.astype(np.float32)))
    if classes is not None:
        mask = np.zeros(n_cls, np.float32)
        mask[list(classes)] = 1.0
        scores_all = scores_all * mask
    d = np.exp(np.minimum(box.astype(np.float32), _MAX_LOG)) * strs[:, None]
    boxes_all = np.concatenate([points - d[..., :2], points + d[..., 2:]], -1)
    results = []
    for scores, boxes in zip(scores_all, boxes_all):
        flat = scores.reshape(-1)
        idx = np.flatnonzero(flat > score_thresh)
        if idx.size > pre_nms_topk:
            idx = idx[np.argsort(-flat[idx], kind="stable")[:pre_nms_topk]]
        loc, labels = idx // n_cls, idx % n_cls
        b, s = boxes[loc], flat[idx]
        kept = batched_nms_np(b, s, labels, iou_thresh)[:max_det]
        results.append((b[kept], s[kept], labels[kept]))
    return results
