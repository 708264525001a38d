"""Training and evaluation loops, shaped like torchvision's detection references:
free functions with every dependency passed in."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..detect.decode import postprocess
from ..detect.metrics import Metrics, coco_metrics
from ..detect.spec import ModelSpec
from ..preprocess.reference import letterbox_cv2
from .data import Augmenter, read_labels, label_path
from .loss import DetectionLoss

__all__ = ["ModelEMA", "batches", "to_input", "train_one_epoch", "evaluate_float"]


class ModelEMA:
    """Exponential moving average of weights (ramped decay, as in YOLOv5/8)."""

    def __init__(self, model: nn.Module, decay: float = 0.9995, tau: float = 1000.0,
                 updates: int = 0) -> None:
        self.ema = copy.deepcopy(model).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, updates

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        msd = model.state_dict()
        for k, v in self.ema.state_dict().items():
            src = msd[k].detach()
            if v.dtype.is_floating_point and v.shape == src.shape and bool(v.isfinite().all()):
                v.mul_(d).add_(src, alpha=1 - d)
            elif v.shape == src.shape:  # counters, flags; an observer not filled yet (±inf)
                v.copy_(src)
            else:  # an observer buffer that took its per-channel shape: replace the buffer
                owner, _, name = k.rpartition(".")
                setattr(self.ema.get_submodule(owner), name, src.clone())


def to_input(rgb: np.ndarray, spec: ModelSpec) -> torch.Tensor:
    """HWC RGB uint8 (or NHWC) → normalised float NCHW tensor."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).float().div_(255.0)
    if x.ndim == 3:
        x = x[None]
    mean = torch.tensor(spec.mean).view(1, 1, 1, 3)
    std = torch.tensor(spec.std).view(1, 1, 1, 3)
    return ((x - mean) / std).permute(0, 3, 1, 2).contiguous()


def batches(augmenter: Augmenter, n: int, batch_size: int, seed: int, epoch: int,
            spec: ModelSpec, skip: int = 0) -> Iterator[tuple[torch.Tensor, list[torch.Tensor]]]:
    """Deterministic batches for one epoch (seed, epoch) → same canvases; `skip` for resume."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n)
    n_batches = n // batch_size
    for b in range(n_batches):
        brng = np.random.default_rng([seed, epoch, b])
        if b < skip:
            continue
        imgs, targets = [], []
        for i in order[b * batch_size:(b + 1) * batch_size]:
            img, boxes = augmenter(int(i), brng)
            imgs.append(img)
            targets.append(torch.from_numpy(boxes))
        yield to_input(np.stack(imgs), spec), targets


def train_one_epoch(model: nn.Module, loss_fn: DetectionLoss, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, ema: ModelEMA,
                    data: Iterable[tuple[torch.Tensor, list[torch.Tensor]]], total: int,
                    on_step: "callable | None" = None, desc: str = "train") -> dict[str, float]:
    from tqdm import tqdm

    model.train()
    sums: dict[str, float] = {"loss": 0.0, "cls": 0.0, "box": 0.0}
    n = 0
    bar = tqdm(data, total=total, desc=desc, unit="batch", mininterval=10)
    for x, targets in bar:
        loss, parts = loss_fn(model(x), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        scheduler.step()
        ema.update(model)
        n += 1
        sums["loss"] += float(loss.detach())
        sums["cls"] += parts["cls"]
        sums["box"] += parts["box"]
        bar.set_postfix(loss=f"{sums['loss'] / n:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        if on_step is not None:
            on_step()
    return {k: v / max(n, 1) for k, v in sums.items()}


@torch.inference_mode()
def evaluate_float(model: nn.Module, images: list[Path], spec: ModelSpec, score_thresh: float,
                   names: dict[int, str], iou_thresh: float = 0.6) -> Metrics:
    """Quick float evaluation with the OpenCV letterbox (training-time monitor)."""
    import cv2

    model.eval()
    gts, dets = [], []
    for p in images:
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        h, w = bgr.shape[:2]
        lb, s, px, py = letterbox_cv2(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), spec.input_width,
                                      spec.input_height, spec.pad)
        out = postprocess(model(to_input(lb, spec)), spec.strides, 0.001, iou_thresh)[0]
        b = out[0].numpy().copy()
        b[:, [0, 2]] = (b[:, [0, 2]] - px) / s
        b[:, [1, 3]] = (b[:, [1, 3]] - py) / s
        dets.append(np.concatenate([b, out[1].numpy()[:, None], out[2].numpy()[:, None]], 1))
        gts.append(read_labels(label_path(p), w, h))
    return coco_metrics(gts, dets, names, score_thresh)
