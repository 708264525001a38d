"""What every detector returns and takes, and where the shipped models are — without torch, so
the onnxruntime detector (and a node using it) never imports it."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .spec import ModelSpec

__all__ = ["Detection", "DetectorConfig", "DetectorIdentity", "FrameDetector", "MODELS_DIR",
           "default_model_path", "file_sha256"]

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


@dataclass(frozen=True)
class Detection:
    """One hazard in original-image pixels."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    class_id: int
    class_name: str

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


@dataclass(frozen=True)
class DetectorConfig:
    score_threshold: float = 0.35
    nms_iou: float = 0.6
    max_detections: int = 100
    enabled_classes: tuple[int, ...] | None = None  # None = all


class DetectorIdentity:
    """The model id and the runtime config updates both detectors share (they set `model`,
    with `.meta`, `.path` and `.sha256`, and `config`)."""

    model: Any
    config: DetectorConfig

    @property
    def model_id(self) -> str:
        name = self.model.meta.get("name", self.model.path.stem)
        version = self.model.meta.get("version", "0")
        return f"{name}@{version}:{self.model.sha256[:12]}"

    def update_config(self, **changes: object) -> None:
        self.config = replace(self.config, **changes)  # type: ignore[arg-type]


class FrameDetector(Protocol):
    """What the perception pipeline and the nodes use of a detector (`detect.detector.Detector`
    on torch, `detect.onnx_detector.OnnxDetector` on onnxruntime)."""

    spec: ModelSpec
    config: DetectorConfig
    model: Any  # .path, .sha256, .meta, .kind
    device: Any

    @property
    def model_id(self) -> str: ...

    def update_config(self, **changes: object) -> None: ...

    def warmup(self) -> None: ...

    def detect(self, image: np.ndarray, encoding: str = "bgr8") -> list[Detection]: ...

    def detect_batch(self, frames: list[tuple[np.ndarray, str]]) -> list[list[Detection]]: ...


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_model_path(precision: str = "int8") -> Path:
    """The shipped model: installed share/ dir (colcon) or the repo's models/ folder.
    `int8`: TorchScript (torch), `int8_onnx`: the same model for onnxruntime, `fp32`."""
    name = {"int8": "hazard_int8.ts", "int8_onnx": "hazard_int8.onnx",
            "fp32": "hazard_fp32.pt"}[precision]
    candidates = [MODELS_DIR / name]
    try:  # installed with colcon: share/edge_perception/models
        from ament_index_python.packages import get_package_share_directory

        candidates.insert(0, Path(get_package_share_directory("edge_perception")) / "models" / name)
    except Exception:  # noqa: BLE001 - ament index absent or package not installed there
        pass
    for c in candidates:
        if c.is_file():
            return c
    return candidates[-1]
