"""The debug image: the camera frame with each hazard's box, class, score and distance."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge_perception.detect.types import Detection
from edge_perception.geometry import GroundEstimates
from edge_perception.preprocess import encoding_info

__all__ = ["CLASS_COLOURS", "draw_hazards", "to_bgr"]

CLASS_COLOURS: tuple[tuple[int, int, int], ...] = ((0, 0, 255), (0, 200, 255), (255, 128, 0))

_TO_BGR = {
    "rgb8": cv2.COLOR_RGB2BGR, "bgra8": cv2.COLOR_BGRA2BGR, "rgba8": cv2.COLOR_RGBA2BGR,
    "mono8": cv2.COLOR_GRAY2BGR, "yuv422": cv2.COLOR_YUV2BGR_UYVY,
    "uyvy": cv2.COLOR_YUV2BGR_UYVY, "yuv422_yuy2": cv2.COLOR_YUV2BGR_YUY2,
    "yuyv": cv2.COLOR_YUV2BGR_YUY2,
}


def to_bgr(image: np.ndarray, encoding: str) -> np.ndarray:
    """A new contiguous bgr8 (H, W, 3) copy of an (H, W, C) image in a supported encoding."""
    enc = encoding_info(encoding)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] != enc.bytes_per_pixel:
        raise ValueError(f"{encoding} image needs {enc.bytes_per_pixel} channels, "
                         f"got {image.shape}")
    if encoding == "bgr8":
        return np.array(image, np.uint8, order="C")
    src = np.ascontiguousarray(image)
    if enc.kind == "yuv422":
        src = src.reshape(src.shape[0], src.shape[1], 2)
    elif encoding == "mono8":
        src = src[:, :, 0]
    return cv2.cvtColor(src, _TO_BGR[encoding])


def draw_hazards(image_bgr: np.ndarray, detections: Sequence[Detection],
                 ground: GroundEstimates | None = None) -> np.ndarray:
    """Draw on `image_bgr` in place (and return it): box, "class score" and, where the
    position is valid, the range in metres."""
    h = image_bgr.shape[0]
    scale = max(0.4, h / 1000.0)
    thick = max(1, round(h / 360))
    for i, d in enumerate(detections):
        colour = CLASS_COLOURS[d.class_id % len(CLASS_COLOURS)]
        p1 = (int(round(d.x1)), int(round(d.y1)))
        p2 = (int(round(d.x2)), int(round(d.y2)))
        cv2.rectangle(image_bgr, p1, p2, colour, thick, cv2.LINE_AA)
        label = f"{d.class_name} {d.score:.2f}"
        if ground is not None and i < len(ground) and ground.valid[i]:
            label += f" {ground.range_m[i]:.1f} m"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        y = p1[1] - base if p1[1] - th - base >= 0 else p2[1] + th + base
        cv2.rectangle(image_bgr, (p1[0], y - th - base), (p1[0] + tw, y + base), colour, -1)
        cv2.putText(image_bgr, label, (p1[0], y), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thick, cv2.LINE_AA)
    return image_bgr
