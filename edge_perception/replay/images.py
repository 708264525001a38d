"""Images in bags as numpy: read a bag's frames in order, write a bag of frames at a rate.

`iter_images` is what `bag eval` and the regression test consume: every frame of one image
topic in log-time order, deserialised to an array (H×W or H×W×C) with its header stamp and
encoding, no rclpy needed. `write_image_bag` builds a bag from image files or arrays with
stamps spaced at `rate_hz` (bgr8 `sensor_msgs/Image`, plus `CameraInfo` when given).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .bags import DEFAULT_QOS, BagWriter, iter_raw, read_info
from .typestore import make_typestore

__all__ = [
    "IMAGE_TYPES",
    "DEFAULT_START_NS",
    "ImageFrame",
    "array_to_image_msg",
    "camera_info_topic",
    "image_msg_to_array",
    "image_topics",
    "iter_images",
    "write_image_bag",
]

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = (IMAGE, COMPRESSED)
DEFAULT_START_NS = 1_704_067_200 * 1_000_000_000  # 2024-01-01T00:00:00Z: fixed, reproducible

# encoding → (numpy dtype, channels)
_ENCODINGS: dict[str, tuple[str, int]] = {
    "mono8": ("u1", 1), "8UC1": ("u1", 1), "bgr8": ("u1", 3), "rgb8": ("u1", 3),
    "8UC3": ("u1", 3), "bgra8": ("u1", 4), "rgba8": ("u1", 4), "8UC4": ("u1", 4),
    "mono16": ("u2", 1), "16UC1": ("u2", 1), "bgr16": ("u2", 3), "rgb16": ("u2", 3),
    "32FC1": ("f4", 1), "32FC3": ("f4", 3),
}  # fmt: skip


@dataclass(frozen=True)
class ImageFrame:
    """One image from a bag; `index` counts frames on its topic from 0."""

    index: int
    topic: str
    stamp_ns: int
    log_time_ns: int
    frame_id: str
    encoding: str
    image: np.ndarray


def image_msg_to_array(msg: Any, msgtype: str = IMAGE) -> tuple[np.ndarray, str]:
    """A rosbags Image/CompressedImage → (array, encoding); compressed frames decode to bgr8."""
    if msgtype == COMPRESSED:
        image = cv2.imdecode(np.asarray(msg.data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError(f"cannot decode a CompressedImage of format {msg.format!r}")
        return image, "bgr8" if image.ndim == 3 else "mono8"
    if msg.encoding not in _ENCODINGS:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}")
    kind, channels = _ENCODINGS[msg.encoding]
    dtype = np.dtype(kind).newbyteorder(">" if msg.is_bigendian else "<")
    h, w = int(msg.height), int(msg.width)
    row = w * channels * dtype.itemsize
    raw = np.asarray(msg.data, dtype=np.uint8)
    if raw.size < h * msg.step or msg.step < row:
        raise ValueError(f"image data of {raw.size} bytes is too short for {h}x{msg.step}")
    rows = raw[: h * msg.step].reshape(h, msg.step)[:, :row]
    image = np.ascontiguousarray(rows).view(dtype).astype(dtype.newbyteorder("="))
    shape = (h, w) if channels == 1 else (h, w, channels)
    return image.reshape(shape), str(msg.encoding)


def array_to_image_msg(
    typestore: Any, image: np.ndarray, stamp_ns: int, frame_id: str, encoding: str = "bgr8"
) -> Any:
    """A numpy image → a rosbags sensor_msgs/Image (dense rows, little-endian)."""
    kind, channels = _ENCODINGS[encoding]
    image = np.ascontiguousarray(image, dtype=np.dtype(kind))
    if image.ndim != (2 if channels == 1 else 3) or (channels > 1 and image.shape[2] != channels):
        raise ValueError(f"shape {image.shape} does not fit encoding {encoding}")
    t = typestore.types
    header = t["std_msgs/msg/Header"](
        stamp=t["builtin_interfaces/msg/Time"](
            sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000
        ),
        frame_id=frame_id,
    )
    h, w = image.shape[:2]
    return t[IMAGE](
        header=header, height=h, width=w, encoding=encoding, is_bigendian=0,
        step=w * channels * image.itemsize, data=image.reshape(-1).view(np.uint8),
    )  # fmt: skip


def _camera_info_msg(
    typestore: Any, info: Mapping[str, Any], header: Any, width: int, height: int
) -> Any:
    t = typestore.types
    k = np.asarray(info["k"], dtype=np.float64).reshape(9)
    p_default = np.concatenate([k.reshape(3, 3), np.zeros((3, 1))], axis=1).reshape(12)
    roi = t["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return t[CAMERA_INFO](
        header=header,
        height=int(info.get("height", height)),
        width=int(info.get("width", width)),
        distortion_model=str(info.get("distortion_model", "plumb_bob")),
        d=np.asarray(info.get("d", [0.0] * 5), dtype=np.float64),
        k=k,
        r=np.asarray(info.get("r", np.eye(3)), dtype=np.float64).reshape(9),
        p=np.asarray(info.get("p", p_default), dtype=np.float64).reshape(12),
        binning_x=int(info.get("binning_x", 0)),
        binning_y=int(info.get("binning_y", 0)),
        roi=roi,
    )


def camera_info_topic(image_topic: str) -> str:
    """The image_transport sibling: /camera/image_raw → /camera/camera_info."""
    head = image_topic.rsplit("/", 1)[0]
    return f"{head}/camera_info"


def _load(item: np.ndarray | str | Path) -> np.ndarray:
    if isinstance(item, np.ndarray):
        return item
    image = cv2.imread(str(item), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read image {item}")
    return image


def write_image_bag(
    images: Iterable[np.ndarray | str | Path],
    out: Path | str,
    rate_hz: float = 10.0,
    storage: str = "mcap",
    topic: str = "/camera/image_raw",
    frame_id: str = "camera_optical_frame",
    camera_info: Mapping[str, Any] | None = None,
    start_ns: int = DEFAULT_START_NS,
    encoding: str = "bgr8",
) -> Path:
    """Write `images` (BGR arrays or image files, in order) as a bag at `rate_hz`.

    Frame i has header stamp and log time `start_ns + i / rate_hz`. `camera_info` (ROS
    CameraInfo field names: k, d, r, p, distortion_model, width, height; only k required)
    adds a CameraInfo with the same stamp on `camera_info_topic(topic)`. Topics are offered
    reliable/keep-last-10 so a player serves both reliable and best-effort subscribers.
    Returns the bag folder.
    """
    if rate_hz <= 0:
        raise ValueError("rate_hz must be positive")
    out = Path(out)
    typestore = make_typestore(())
    period_ns = round(1e9 / rate_hz)
    info_topic = camera_info_topic(topic)
    with BagWriter(out, storage=storage, typestore=typestore) as bag:
        bag.add_topic(topic, IMAGE, [DEFAULT_QOS])
        if camera_info is not None:
            bag.add_topic(info_topic, CAMERA_INFO, [DEFAULT_QOS])
        for i, item in enumerate(images):
            stamp = start_ns + i * period_ns
            msg = array_to_image_msg(typestore, _load(item), stamp, frame_id, encoding)
            if camera_info is not None:  # first, so a consumer has it before the image
                info = _camera_info_msg(typestore, camera_info, msg.header, msg.width, msg.height)
                bag.write_msg(info_topic, stamp, info)
            bag.write_msg(topic, stamp, msg)
    return out


def image_topics(path: Path | str) -> list[str]:
    """Topics of a bag that carry Image or CompressedImage messages."""
    return [t.name for t in read_info(path).topics.values() if t.msgtype in IMAGE_TYPES]


def iter_images(path: Path | str, topic: str | None = None) -> Iterator[ImageFrame]:
    """Every frame on `topic` (the bag's only image topic when None) in log-time order."""
    if topic is None:
        topics: Sequence[str] = image_topics(path)
        if len(topics) != 1:
            raise ValueError(f"{path}: pick an image topic among {list(topics)}")
        topic = topics[0]
    typestore = make_typestore(())
    for index, raw in enumerate(iter_raw(path, [topic])):
        msg = typestore.deserialize_cdr(raw.data, raw.msgtype)
        image, encoding = image_msg_to_array(msg, raw.msgtype)
        stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        yield ImageFrame(
            index, topic, stamp, raw.log_time_ns, str(msg.header.frame_id), encoding, image
        )
