"""The inference API: `load_detector(path, device) -> Detector`, `Detector.detect(...)`.

Per frame: fused Numba preprocessing (letterbox + colour + normalise, one pass) → the model
(CUDA when available, else the INT8 TorchScript model on the CPU) → box decoding →
`torchvision.ops.batched_nms` → boxes mapped back to original-image pixels.
"""

from __future__ import annotations

import os
import platform
import queue

import numpy as np
import torch

from ..preprocess import Preprocessor, require_threadsafe_kernels
from .decode import postprocess
from .model_io import LoadedModel, load_model_file
from .onnx_detector import is_onnx, load_onnx_detector
from .spec import ModelSpec
from .types import Detection, DetectorConfig, DetectorBase, default_model_path

__all__ = ["Detection", "DetectorConfig", "Detector", "load_detector", "default_model_path",
           "select_device"]


def select_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


class Detector(DetectorBase):
    """A loaded model plus its preprocessing. `detect` is thread-safe: up to `concurrency`
    calls run at once, each with its own preprocessing buffer, all sharing the one model (the
    model call releases the GIL); further callers wait. With one inference thread per call,
    two concurrent calls on two cores process about twice the frames of one."""

    def __init__(self, model: LoadedModel, device: torch.device,
                 config: DetectorConfig = DetectorConfig(), concurrency: int = 1) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.model, self.device = model, device
        self.spec: ModelSpec = model.spec
        self.config = config
        self.concurrency = concurrency
        if concurrency > 1 and device.type == "cpu":
            require_threadsafe_kernels()
        # One Numba thread on the CPU: the kernel takes ~0.5 ms per 1080p frame that way, and a
        # parallel region would leave spinning workers that slow the model call right after.
        self._pres = [Preprocessor(self.spec, device="cuda") if device.type == "cuda"
                      else Preprocessor(self.spec, device="cpu", threads=1)
                      for _ in range(concurrency)]
        self._idle: queue.SimpleQueue[Preprocessor] = queue.SimpleQueue()
        for pre in self._pres:
            self._idle.put(pre)

    def warmup(self) -> None:
        """Compile the Numba kernels and run the model once, so the first frame pays nothing."""
        for pre in self._pres:
            pre.warmup()
        frame = np.zeros((self.spec.input_height, self.spec.input_width, 3), np.uint8)
        self.detect(frame, "bgr8")

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.inference_mode():
            out = self.model.module(x)
        return tuple(o.float() for o in out)

    def _to_tensor(self, arr: object) -> torch.Tensor:
        if isinstance(arr, np.ndarray):
            return torch.from_numpy(arr)
        return torch.as_tensor(arr, device=self.device)  # numba device array (CUDA interface)

    def _model_input(self, out: object, copy: bool) -> torch.Tensor:
        t = self._to_tensor(out)
        return t.clone() if copy else t

    def _infer(self, inputs: list[torch.Tensor]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        x = torch.cat(inputs) if len(inputs) > 1 else inputs[0]
        raw = self._run(x.to(self.device, torch.float32))
        cfg = self.config
        results = postprocess(raw, self.spec.strides, cfg.score_threshold, cfg.nms_iou,
                              cfg.max_detections, classes=cfg.enabled_classes)
        return [tuple(t.cpu().numpy() for t in r) for r in results]  # type: ignore[misc]


def _set_quantized_engine() -> None:
    engines = torch.backends.quantized.supported_engines
    arm = platform.machine().lower() in ("aarch64", "arm64")
    for e in (("qnnpack",) if arm else ("x86", "fbgemm")):
        if e in engines:
            torch.backends.quantized.engine = e
            return


def load_detector(path: str | os.PathLike[str] | None = None, device: str = "auto",
                  config: DetectorConfig = DetectorConfig(), concurrency: int = 1) -> Detector:
    """Load a model file. `device="auto"`: CUDA with the FP32 model when a GPU is present
    (an INT8 path given explicitly is refused there: quantized CPU kernels do not run on CUDA),
    else the CPU with the INT8 model. `path=None` picks the shipped model for the device. An
    `.onnx` path gives the onnxruntime detector (`onnx_detector.OnnxDetector`, CPU).
    `concurrency`: how many `detect` calls may run at once (see `Detector`)."""
    if is_onnx(path):  # the INT8 model exported for onnxruntime: CPU only
        return load_onnx_detector(path, config, concurrency,  # type: ignore[return-value]
                                  device=device)
    dev = select_device(device)
    if path is None:
        path = default_model_path("fp32" if dev.type == "cuda" else "int8")
    _set_quantized_engine()
    model = load_model_file(path, dev if dev.type == "cuda" else torch.device("cpu"))
    if dev.type == "cuda" and model.kind == "int8":
        raise ValueError(f"{path} is an INT8 CPU model; on CUDA use the FP32 model "
                         "(or the ONNX file with TensorRT)")
    return Detector(model, dev, config, concurrency)
