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


# ---------------------------------------------------------------------------------------------
# Detector node conversions (issue 5): camera messages → validated arrays and intrinsics;
# pipeline results → RoadHazardArray / MarkerArray.
# ---------------------------------------------------------------------------------------------

from typing import Any  # noqa: E402

from builtin_interfaces.msg import Duration  # noqa: E402
from geometry_msgs.msg import Point  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from edge_perception.geometry import CameraIntrinsics  # noqa: E402
from edge_perception.preprocess import decode_compressed, image_array  # noqa: E402
from edge_perception_msgs.msg import RoadHazard, RoadHazardArray  # noqa: E402

__all__ += ["camera_info_to_intrinsics", "compressed_to_array", "hazards_to_msg",
            "image_msg_to_array", "markers_to_msg"]


def image_msg_to_array(msg: Image) -> tuple[np.ndarray, str]:
    """(read-only (H, W, C) view of msg.data, encoding), every header field checked against
    the buffer first; raises `ImageFormatError` (a ValueError) with a one-line reason."""
    return image_array(msg.height, msg.width, msg.step, msg.encoding, msg.data), msg.encoding


def compressed_to_array(msg: CompressedImage) -> tuple[np.ndarray, str]:
    """(decoded bgr8 (H, W, 3), "bgr8"); raises `ImageFormatError` on a corrupt payload."""
    return decode_compressed(msg.format, msg.data), "bgr8"


def camera_info_to_intrinsics(msg: CameraInfo) -> CameraIntrinsics | None:
    """Intrinsics from K, D and the distortion model; None for an uncalibrated camera (K = 0).
    Raises ValueError for an inconsistent message."""
    if len(msg.k) != 9:
        raise ValueError(f"CameraInfo K must have 9 values, got {len(msg.k)}")
    k = np.asarray(msg.k, np.float64).reshape(3, 3)
    if k[0, 0] == 0.0 and k[1, 1] == 0.0:
        return None
    return CameraIntrinsics(k, np.asarray(msg.d, np.float64), msg.distortion_model or "",
                            int(msg.width), int(msg.height))


def hazards_to_msg(result: Any, base_frame: str, model_id: str,
                   latency_s: float) -> RoadHazardArray:
    """A `perception.FrameResult` as RoadHazardArray stamped with the image's stamp."""
    frame, g = result.frame, result.ground
    out = RoadHazardArray(
        header=Header(stamp=stamp_from_ns(frame.stamp_ns), frame_id=base_frame),
        camera_frame_id=frame.frame_id, image_width=frame.width, image_height=frame.height,
        model_id=model_id, latency_s=float(latency_s))
    for i, d in enumerate(result.detections):
        out.hazards.append(RoadHazard(
            class_id=int(d.class_id), class_name=d.class_name, score=float(d.score),
            x_min=float(d.x1), y_min=float(d.y1), x_max=float(d.x2), y_max=float(d.y2),
            position_valid=bool(g.valid[i]),
            position=Point(x=float(g.xyz[i, 0]), y=float(g.xyz[i, 1]), z=float(g.xyz[i, 2])),
            range_m=float(g.range_m[i]), bearing_rad=float(g.bearing_rad[i]),
            width_m=float(g.width_m[i]), range_sigma_m=float(g.range_sigma_m[i]),
            lateral_sigma_m=float(g.lateral_sigma_m[i])))
    return out


def markers_to_msg(markers: list[Any], stamp_ns: int, frame_id: str, namespace: str,
                   lifetime_s: float = 0.5) -> MarkerArray:
    """`publish.MarkerData` items as a MarkerArray that first deletes the namespace's old
    markers (so hazards that disappeared do not linger)."""
    header = Header(stamp=stamp_from_ns(stamp_ns), frame_id=frame_id)
    life = Duration(sec=int(lifetime_s), nanosec=int((lifetime_s % 1.0) * 1e9))
    out = MarkerArray(markers=[Marker(header=header, ns=namespace, action=Marker.DELETEALL)])
    for m in markers:
        mk = Marker(header=header, ns=namespace, id=m.id, action=Marker.ADD, lifetime=life,
                    type=Marker.CYLINDER if m.kind == "cylinder" else Marker.TEXT_VIEW_FACING,
                    text=m.text)
        mk.pose.position = Point(x=m.position[0], y=m.position[1], z=m.position[2])
        mk.pose.orientation.w = 1.0
        mk.scale.x, mk.scale.y, mk.scale.z = m.scale
        mk.color.r, mk.color.g, mk.color.b, mk.color.a = m.rgba
        out.markers.append(mk)
    return out
