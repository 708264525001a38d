"""Training targets and loss: ATSS assignment, quality focal loss, GIoU box loss (as in GFL)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F
from torchvision.ops import box_iou, generalized_box_iou_loss

from ..detect.decode import decode_boxes, flatten_outputs, grid_points

__all__ = ["atss_assign", "DetectionLoss"]


def atss_assign(points: torch.Tensor, strides: torch.Tensor, level_sizes: list[int],
                gt: torch.Tensor, topk: int = 9, anchor_scale: float = 8.0) -> torch.Tensor:
    """Index of the assigned ground-truth box for each location, -1 for background.

    ATSS: per level, the `topk` locations nearest each box centre are candidates; a candidate is
    positive if its square anchor's IoU with the box is at least mean + std of the candidates'
    IoUs and its centre lies inside the box.  Ties go to the box with the higher IoU.
    """
    n, m = points.shape[0], gt.shape[0]
    assigned = torch.full((n,), -1, dtype=torch.long, device=points.device)
    if m == 0:
        return assigned
    half = strides[:, None] * anchor_scale / 2
    anchors = torch.cat([points - half, points + half], 1)
    ious = box_iou(anchors, gt)  # N, M
    centres = (gt[:, :2] + gt[:, 2:]) / 2
    dist = torch.cdist(points, centres)  # N, M
    cand = []
    start = 0
    for size in level_sizes:
        k = min(topk, size)
        cand.append(dist[start:start + size].topk(k, dim=0, largest=False).indices + start)
        start += size
    cand_idx = torch.cat(cand, 0)  # K, M
    cand_iou = ious.gather(0, cand_idx)
    thr = cand_iou.mean(0) + cand_iou.std(0)
    cp = points[cand_idx]  # K, M, 2
    inside = (cp[..., 0] > gt[:, 0]) & (cp[..., 0] < gt[:, 2]) & (cp[..., 1] > gt[:, 1]) \
        & (cp[..., 1] < gt[:, 3])
    pos = (cand_iou >= thr) & inside
    # Small boxes may have no candidate centre inside: keep their best-IoU candidate.
    none = ~pos.any(0)
    if none.any():
        best = cand_iou.argmax(0)
        cols = none.nonzero().squeeze(1)
        pos[best[cols], cols] = True
    score = torch.full((n, m), -1.0, device=points.device)
    col = torch.arange(m, device=points.device).expand_as(cand_idx)
    score[cand_idx[pos], col[pos]] = ious.gather(0, cand_idx)[pos]
    best_iou, best_gt = score.max(1)
    assigned[best_iou >= 0] = best_gt[best_iou >= 0]
    return assigned


class DetectionLoss:
    def __init__(self, strides: tuple[int, ...], num_classes: int, box_weight: float = 2.0) -> None:
        self.strides, self.num_classes, self.box_weight = strides, num_classes, box_weight

    def __call__(self, outputs: Sequence[torch.Tensor],
                 targets: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        cls, box, sizes = flatten_outputs(outputs)
        points, strs = grid_points(sizes, self.strides, cls.device)
        level_sizes = [h * w for h, w in sizes]
        pred_boxes = decode_boxes(box, points, strs)
        cls_target = torch.zeros_like(cls)
        pos_pred, pos_gt = [], []
        for b, t in enumerate(targets):
            assigned = atss_assign(points, strs, level_sizes, t[:, 1:])
            pos = (assigned >= 0).nonzero().squeeze(1)
            if pos.numel() == 0:
                continue
            gt = t[assigned[pos]]
            pb = pred_boxes[b, pos]
            with torch.no_grad():
                iou = box_iou(pb.detach(), gt[:, 1:]).diagonal().clamp(min=0.0)
            cls_target[b, pos, gt[:, 0].long()] = iou
            pos_pred.append(pb)
            pos_gt.append(gt[:, 1:])
        num_pos = max(1.0, float(sum(len(p) for p in pos_pred)))
        p = torch.sigmoid(cls)
        qfl = F.binary_cross_entropy_with_logits(cls, cls_target, reduction="none") \
            * (p - cls_target).abs().pow(2)
        loss_cls = qfl.sum() / num_pos
        if pos_pred:
            loss_box = generalized_box_iou_loss(torch.cat(pos_pred), torch.cat(pos_gt),
                                                reduction="sum") / num_pos
        else:
            loss_box = box.sum() * 0.0
        total = loss_cls + self.box_weight * loss_box
        return total, {"cls": float(loss_cls.detach()), "box": float(loss_box.detach()),
                       "pos": num_pos}
