"""The INT8 model on onnxruntime, with no torch in the process (peak RSS ~80 MB for the model
and runtime, against ~500 MB for `import torch` alone with the CUDA build pip installs).

`hazard_int8.onnx` is the torch.ao INT8 model exported with its own scales
(`quantize.export_int8_onnx`), so it scores what `hazard_int8.ts` scores. Per frame: the same
fused Numba preprocessing → onnxruntime → `decode_np.postprocess_np` (NumPy decoding and
class-wise NMS, checked against `torchvision.ops.batched_nms`) → original pixels.
"""

from __future__ import annotations

import json
import os
import queue
from pathlib import Path
from typing import Any

import numpy as np

from ..preprocess import Preprocessor, require_threadsafe_kernels
from .decode_np import postprocess_np
from .spec import ModelSpec
from .types import DetectorConfig, DetectorBase, file_sha256

__all__ = ["OnnxModel", "OnnxDetector", "load_onnx_detector", "is_onnx"]


def is_onnx(path: str | os.PathLike[str] | None) -> bool:
    return path is not None and str(path).lower().endswith(".onnx")


class OnnxModel:
    """An onnxruntime session plus the spec and metadata written into the file's metadata
    (`spec.json`, `meta.json`)."""

    def __init__(self, path: str | os.PathLike[str], threads: int = 0) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"model file not found: {self.path}")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads  # 0: onnxruntime's default (one per core)
        so.inter_op_num_threads = 1
        # idle pool threads would otherwise spin between frames, on cores the camera driver
        # and DDS need
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), so,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ValueError(f"{self.path}: not a loadable ONNX model ({e})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if "spec.json" not in props:
            raise ValueError(f"{self.path}: no spec.json metadata (export it with "
                             "`edge-perception quantize`)")
        self.spec = ModelSpec.from_dict(json.loads(props["spec.json"]))
        self.meta: dict[str, Any] = json.loads(props.get("meta.json", "{}"))
        self.kind = str(self.meta.get("precision", "onnx"))
        self.sha256 = file_sha256(self.path)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: x})


class OnnxDetector(DetectorBase):
    """`Detector`'s interface on onnxruntime (CPU). `detect` is thread-safe: up to
    `concurrency` calls run at once, each with its own preprocessing buffer, sharing the one
    session (onnxruntime releases the GIL while it runs)."""

    def __init__(self, model: OnnxModel, config: DetectorConfig = DetectorConfig(),
                 concurrency: int = 1) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if concurrency > 1:
            require_threadsafe_kernels()
        self.model, self.spec, self.config = model, model.spec, config
        self.concurrency = concurrency
        self.device = "cpu (onnxruntime)"
        self._idle: queue.SimpleQueue[Preprocessor] = queue.SimpleQueue()
        for _ in range(concurrency):
            self._idle.put(Preprocessor(self.spec, device="cpu", threads=1))

    def warmup(self) -> None:
        """Compile the Numba kernels and run the model once, so the first frame pays nothing."""
        for _ in range(self.concurrency):
            pre = self._idle.get()
            pre.warmup()
            self._idle.put(pre)
        self.detect(np.zeros((self.spec.input_height, self.spec.input_width, 3), np.uint8))

    def _model_input(self, out: np.ndarray, copy: bool) -> np.ndarray:
        return out.copy() if copy else out

    def _infer(self, inputs: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        x = np.concatenate(inputs) if len(inputs) > 1 else inputs[0]
        raw = self.model(np.ascontiguousarray(x, np.float32))
        cfg = self.config
        return postprocess_np(raw, self.spec.strides, cfg.score_threshold, cfg.nms_iou,
                              cfg.max_detections, classes=cfg.enabled_classes)


def load_onnx_detector(path: str | os.PathLike[str], config: DetectorConfig = DetectorConfig(),
                       concurrency: int = 1, threads: int = 0,
                       device: str = "cpu") -> OnnxDetector:
    """`threads`: onnxruntime intra-op threads per call (0 = its default). `device` must be
    cpu or auto: this detector runs on the CPU only."""
    if device not in ("auto", "cpu"):
        raise ValueError(f"{path} runs on the CPU (onnxruntime); for device {device!r} use "
                         "the FP32 model")
    return OnnxDetector(OnnxModel(path, threads), config, concurrency)
