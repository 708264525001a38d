"""The letterbox transform between original image pixels and model input pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Letterbox"]


@dataclass(frozen=True)
class Letterbox:
    """Aspect-kept resize of a src image into dst, centred with constant padding.

    The image occupies `new_width` x `new_height` input pixels starting at (`pad_x`, `pad_y`);
    `scale` is the nominal factor min(dst/src), and the exact per-axis factors used for sampling
    are `scale_x` = new_width / src_width and `scale_y` = new_height / src_height. Coordinates are
    continuous pixel-edge coordinates (0 is the left edge of pixel 0, src_width the right edge of
    the last pixel), the convention of x1y1x2y2 boxes.
    """

    src_width: int
    src_height: int
    dst_width: int
    dst_height: int
    scale: float
    pad_x: int
    pad_y: int

    @classmethod
    def fit(cls, src_width: int, src_height: int, dst_width: int, dst_height: int
            ) -> Letterbox:
        """The letterbox of a src_width x src_height image into dst_width x dst_height."""
        if min(src_width, src_height, dst_width, dst_height) <= 0:
            raise ValueError(f"sizes must be positive: src {src_width}x{src_height}, "
                             f"dst {dst_width}x{dst_height}")
        s = min(dst_width / src_width, dst_height / src_height)
        nw = _new_size(src_width, s, dst_width)
        nh = _new_size(src_height, s, dst_height)
        return cls(src_width, src_height, dst_width, dst_height, s,
                   (dst_width - nw) // 2, (dst_height - nh) // 2)

    @property
    def new_width(self) -> int:
        return _new_size(self.src_width, self.scale, self.dst_width)

    @property
    def new_height(self) -> int:
        return _new_size(self.src_height, self.scale, self.dst_height)

    @property
    def scale_x(self) -> float:
        return self.new_width / self.src_width

    @property
    def scale_y(self) -> float:
        return self.new_height / self.src_height

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        """(..., 4) x1y1x2y2 boxes in original pixels → model input pixels (not clipped)."""
        b = _boxes(boxes)
        out = np.empty_like(b)
        out[..., 0::2] = b[..., 0::2] * self.scale_x + self.pad_x
        out[..., 1::2] = b[..., 1::2] * self.scale_y + self.pad_y
        return out

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """(..., 4) x1y1x2y2 boxes in model input pixels → original pixels, clipped to the
        image [0, src_width] x [0, src_height]."""
        b = _boxes(boxes)
        out = np.empty_like(b)
        out[..., 0::2] = np.clip((b[..., 0::2] - self.pad_x) / self.scale_x, 0, self.src_width)
        out[..., 1::2] = np.clip((b[..., 1::2] - self.pad_y) / self.scale_y, 0, self.src_height)
        return out


def _new_size(src: int, scale: float, dst: int) -> int:
    return min(dst, max(1, round(src * scale)))


def _boxes(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes)
    if b.shape[-1:] != (4,):
        raise ValueError(f"boxes must have shape (..., 4), got {b.shape}")
    dtype = b.dtype if np.issubdtype(b.dtype, np.floating) else np.float32
    return b.astype(np.result_type(dtype, np.float32), copy=False)
