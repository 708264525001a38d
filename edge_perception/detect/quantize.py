"""INT8 post-training static quantization (torch.ao FX) and ONNX (QDQ) export."""

from __future__ import annotations

import copy
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.ao.quantization.observer import HistogramObserver

if TYPE_CHECKING:
    from torch.ao.quantization import QConfigMapping

__all__ = ["default_backend", "qconfig_mapping", "calibrate_fx", "observe_relu6_outputs",
           "ReLU6InputObserver", "quantize_fx", "export_onnx", "export_int8_onnx",
           "quantize_onnx_qdq"]


def default_backend() -> str:
    """x86 (fbgemm kernels) on Intel/AMD, qnnpack on ARM (Jetson, Raspberry Pi)."""
    return "qnnpack" if platform.machine().lower() in ("aarch64", "arm64") else "x86"


def qconfig_mapping(backend: str, qat: bool = False) -> QConfigMapping:
    """What to observe. On x86/fbgemm: full 8-bit activations and 7-bit per-channel symmetric
    weights. fbgemm's AVX2 kernels sum pairs of u8*s8 products in int16, so 8-bit weights need
    7-bit activations (PyTorch's default, `reduce_range=True`) to avoid saturation; measured on
    this network (a third of val), spending the lost bit on the weights instead kept 2.9 points
    more mAP@0.5 after post-training quantization.
    Other backends: PyTorch's default for them."""
    from torch.ao.quantization import (QConfig, get_default_qat_qconfig_mapping,
                                       get_default_qconfig_mapping)
    from torch.ao.quantization.fake_quantize import FusedMovingAvgObsFakeQuantize
    from torch.ao.quantization.observer import (MovingAverageMinMaxObserver,
                                               MovingAveragePerChannelMinMaxObserver,
                                               PerChannelMinMaxObserver)

    if backend not in ("x86", "fbgemm"):
        return (get_default_qat_qconfig_mapping if qat else get_default_qconfig_mapping)(backend)
    weight = dict(dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-64,
                  quant_max=63)
    if qat:
        act = FusedMovingAvgObsFakeQuantize.with_args(
            observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
            dtype=torch.quint8, reduce_range=False)
        wq = FusedMovingAvgObsFakeQuantize.with_args(
            observer=MovingAveragePerChannelMinMaxObserver, ch_axis=0, **weight)
        base = get_default_qat_qconfig_mapping(backend)
    else:
        act = HistogramObserver.with_args(reduce_range=False)
        wq = PerChannelMinMaxObserver.with_args(**weight)
        base = get_default_qconfig_mapping(backend)
    return base.set_global(QConfig(activation=act, weight=wq))


def calibrate_fx(model: nn.Module, calibration: Iterable[torch.Tensor], backend: str,
                 example: torch.Tensor, float_modules: tuple[str, ...] = ()) -> nn.Module:
    """A copy of `model` prepared for static quantization (see `qconfig_mapping`) whose
    observers have seen the `calibration` batches. Modules named in `float_modules` (qualified
    names, e.g. the heads' last convs) get no observers and stay in float."""
    from torch.ao.quantization.quantize_fx import prepare_fx

    torch.backends.quantized.engine = backend
    qmap = qconfig_mapping(backend)
    for name in float_modules:
        qmap = qmap.set_module_name(name, None)
    prepared = prepare_fx(copy.deepcopy(model).eval(), qmap, (example,))
    observe_relu6_outputs(prepared)
    with torch.inference_mode():
        for x in calibration:
            prepared(x)
    return prepared


def _is_relu6(node: torch.fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules.get(str(node.target)), nn.ReLU6)
    return node.op == "call_function" and node.target is nn.functional.relu6


def observe_relu6_outputs(prepared: torch.fx.GraphModule) -> int:
    """Make the observer in front of each ReLU6 observe what the ReLU6 lets through.

    torch.ao's x86 backend fuses Conv+BN+ReLU but not ReLU6, so a convolution followed by
    ReLU6 gets its output observed *before* the clamp, and the ReLU6 after it shares those
    quantization parameters. The pre-activation range is wide (the stem's was about -93..81),
    so the stem's [0, 6] outputs were left about 9 levels. Each such observer (used only by
    ReLU6 nodes) now sees its input clamped to [0, 6] (and, being the same observer, the
    ReLU6's output): the quantized convolution's output range becomes the ReLU6's output
    range. With v2's weights this took the INT8 loss on val from 2.8 points mAP@0.5 to 0.7
    (models/README.md). Called by `calibrate_fx`; returns how many observers changed."""
    modules = dict(prepared.named_modules(remove_duplicate=False))
    changed = 0
    for node in prepared.graph.nodes:
        if not _is_relu6(node, modules) or not isinstance(node.args[0], torch.fx.Node):
            continue
        src = node.args[0]
        obs = modules.get(str(src.target)) if src.op == "call_module" else None
        if type(obs) is not HistogramObserver:
            continue
        if all(_is_relu6(u, modules) for u in src.users):
            obs.__class__ = ReLU6InputObserver
            changed += 1
    return changed


class ReLU6InputObserver(HistogramObserver):
    """A histogram observer in front of a ReLU6: records its input clamped to [0, 6]."""

    def forward(self, x_orig: torch.Tensor) -> torch.Tensor:
        super().forward(x_orig.detach().clamp(0.0, 6.0))
        return x_orig


def quantize_fx(model: nn.Module, calibration: Iterable[torch.Tensor], backend: str,
                example: torch.Tensor, float_modules: tuple[str, ...] = ()) -> nn.Module:
    """Static INT8: `calibrate_fx`, then convert."""
    from torch.ao.quantization.quantize_fx import convert_fx

    return convert_fx(calibrate_fx(model, calibration, backend, example, float_modules))


def export_onnx(model: nn.Module, path: Path, example: torch.Tensor, opset: int = 17) -> None:
    """FP32 ONNX with named outputs (cls_s8, box_s8, cls_s16, ...) and a dynamic batch."""
    names = [f"{k}_s{s}" for s in (8, 16, 32) for k in ("cls", "box")]
    torch.onnx.export(model.eval(), (example,), str(path), input_names=["images"],
                      output_names=names, opset_version=opset, dynamo=False,
                      dynamic_axes={"images": {0: "batch"}, **{n: {0: "batch"} for n in names}})


def export_int8_onnx(module: nn.Module, path: Path, example: torch.Tensor,
                     metadata: dict[str, str] | None = None, opset: int = 17) -> None:
    """The torch.ao INT8 model (converted or TorchScript) as QDQ ONNX with its own scales and
    zero points (u8 activations, 7-bit per-channel weights), for onnxruntime on a CPU
    (`detect.onnx_detector`): the same quantization parameters as the PyTorch model, not a
    second calibration (rounding inside onnxruntime's kernels differs by a few output steps).
    Names and the dynamic batch as `export_onnx`; `metadata` (e.g. `spec.json`, `meta.json`)
    goes into the file's metadata_props."""
    names = [f"{k}_s{s}" for s in (8, 16, 32) for k in ("cls", "box")]
    torch.onnx.export(module, (example,), str(path), input_names=["images"],
                      output_names=names, opset_version=opset, dynamo=False,
                      dynamic_axes={"images": {0: "batch"}, **{n: {0: "batch"} for n in names}})
    if metadata:
        import onnx

        model = onnx.load(str(path))
        for key, value in metadata.items():
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, str(path))


def quantize_onnx_qdq(fp32_path: Path, out_path: Path, calibration: list[np.ndarray]) -> None:
    """INT8 QDQ ONNX (per-channel weights) for TensorRT, calibrated on the same images."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {"images": x}

    quantize_static(str(fp32_path), str(out_path), _Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)
