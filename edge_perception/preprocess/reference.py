"""The OpenCV preprocessing path: the reference the fused kernels are tested and timed against.

Several passes over memory (colour conversion, cv2.resize INTER_LINEAR, copyMakeBorder,
normalisation, HWC → CHW), each simple and well known.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .image import encoding_info

__all__ = ["letterbox_cv2", "to_rgb_cv2", "preprocess_cv2", "normalise"]

_TO_RGB = {
    "bgr8": cv2.COLOR_BGR2RGB, "bgra8": cv2.COLOR_BGRA2RGB, "rgba8": cv2.COLOR_RGBA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
    "yuv422": cv2.COLOR_YUV2RGB_UYVY, "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2, "yuyv": cv2.COLOR_YUV2RGB_YUY2,
}


def letterbox_cv2(img: np.ndarray, out_w: int, out_h: int, pad: int = 114
                  ) -> tuple[np.ndarray, float, float, float]:
    """Reference letterbox (cv2.resize INTER_LINEAR + constant border).

    Returns the image, scale, pad x and pad y."""
    h, w = img.shape[:2]
    s = min(out_w / w, out_h / h)
    nw, nh = round(w * s), round(h * s)
    px, py = (out_w - nw) // 2, (out_h - nh) // 2
    resized = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    out = cv2.copyMakeBorder(resized, py, out_h - nh - py, px, out_w - nw - px,
                             cv2.BORDER_CONSTANT, value=(pad, pad, pad))
    return out, s, float(px), float(py)


def to_rgb_cv2(img: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W, 3) RGB uint8 of an image in any supported encoding (a copy)."""
    encoding_info(encoding)
    img = np.ascontiguousarray(img)
    if encoding == "rgb8":
        return img.copy()
    if encoding == "mono8" and img.ndim == 3:
        img = img[:, :, 0]
    return cv2.cvtColor(img, _TO_RGB[encoding])


def normalise(rgb: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(H, W, 3) uint8 RGB → (1, 3, H, W) float32 (x / 255 - mean) / std."""
    a = (1.0 / (255.0 * np.asarray(std, np.float32))).astype(np.float32)
    b = (-np.asarray(mean, np.float32) / np.asarray(std, np.float32)).astype(np.float32)
    return np.ascontiguousarray((rgb * a + b).transpose(2, 0, 1)[None])


def preprocess_cv2(img: np.ndarray, encoding: str, width: int, height: int, pad: int,
                   mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """The whole OpenCV path, image in `encoding` → (1, 3, height, width) float32 model input.

    Packed encodings are resized first and colour-converted at input size (the two commute);
    YUV is converted first, as 4:2:2 cannot be resized as it is.
    """
    kind = encoding_info(encoding).kind
    if kind == "yuv422":
        boxed = letterbox_cv2(to_rgb_cv2(img, encoding), width, height, pad)[0]
    else:
        boxed = to_rgb_cv2(letterbox_cv2(np.ascontiguousarray(img), width, height, pad)[0],
                           encoding)
    return normalise(boxed, mean, std)
