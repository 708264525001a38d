"""The one place where ROS messages meet numpy arrays and edge_perception dataclasses.

Images: `numpy_to_image` hands the frame's own buffer to the message (rclpy then copies it
once, into the outgoing DDS sample: the minimum rclpy allows); `image_to_numpy` returns a
read-only view on the received message's buffer, no copy.
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from edge_perception.capture.calibration import CameraCalibration, parse_calibration

__all__ = [
    "calibration_to_camera_info", "camera_info_to_calibration", "image_to_numpy",
    "numpy_to_image", "stamp_from_ns", "stamp_to_ns",
]

_CHANNELS = {"bgr8": 3, "rgb8": 3, "mono8": 1, "bgra8": 4, "rgba8": 4}


def stamp_from_ns(ns: int) -> Time:
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def stamp_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def numpy_to_image(frame: np.ndarray, stamp_ns: int, frame_id: str,
                   encoding: str = "bgr8") -> Image:
    """An `Image` whose data is `frame`'s buffer (made C-contiguous only if it is not)."""
    channels = _CHANNELS.get(encoding)
    if channels is None:
        raise ValueError(f"unsupported encoding {encoding!r}")
    if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or \
            (frame.shape[2] if frame.ndim == 3 else 1) != channels:
        shape = f"HxWx{channels}" if channels > 1 else "HxW"
        raise ValueError(f"{encoding} needs a uint8 {shape} array, got {frame.dtype} "
                         f"{frame.shape}")
    frame = np.ascontiguousarray(frame)
    h, w = frame.shape[:2]
    msg = Image(header=Header(stamp=stamp_from_ns(stamp_ns), frame_id=frame_id), height=h,
                width=w, encoding=encoding, is_bigendian=0, step=w * channels)
    # The generated `data` setter copies element by element (array.array('B', ndarray));
    # the C converter accepts any buffer, so set the slot directly: no Python-side copy.
    msg._data = frame.reshape(-1)  # noqa: SLF001
    return msg


def image_to_numpy(msg: Image) -> np.ndarray:
    """HxWxC (or HxW for mono8) uint8 view of `msg.data`; raises ValueError if inconsistent."""
    channels = _CHANNELS.get(msg.encoding)
    if channels is None:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if step < w * channels or buf.size < h * step:
        raise ValueError(f"image {w}x{h} {msg.encoding} step {step} has {buf.size} bytes")
    rows = buf[: h * step].reshape(h, step)[:, : w * channels]
    return rows.reshape(h, w, channels) if channels > 1 else rows


def calibration_to_camera_info(calib: CameraCalibration, stamp_ns: int,
                               frame_id: str) -> CameraInfo:
    return CameraInfo(
        header=Header(stamp=stamp_from_ns(stamp_ns), frame_id=frame_id),
        height=calib.height, width=calib.width, distortion_model=calib.distortion_model,
        d=[float(v) for v in calib.D], k=[float(v) for v in calib.K.reshape(-1)],
        r=[float(v) for v in calib.R.reshape(-1)], p=[float(v) for v in calib.P.reshape(-1)])


def camera_info_to_calibration(msg: CameraInfo, camera_name: str = "") -> CameraCalibration:
    """Inverse of `calibration_to_camera_info` (validated like a calibration file)."""
    mat = lambda rows, cols, data: {"rows": rows, "cols": cols, "data": list(data)}  # noqa: E731
    return parse_calibration({
        "image_width": msg.width, "image_height": msg.height, "camera_name": camera_name,
        "distortion_model": msg.distortion_model,
        "camera_matrix": mat(3, 3, msg.k), "distortion_coefficients": mat(1, len(msg.d), msg.d),
        "rectification_matrix": mat(3, 3, msg.r), "projection_matrix": mat(3, 4, msg.p),
    }, source="CameraInfo")
