"""Reading and writing model files without unpickling arbitrary objects.

Two formats:
- FP32 weights (`*.pt`): a dict of tensors and plain data, read with `torch.load(weights_only=True)`
  into a freshly built `HazardNet`.
- Quantized INT8 (`*.ts`): TorchScript (code + packed weights, no pickle of Python objects),
  with the `ModelSpec` and metadata as JSON extra files.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import torch
from torch import nn

from .network import HazardNet, NetConfig
from .spec import ModelSpec
from .types import file_sha256

__all__ = ["LoadedModel", "load_model_file", "save_fp32", "save_torchscript", "file_sha256"]


class LoadedModel:
    def __init__(self, module: nn.Module, spec: ModelSpec, meta: dict[str, object], path: Path,
                 kind: str) -> None:
        self.module, self.spec, self.meta, self.path, self.kind = module, spec, meta, path, kind
        self.sha256 = file_sha256(path)


def _atomic_write(path: Path, write) -> None:  # type: ignore[no-untyped-def]
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_fp32(path: Path, model: HazardNet, spec: ModelSpec, meta: dict[str, object]) -> None:
    obj = {"state_dict": model.state_dict(), "spec": spec.to_dict(), "meta": meta}
    _atomic_write(path, lambda p: torch.save(obj, p))


def save_torchscript(path: Path, module: nn.Module, spec: ModelSpec, meta: dict[str, object],
                     example: torch.Tensor) -> None:
    with torch.inference_mode():
        traced = torch.jit.trace(module, example, check_trace=False)
    traced = torch.jit.freeze(traced.eval()) if not _is_quantized(module) else traced
    extra = {"spec.json": json.dumps(spec.to_dict()), "meta.json": json.dumps(meta)}
    _atomic_write(path, lambda p: torch.jit.save(traced, str(p), _extra_files=extra))


def _is_quantized(module: nn.Module) -> bool:
    return any("quantized" in type(m).__module__ for m in module.modules())


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())


def load_model_file(path: str | os.PathLike[str], device: torch.device) -> LoadedModel:
    """Load an FP32 weights file or a TorchScript (INT8) file; never unpickles Python objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    if _is_torchscript(path):
        extra = {"spec.json": "", "meta.json": ""}
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
        spec = ModelSpec.from_dict(json.loads(extra["spec.json"] or "{}"))
        meta = json.loads(extra["meta.json"] or "{}")
        kind = str(meta.get("precision", "torchscript"))
        return LoadedModel(module.eval(), spec, meta, path, kind)
    obj = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(obj, dict) or "state_dict" not in obj:
        raise ValueError(f"{path}: not an edge_perception model file (no state_dict)")
    spec = ModelSpec.from_dict(obj.get("spec", {}))
    net = HazardNet(NetConfig(num_classes=len(spec.class_names)))
    net.load_state_dict(obj["state_dict"])
    return LoadedModel(net.to(device).eval(), spec, dict(obj.get("meta", {})), path, "fp32")
