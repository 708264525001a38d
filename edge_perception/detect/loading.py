"""Which detector a node runs, chosen by the model file and the device — without importing
torch when the CPU runs the ONNX model."""

from __future__ import annotations

from pathlib import Path

from .onnx_detector import is_onnx, load_onnx_detector
from .types import DetectorConfig, FrameDetector, default_model_path

__all__ = ["load_frame_detector", "cuda_present", "shipped_cpu_model"]


def cuda_present() -> bool:
    """A CUDA driver with a device, probed by numba (already loaded for preprocessing) rather
    than torch; numba's CUDA simulator does not count."""
    try:
        from numba import config, cuda

        return not config.ENABLE_CUDASIM and bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - a broken driver install means no CUDA here
        return False


def shipped_cpu_model() -> Path:
    """The shipped model a CPU runs: the INT8 model for onnxruntime when present, else the
    TorchScript one (which may be absent too: callers check)."""
    onnx = default_model_path("int8_onnx")
    return onnx if onnx.is_file() else default_model_path("int8")


def load_frame_detector(path: str, device: str = "auto",
                        config: DetectorConfig = DetectorConfig(), concurrency: int = 1,
                        threads: int = 0) -> FrameDetector:
    """The detector for `path` on `device` (auto, cpu or cuda).

    - `path` empty on a CPU (device cpu, or auto without CUDA): the shipped INT8 model for
      onnxruntime (`models/hazard_int8.onnx`) when present, else the TorchScript one.
    - an `.onnx` path: `OnnxDetector` on the CPU, torch never imported; `threads` are
      onnxruntime's per call (0 = its default).
    - anything else (or empty with CUDA): `detector.load_detector` on torch (FP32 on CUDA);
      `threads` > 0 sets torch's process-wide thread count.
    Raises FileNotFoundError, ValueError or RuntimeError (CUDA asked for, none present)."""
    if not path and (device == "cpu" or (device == "auto" and not cuda_present())):
        path = str(shipped_cpu_model())
    if is_onnx(path):
        return load_onnx_detector(path, config, concurrency, threads, device)
    import torch

    from .detector import load_detector

    if threads > 0:
        torch.set_num_threads(threads)
    return load_detector(path or None, device, config, concurrency)
