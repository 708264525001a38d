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

__all__ = ["ModelEMA", "EpochBatches", "batches", "to_input", "train_one_epoch",
           "evaluate_float"]


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


def to_input(rgb: "np.ndarray | torch.Tensor", spec: ModelSpec) -> torch.Tensor:
    """HWC RGB uint8 (or NHWC; numpy or a tensor on any device) → normalised float NCHW tensor."""
    x = rgb if isinstance(rgb, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(rgb))
    x = x.float().div_(255.0)
    if x.ndim == 3:
        x = x[None]
    mean = torch.tensor(spec.mean, device=x.device).view(1, 1, 1, 3)
    std = torch.tensor(spec.std, device=x.device).view(1, 1, 1, 3)
    return ((x - mean) / std).permute(0, 3, 1, 2).contiguous()


class EpochBatches(torch.utils.data.Dataset):
    """Batch `k` of one epoch as (NHWC uint8 canvases, per-image boxes): the canvases depend on
    (seed, epoch, batch index) alone, so a DataLoader's workers build the same batches in any
    order and a resumed run rebuilds the rest of its epoch exactly. `skip` for resume."""

    def __init__(self, augmenter: Augmenter, n: int, batch_size: int, seed: int, epoch: int,
                 skip: int = 0) -> None:
        self.augmenter, self.batch_size, self.seed, self.epoch = augmenter, batch_size, seed, epoch
        self.order = np.random.default_rng([seed, epoch]).permutation(n)
        self.skip, self.n_batches = skip, n // batch_size

    def __len__(self) -> int:
        return max(0, self.n_batches - self.skip)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b = k + self.skip
        brng = np.random.default_rng([self.seed, self.epoch, b])
        imgs, targets = [], []
        for i in self.order[b * self.batch_size:(b + 1) * self.batch_size]:
            img, boxes = self.augmenter(int(i), brng)
            imgs.append(img)
            targets.append(torch.from_numpy(boxes))
        return torch.from_numpy(np.stack(imgs)), targets


def _quiet_worker(_: int) -> None:
    torch.set_num_threads(1)


def batches(augmenter: Augmenter, n: int, batch_size: int, seed: int, epoch: int,
            spec: ModelSpec, skip: int = 0, workers: int = 0,
            device: torch.device | None = None
            ) -> Iterator[tuple[torch.Tensor, list[torch.Tensor]]]:
    """Deterministic model-input batches for one epoch (seed, epoch) → same canvases.

    `workers` > 0 builds batches in that many DataLoader processes (a GPU outruns one core's
    augmentation); canvases travel as uint8 and are normalised on `device`."""
    device = device or torch.device("cpu")
    data = EpochBatches(augmenter, n, batch_size, seed, epoch, skip)
    stream: Iterable[tuple[torch.Tensor, list[torch.Tensor]]]
    if workers > 0:
        import cv2

        # Before the fork: a child must not inherit OpenCV's thread pool (building the image
        # cache may have started it), where its first cv2 call deadlocked. One OpenCV thread per
        # process from here on, this one included: it only normalises batches on the device.
        cv2.setNumThreads(1)
        stream = torch.utils.data.DataLoader(
            data, batch_size=None, shuffle=False, num_workers=workers,
            pin_memory=device.type == "cuda", prefetch_factor=4, worker_init_fn=_quiet_worker)
    else:
        stream = (data[k] for k in range(len(data)))
    for x, targets in stream:
        yield (to_input(x.to(device, non_blocking=True), spec),
               [t.to(device, non_blocking=True) for t in targets])


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
