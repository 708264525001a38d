"""Turn raw head outputs into boxes: grid points, distance decoding, score filter and NMS."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import batched_nms

__all__ = ["grid_points", "flatten_outputs", "decode_boxes", "postprocess"]

# Box distances are predicted as log(d / stride); clamp before exp so a wild output stays finite.
_MAX_LOG = 6.0


def grid_points(sizes: list[tuple[int, int]], strides: tuple[int, ...],
                device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Centres (N,2) in input pixels and the stride (N,) of every location, level by level."""
    pts, strs = [], []
    for (h, w), s in zip(sizes, strides):
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                                indexing="ij")
        p = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1).float().add_(0.5).mul_(s)
        pts.append(p)
        strs.append(torch.full((h * w,), float(s), device=device))
    return torch.cat(pts), torch.cat(strs)


def flatten_outputs(outputs: Sequence[torch.Tensor]
                    ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
    """Network outputs (cls [B,C,H,W], box [B,4,H,W], ... per level) → logits [B,N,C],
    log-distances [B,N,4] and the (H, W) of each level."""
    outputs = list(zip(outputs[0::2], outputs[1::2]))
    cls = torch.cat([c.flatten(2) for c, _ in outputs], 2).transpose(1, 2)
    box = torch.cat([b.flatten(2) for _, b in outputs], 2).transpose(1, 2)
    sizes = [(c.shape[2], c.shape[3]) for c, _ in outputs]
    return cls, box, sizes


def decode_boxes(box_raw: torch.Tensor, points: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """Log-distances [..., N, 4] (l, t, r, b) → boxes x1y1x2y2 in input pixels."""
    d = box_raw.clamp(max=_MAX_LOG).exp() * strides[:, None]
    return torch.cat([points - d[..., :2], points + d[..., 2:]], -1)


def distances_to_log(boxes: torch.Tensor, points: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """Inverse of decode_boxes for training targets (clamped at a small positive distance)."""
    d = torch.cat([points - boxes[..., :2], boxes[..., 2:] - points], -1).clamp(min=0.05 * strides[:, None])
    return (d / strides[:, None]).log()


@torch.inference_mode()
def postprocess(outputs: Sequence[torch.Tensor], strides: tuple[int, ...],
                score_thresh: float, iou_thresh: float, max_det: int = 100,
                pre_nms_topk: int = 1000, classes: Sequence[int] | None = None
                ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Boxes (x1y1x2y2, input pixels), scores and labels per image, after class-wise NMS.
    `classes` keeps only those class ids (before NMS and the top-k, so they cannot be crowded
    out by disabled ones)."""
    cls, box, sizes = flatten_outputs(outputs)
    points, strs = grid_points(sizes, strides, cls.device)
    scores_all = torch.sigmoid(cls.float())
    if classes is not None:
        keep_cls = torch.zeros(scores_all.shape[-1], dtype=torch.bool, device=cls.device)
        keep_cls[list(classes)] = True
        scores_all = scores_all * keep_cls
    boxes_all = decode_boxes(box.float(), points, strs)
    results = []
    for scores, boxes in zip(scores_all, boxes_all):
        flat = scores.flatten()
        keep = flat > score_thresh
        idx = keep.nonzero().squeeze(1)
        if idx.numel() > pre_nms_topk:
            idx = idx[flat[idx].topk(pre_nms_topk).indices]
        n_cls = scores.shape[1]
        loc, labels = idx // n_cls, idx % n_cls
        b, s = boxes[loc], flat[idx]
        kept = batched_nms(b, s, labels, iou_thresh)[:max_det]
        results.append((b[kept], s[kept], labels[kept]))
    return results
