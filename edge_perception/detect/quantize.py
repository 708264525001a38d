"""INT8 post-training static quantization (torch.ao FX) and ONNX (QDQ) export."""

from __future__ import annotations

import copy
import platform
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["default_backend", "quantize_fx", "export_onnx", "quantize_onnx_qdq"]


def default_backend() -> str:
    """x86 (fbgemm kernels) on Intel/AMD, qnnpack on ARM (Jetson, Raspberry Pi)."""
    return "qnnpack" if platform.machine().lower() in ("aarch64", "arm64") else "x86"


def quantize_fx(model: nn.Module, calibration: Iterable[torch.Tensor], backend: str,
                example: torch.Tensor, float_modules: tuple[str, ...] = ()) -> nn.Module:
    """Static INT8: per-channel weights (the backend's default qconfig), activations observed
    on `calibration` batches. Modules named in `float_modules` (qualified names, e.g. the
    heads' last convs) stay in float."""
    from torch.ao.quantization import QConfigMapping, get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = backend
    qmap: QConfigMapping = get_default_qconfig_mapping(backend)
    for name in float_modules:
        qmap = qmap.set_module_name(name, None)
    prepared = prepare_fx(copy.deepcopy(model).eval(), qmap, (example,))
    with torch.inference_mode():
        for x in calibration:
            prepared(x)
    return convert_fx(prepared)


def export_onnx(model: nn.Module, path: Path, example: torch.Tensor, opset: int = 17) -> None:
    """FP32 ONNX with named outputs (cls_s8, box_s8, cls_s16, ...) and a dynamic batch."""
    names = [f"{k}_s{s}" for s in (8, 16, 32) for k in ("cls", "box")]
    torch.onnx.export(model.eval(), (example,), str(path), input_names=["images"],
                      output_names=names, opset_version=opset, dynamo=False,
                      dynamic_axes={"images": {0: "batch"}, **{n: {0: "batch"} for n in names}})


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
