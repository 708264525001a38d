"""Quantization-aware fine-tuning (torch.ao FX) of a trained FP32 detector.

On the v1 weights (5 CPU epochs), post-training quantization with PyTorch's default x86
qconfig lost 8 points of mAP@0.5 and this fine-tune got half of that back; on v2 (fine-tuned
end to end on a GPU) post-training quantization with `qconfig_mapping`'s histogram observer
did better than 120 QAT steps that observed their own activation ranges (models/README.md).
Measure both for new weights. The FP32 weights are wrapped with fake quantization
(`detect.quantize.qconfig_mapping(qat=True)`: 8-bit activations, 7-bit per-channel weights).
The activation ranges are either fixed from the start at what post-training quantization's
histogram observer chooses (`histogram_ranges` + `set_activation_ranges`: training then adapts
the weights to those clipped ranges) or observed with moving-average min/max and frozen
halfway. BatchNorm statistics are frozen (small CPU batches) and the model is trained at a low
learning rate with the usual loss and augmentation. `convert_fx` of the EMA weights then gives
the INT8 model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import torch
from torch import nn

from .engine import ModelEMA, train_one_epoch
from .loss import DetectionLoss

__all__ = ["histogram_ranges", "prepare_qat", "qat_finetune", "set_activation_ranges"]


def prepare_qat(model: nn.Module, example: torch.Tensor, backend: str) -> nn.Module:
    """A fake-quantized training copy of `model` (FX graph, Conv+BN+ReLU6 fused)."""
    from torch.ao.quantization.quantize_fx import prepare_qat_fx

    from ..detect.quantize import qconfig_mapping

    torch.backends.quantized.engine = backend
    return prepare_qat_fx(copy.deepcopy(model).train(), qconfig_mapping(backend, qat=True),
                          (example,))


def histogram_ranges(model: nn.Module, example: torch.Tensor, backend: str,
                     calibration: Iterable[torch.Tensor]) -> dict[str, tuple[float, float]]:
    """The activation ranges post-training quantization would use: `qconfig_mapping`'s
    histogram observers (which clip outliers to minimise quantization error) after observing
    `calibration` batches, by observer name in the FX graph."""
    from torch.ao.quantization.observer import HistogramObserver

    from ..detect.quantize import calibrate_fx

    prepared = calibrate_fx(model, calibration, backend, example)
    ranges = {}
    for name, m in prepared.named_modules():
        if isinstance(m, HistogramObserver):
            lo, hi = m._non_linear_param_search()
            ranges[name] = (float(lo), float(hi))
    return ranges


def set_activation_ranges(qat: nn.Module, ranges: dict[str, tuple[float, float]]) -> int:
    """Fix the activation fake quantizers of a `prepare_qat` model to `ranges` (observers off,
    so training adapts the weights to these ranges instead of moving them). Both graphs come
    from the same model and qconfig structure, so observer names match; every range must find
    its quantizer. Returns how many were set."""
    from torch.ao.quantization.fake_quantize import FakeQuantizeBase

    done = 0
    modules = dict(qat.named_modules())
    for name, (lo, hi) in ranges.items():
        fq = modules.get(name)
        if not isinstance(fq, FakeQuantizeBase):
            raise ValueError(f"no activation fake quantizer {name!r} in the QAT graph")
        obs = fq.activation_post_process
        obs.min_val = torch.tensor(lo)
        obs.max_val = torch.tensor(hi)
        scale, zero_point = obs.calculate_qparams()
        fq.scale.resize_(scale.shape).copy_(scale)
        fq.zero_point.resize_(zero_point.shape).copy_(zero_point)
        fq.disable_observer()
        done += 1
    return done


def qat_finetune(model: nn.Module, example: torch.Tensor, backend: str,
                 data: Iterable[tuple[torch.Tensor, list[torch.Tensor]]], steps: int,
                 loss_fn: DetectionLoss, lr: float = 5e-5,
                 on_step: Callable[[], None] | None = None,
                 activation_ranges: dict[str, tuple[float, float]] | None = None
                 ) -> nn.Module:
    """Fine-tune `model` with fake quantization for `steps` batches of `data`; returns the
    converted INT8 module (eval mode). The EMA of the fake-quantized weights is converted,
    as the float training keeps an EMA too. `activation_ranges` (from `histogram_ranges`)
    fixes the activation ranges from the start; without it they are observed (moving-average
    min/max) for the first half of the steps."""
    from torch.ao.nn.intrinsic import qat as nniqat
    from torch.ao.quantization import disable_observer
    from torch.ao.quantization.quantize_fx import convert_fx

    qat = prepare_qat(model, example, backend)
    if activation_ranges is not None:
        set_activation_ranges(qat, activation_ranges)
    qat.apply(nniqat.freeze_bn_stats)
    params = [p for p in qat.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + torch.cos(torch.tensor(min(s / max(steps, 1), 1.0)
                                                                * torch.pi)).item()))
    ema = ModelEMA(qat, decay=0.999, tau=100.0)
    state = {"step": 0}

    def step_done() -> None:
        state["step"] += 1
        if state["step"] == steps // 2:
            qat.apply(disable_observer)
            ema.ema.apply(disable_observer)
        if on_step is not None:
            on_step()

    def limited() -> Iterable[tuple[torch.Tensor, list[torch.Tensor]]]:
        for i, batch in enumerate(data):
            if i >= steps:
                return
            yield batch

    train_one_epoch(qat, loss_fn, optimizer, scheduler, ema, limited(), total=steps,
                    on_step=step_done, desc="qat")
    final = ema.ema.eval()
    final.apply(nniqat.freeze_bn_stats)
    return convert_fx(copy.deepcopy(final).cpu())
