"""`Preprocessor`: camera frame → model input in one fused pass, on the CPU or a CUDA GPU."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numba
import numpy as np

from ..detect.spec import ModelSpec
from ._cpu import letterbox_packed, letterbox_yuv422, sample_table
from .errors import ImageFormatError
from .image import ENCODINGS, Encoding, encoding_info
from .letterbox import Letterbox

__all__ = ["Preprocessor", "require_threadsafe_kernels"]

DEVICES = ("cpu", "cuda")
_Geometry = tuple[Letterbox, tuple[Any, ...]]


class Preprocessor:
    """Letterbox, convert to RGB and normalise images for one model, into one reused buffer.

    `device="cpu"` writes a (1, 3, H, W) numpy array with a parallel Numba kernel;
    `device="cuda"` copies the source to the GPU and writes a numba.cuda device array
    (`torch.as_tensor(out, device="cuda")` reads it in place through
    `__cuda_array_interface__`). `dtype` is float32, or float16 on CUDA only. `threads` caps
    the CPU kernel's threads (default: all Numba threads); on cores shared with inference, one
    thread is often faster than a parallel region waiting for a pre-empted worker.

    The returned array is the preprocessor's own output buffer: the next call overwrites it, so
    consume it (run the model, or copy) before preprocessing the next frame. Not thread-safe:
    use one Preprocessor per worker thread.
    """

    def __init__(self, spec: ModelSpec, device: str = "cpu", dtype: Any = np.float32,
                 threads: int | None = None) -> None:
        if device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
        dtype = np.dtype(dtype)
        allowed = (np.float32, np.float16) if device == "cuda" else (np.float32,)
        if dtype not in [np.dtype(t) for t in allowed]:
            raise ValueError(f"dtype {dtype} is not supported on {device} "
                             f"(use {', '.join(np.dtype(t).name for t in allowed)})")
        if threads is not None and not 1 <= threads <= numba.config.NUMBA_NUM_THREADS:
            raise ValueError(f"threads must be in [1, {numba.config.NUMBA_NUM_THREADS}], "
                             f"got {threads}")
        if not 0 <= spec.pad <= 255:
            raise ValueError(f"spec.pad must be in [0, 255], got {spec.pad}")
        self.spec, self.device, self.dtype, self.threads = spec, device, dtype, threads
        std = np.asarray(spec.std, np.float64)
        self._a = (1.0 / (255.0 * std)).astype(np.float32)
        self._b = (-np.asarray(spec.mean, np.float64) / std).astype(np.float32)
        self._letterboxes: dict[tuple[int, int, int], _Geometry] = {}
        shape = (1, 3, spec.input_height, spec.input_width)
        if device == "cpu":
            self._out: Any = np.empty(shape, np.float32)
            # One float32 source row per Numba thread (grown to the widest frame seen).
            self._scratch = np.empty((numba.config.NUMBA_NUM_THREADS, 0), np.float32)
        else:
            from numba import cuda

            from . import _cuda

            self._cuda, self._kernel = cuda, _cuda.letterbox
            self._out = cuda.device_array(shape, dtype)
            self._a_dev, self._b_dev = cuda.to_device(self._a), cuda.to_device(self._b)
            self._src_dev: Any = None
            self._grid = (-(-spec.input_width // _cuda.BLOCK[0]),
                          -(-spec.input_height // _cuda.BLOCK[1]))
            self._block = _cuda.BLOCK

    @property
    def output(self) -> Any:
        """The (1, 3, H, W) output buffer every call writes into."""
        return self._out

    def letterbox(self, width: int, height: int) -> Letterbox:
        """The letterbox of a width x height source into the model input."""
        return self._geometry(width, height, 1)[0]

    def _geometry(self, width: int, height: int, x_stride: int) -> _Geometry:
        """Letterbox of a source size and the CPU kernels' geometry arguments for it, computed
        once per size: the placed image (pad x, pad y, width, height) and the sampling tables
        (x in units of x_stride bytes), all unsigned (see _cpu)."""
        key = (width, height, x_stride)
        hit = self._letterboxes.get(key)
        if hit is None:
            if len(self._letterboxes) >= 16:
                self._letterboxes.clear()
            lb = Letterbox.fit(width, height, self.spec.input_width, self.spec.input_height)
            u = np.uint64
            kernel_args = ((u(lb.pad_x), u(lb.pad_y), u(lb.new_width), u(lb.new_height))
                           + sample_table(lb.dst_width, lb.pad_x, lb.new_width, width, x_stride)
                           + sample_table(lb.dst_height, lb.pad_y, lb.new_height, height))
            hit = self._letterboxes[key] = (lb, kernel_args)
        return hit

    def __call__(self, image: np.ndarray, encoding: str) -> tuple[Any, Letterbox]:
        """Preprocess one (H, W, bytes_per_pixel) uint8 image (as from `image_array` or
        `decode_compressed`; mono8 may also be (H, W)). Returns (output buffer, letterbox)."""
        enc = encoding_info(encoding)
        flat, step, h, w = _flat_source(image, enc)
        packed = enc.kind != "yuv422"
        lb, geometry = self._geometry(w, h, enc.bytes_per_pixel if packed else 1)
        pad = float(self.spec.pad)
        if self.device == "cuda":
            self._run_cuda(flat, step, h, w, enc,
                           (lb.pad_x, lb.pad_y, lb.new_width, lb.new_height, pad))
            return self._out, lb
        before = numba.get_num_threads() if self.threads is not None else 0
        if before:
            numba.set_num_threads(self.threads)  # a per-thread setting, restored below
        try:
            # The kernels index with unsigned integers only (see _cpu).
            u = np.uint64
            channels = (u(enc.r), u(enc.g), u(enc.b))
            if packed:
                row_bytes = w * enc.bytes_per_pixel
                if self._scratch.shape[1] < row_bytes:
                    self._scratch = np.empty((numba.config.NUMBA_NUM_THREADS, row_bytes),
                                             np.float32)
                letterbox_packed(flat, u(step), u(row_bytes), *channels, self._out[0],
                                 *geometry, pad, self._a, self._b, self._scratch)
            else:
                letterbox_yuv422(flat, u(step), *channels, self._out[0], *geometry, pad,
                                 self._a, self._b)
        finally:
            if before:
                numba.set_num_threads(before)
        return self._out, lb

    def _run_cuda(self, flat: np.ndarray, step: int, h: int, w: int, enc: Encoding,
                  geometry: tuple[int, int, int, int, float]) -> None:
        n = flat.size
        if self._src_dev is None or self._src_dev.size < n:
            self._src_dev = self._cuda.device_array(n, np.uint8)
        src = self._src_dev[:n]
        src.copy_to_device(flat)
        self._kernel[self._grid, self._block](
            src, step, h, w, enc.bytes_per_pixel, int(enc.kind == "yuv422"), enc.r, enc.g,
            enc.b, self._out[0], *geometry, self._a_dev, self._b_dev)

    def batch(self, images: Sequence[tuple[np.ndarray, str]]) -> tuple[Any, list[Letterbox]]:
        """Preprocess (image, encoding) pairs into a new (N, 3, H, W) array (a device array on
        CUDA), e.g. for offline evaluation. Allocates per call; the per-frame path is
        `__call__`."""
        shape = (len(images), 3, self.spec.input_height, self.spec.input_width)
        if self.device == "cuda":
            out: Any = self._cuda.device_array(shape, self.dtype)
        else:
            out = np.empty(shape, np.float32)
        boxes = []
        for i, (image, encoding) in enumerate(images):
            one, lb = self(image, encoding)
            if self.device == "cuda":
                out[i].copy_to_device(one[0])
            else:
                out[i] = one[0]
            boxes.append(lb)
        return out, boxes

    def warmup(self) -> float:
        """Compile (or load from the Numba cache) the kernels of every encoding once, so the
        first real frame pays no JIT cost. Returns the seconds it took."""
        import time

        t0 = time.perf_counter()
        for name, enc in ENCODINGS.items():
            img = np.zeros((4, 6, enc.bytes_per_pixel), np.uint8)
            self(img, name)
        if self.device == "cuda":
            self._cuda.synchronize()
        return time.perf_counter() - t0


def require_threadsafe_kernels() -> None:
    """Make the CPU kernels safe to launch from several threads at once: Numba's `workqueue`
    threading layer aborts the process on concurrent launches, `omp` and `tbb` do not. Before
    the first parallel kernel runs this restricts Numba's choice to those two; afterwards it
    checks the layer in use and raises RuntimeError if it is `workqueue`."""
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet: the layer can still be chosen
        layer = numba.config.THREADING_LAYER
        if layer == "default":
            numba.config.THREADING_LAYER = "threadsafe"
    if layer == "workqueue":
        raise RuntimeError("concurrent preprocessing needs Numba's omp or tbb threading layer, "
                           "but this process uses workqueue (set NUMBA_THREADING_LAYER=omp, "
                           "or use one worker thread)")


def _flat_source(image: np.ndarray, enc: Encoding) -> tuple[np.ndarray, int, int, int]:
    """A flat read-only uint8 view of the image's rows, the row step, height and width.

    Views of rows with padding (image_array, slices) stay zero-copy; other layouts are copied."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ImageFormatError(f"image must be a uint8 numpy array, got "
                               f"{getattr(image, 'dtype', type(image).__name__)}")
    if image.ndim == 2 and enc.bytes_per_pixel == 1:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] != enc.bytes_per_pixel:
        raise ImageFormatError(f"{enc.name} image must have shape (H, W, "
                               f"{enc.bytes_per_pixel}), got {image.shape}")
    h, w, c = image.shape
    if h <= 0 or w <= 0:
        raise ImageFormatError(f"image size must be positive, got {w}x{h}")
    if enc.kind == "yuv422" and w % 2:
        raise ImageFormatError(f"{enc.name} needs an even width (pixel pairs), got {w}")
    s0, s1, s2 = image.strides
    if not ((s2 == 1 or c == 1) and (s1 == c or w == 1) and s0 >= w * c):
        image = np.ascontiguousarray(image)
        s0 = w * c
    span = (h - 1) * s0 + w * c
    flat = np.lib.stride_tricks.as_strided(image, shape=(span,), strides=(1,), writeable=False)
    return flat, s0, h, w
