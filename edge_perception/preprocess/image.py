"""Zero-copy views of raw `sensor_msgs/Image` buffers and decoding of compressed images.

Nothing here knows about ROS messages: callers pass the header fields and the data buffer.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import ImageFormatError

__all__ = ["Encoding", "ENCODINGS", "encoding_info", "image_array", "decode_compressed"]


@dataclass(frozen=True)
class Encoding:
    """Memory layout of one pixel: bytes per pixel and where R, G, B (or Y, U, V) live.

    Packed encodings (kind "rgb") hold R, G, B at byte offsets `r`, `g`, `b` of each pixel (all
    three 0 for mono8). YUV 4:2:2 encodings (kind "yuv422") hold two pixels in four bytes; `r`,
    `g`, `b` are then the offsets of Y (within a pixel), U and V (within the 4-byte pair).
    """

    name: str
    bytes_per_pixel: int
    kind: str
    r: int
    g: int
    b: int


ENCODINGS: dict[str, Encoding] = {e.name: e for e in (
    Encoding("bgr8", 3, "rgb", 2, 1, 0),
    Encoding("rgb8", 3, "rgb", 0, 1, 2),
    Encoding("bgra8", 4, "rgb", 2, 1, 0),
    Encoding("rgba8", 4, "rgb", 0, 1, 2),
    Encoding("mono8", 1, "rgb", 0, 0, 0),
    # ROS "yuv422" is UYVY byte order (U0 Y0 V0 Y1); "yuv422_yuy2" and "yuyv" are Y0 U0 Y1 V0.
    Encoding("yuv422", 2, "yuv422", 1, 0, 2),
    Encoding("uyvy", 2, "yuv422", 1, 0, 2),
    Encoding("yuv422_yuy2", 2, "yuv422", 0, 1, 3),
    Encoding("yuyv", 2, "yuv422", 0, 1, 3),
)}


def encoding_info(encoding: str) -> Encoding:
    """The layout of a supported encoding, or ImageFormatError naming the supported ones."""
    try:
        return ENCODINGS[encoding]
    except (KeyError, TypeError):
        raise ImageFormatError(f"unsupported image encoding {encoding!r}; supported: "
                               f"{', '.join(ENCODINGS)}") from None


def image_array(height: int, width: int, step: int, encoding: str, data: object) -> np.ndarray:
    """A read-only (height, width, bytes_per_pixel) uint8 view of an Image buffer, no copy.

    Rows start every `step` bytes (trailing row padding is skipped). `data` may be bytes,
    bytearray, memoryview, array.array or a contiguous uint8 numpy array. Every field is checked
    against the others first, so the view never reaches past the buffer.
    """
    enc = encoding_info(encoding)
    try:
        height, width, step = (operator.index(v) for v in (height, width, step))
    except TypeError:
        raise ImageFormatError(f"height, width and step must be integers, got "
                               f"{height!r}, {width!r}, {step!r}") from None
    if height <= 0 or width <= 0:
        raise ImageFormatError(f"image size must be positive, got {width}x{height}")
    row = width * enc.bytes_per_pixel
    if step < row:
        raise ImageFormatError(f"step {step} is shorter than a row of {width} {encoding} "
                               f"pixels ({row} bytes)")
    if enc.kind == "yuv422" and width % 2:
        raise ImageFormatError(f"{encoding} needs an even width (pixel pairs), got {width}")
    buf = _byte_buffer(data)
    if buf.size < step * height:
        raise ImageFormatError(f"data holds {buf.size} bytes, {encoding} {width}x{height} "
                               f"with step {step} needs {step * height}")
    return np.lib.stride_tricks.as_strided(
        buf, shape=(height, width, enc.bytes_per_pixel), strides=(step, enc.bytes_per_pixel, 1),
        writeable=False)


def decode_compressed(fmt: str, data: object) -> np.ndarray:
    """Decode a CompressedImage payload (JPEG, PNG, anything OpenCV reads) to bgr8 (H, W, 3).

    `fmt` is the message's format string; depth images ("compressedDepth") are refused.
    """
    if "compresseddepth" in str(fmt).lower():
        raise ImageFormatError(f"format {fmt!r}: compressed depth images are not supported")
    buf = _byte_buffer(data)
    if buf.size == 0:
        raise ImageFormatError(f"empty compressed image (format {fmt!r})")
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as e:
        raise ImageFormatError(f"cannot decode {fmt!r} image: {e}") from None
    if img is None or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ImageFormatError(f"cannot decode {buf.size} bytes as a {fmt!r} image")
    return img


def _byte_buffer(data: object) -> np.ndarray:
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ImageFormatError(f"image data array must be uint8, got {data.dtype}")
        if not data.flags.c_contiguous:
            raise ImageFormatError("image data array must be contiguous")
        return data.reshape(-1)
    if isinstance(data, (str, int, float)) or data is None:
        raise ImageFormatError(f"image data must be a byte buffer, got {type(data).__name__}")
    try:
        return np.frombuffer(data, dtype=np.uint8)  # type: ignore[call-overload]
    except (TypeError, ValueError, BufferError) as e:
        raise ImageFormatError(f"image data is not a contiguous byte buffer "
                               f"({type(data).__name__}): {e}") from None
