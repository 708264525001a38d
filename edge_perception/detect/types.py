"""What every detector returns and takes, and where the shipped models are — without torch, so
the onnxruntime detector (and a node using it) never imports it."""

from __future__ import annotations

import hashlib
import os
import queue
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .spec import ModelSpec

__all__ = ["Detection", "DetectorConfig", "DetectorBase", "FrameDetector", "MODELS_DIR",
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


class DetectorBase:
    """What both detectors share: the model id, runtime config updates and the batch step
    (preprocess each frame with an idle preprocessor → one model call → detections in original
    pixels). A subclass sets `model` (with `.meta`, `.path`, `.sha256`), `spec`, `config` and
    `_idle` (a queue of `concurrency` preprocessors) and gives the model side: `_model_input`
    and `_infer`."""

    model: Any
    spec: ModelSpec
    config: DetectorConfig
    _idle: queue.SimpleQueue[Any]

    @property
    def model_id(self) -> str:
        name = self.model.meta.get("name", self.model.path.stem)
        version = self.model.meta.get("version", "0")
        return f"{name}@{version}:{self.model.sha256[:12]}"

    def update_config(self, **changes: object) -> None:
        self.config = replace(self.config, **changes)  # type: ignore[arg-type]

    def detect(self, image: np.ndarray, encoding: str = "bgr8") -> list[Detection]:
        """Detections in one frame (HxWxC uint8 view, any sensor_msgs encoding we support)."""
        return self.detect_batch([(image, encoding)])[0]

    def detect_batch(self, frames: list[tuple[np.ndarray, str]]) -> list[list[Detection]]:
        """Frames of any sizes: preprocessed one by one into one batch, one model call."""
        if not frames:
            return []
        pre = self._idle.get()  # blocks while `concurrency` calls are running
        try:
            inputs, boxes_lb = [], []
            for image, encoding in frames:
                out, lb = pre(image, encoding)
                # the preprocessor reuses its output buffer: keep a copy when more follow
                inputs.append(self._model_input(out, copy=len(frames) > 1))
                boxes_lb.append(lb)
            results = self._infer(inputs)
        finally:
            self._idle.put(pre)
        names = self.spec.class_names
        return [[Detection(float(b[0]), float(b[1]), float(b[2]), float(b[3]), float(s), int(c),
                           names[int(c)])
                 for b, s, c in zip(lb.to_original(boxes), scores, labels)]
                for (boxes, scores, labels), lb in zip(results, boxes_lb)]

    def _model_input(self, out: Any, copy: bool) -> Any:
        """One preprocessed frame as the model's input type (copied if `copy`)."""
        raise NotImplementedError

    def _infer(self, inputs: list[Any]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """One model call on the frames' inputs → per frame (boxes in model pixels, scores,
        labels) as NumPy arrays, after the score threshold and class-wise NMS of `config`."""
        raise NotImplementedError


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
