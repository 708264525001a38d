"""Quantization-aware fine-tuning (torch.ao FX) of a trained FP32 detector.

On the v1 weights (5 CPU epochs), post-training quantization with PyTorch's default x86
qconfig lost 8 points of mAP@0.5 and this fine-tune got half of that back; on v2 (fine-tuned
end to end on a GPU) post-training quantization with `qconfig_mapping`'s histogram observer
did better than 120 QAT steps (models/README.md). Measure both for new weights. The FP32
weights are wrapped with fake quantization (`detect.quantize.qconfig_mapping(qat=True)`:
8-bit activations observed with moving-average min/max, 7-bit per-channel weights), BatchNorm
statistics are frozen (small CPU batches), observers are frozen halfway, and the model is
trained at a low learning rate with the usual loss and augmentation. `convert_fx` of the EMA
weights then gives the INT8 model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import torch
from torch import nn

from .engine import ModelEMA, train_one_epoch
from .loss import DetectionLoss

__all__ = ["prepare_qat", "qat_finetune"]


def prepare_qat(model: nn.Module, example: torch.Tensor, backend: str) -> nn.Module:
    """A fake-quantized training copy of `model` (FX graph, Conv+BN+ReLU6 fused)."""
    from torch.ao.quantization.quantize_fx import prepare_qat_fx

    from ..detect.quantize import qconfig_mapping

    torch.backends.quantized.engine = backend
    return prepare_qat_fx(copy.deepcopy(model).train(), qconfig_mapping(backend, qat=True),
                          (example,))


def qat_finetune(model: nn.Module, example: torch.Tensor, backend: str,
                 data: Iterable[tuple[torch.Tensor, list[torch.Tensor]]], steps: int,
                 loss_fn: DetectionLoss, lr: float = 5e-5,
                 on_step: Callable[[], None] | None = None) -> nn.Module:
    """Fine-tune `model` with fake quantization for `steps` batches of `data`; returns the
    converted INT8 module (eval mode). The EMA of the fake-quantized weights is converted,
    as the float training keeps an EMA too."""
    from torch.ao.nn.intrinsic import qat as nniqat
    from torch.ao.quantization import disable_observer
    from torch.ao.quantization.quantize_fx import convert_fx

    qat = prepare_qat(model, example, backend)
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
