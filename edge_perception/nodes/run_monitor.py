"""What `edge-perception run` shows: frames per second, every hazard as it is published, and
at the end a PNG strip of annotated frames (from the detector's debug image)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image

from edge_perception.publish.draw import to_bgr
from edge_perception.publish.strip import pick_frames, tile

from .convert import image_msg_to_array, stamp_to_ns
from .qos import hazards as hazards_qos
from .qos import sensor_input

__all__ = ["RunMonitor"]


class RunMonitor(Node):
    """Counts camera frames (raw, not deserialized), prints hazards, keeps debug frames."""

    def __init__(self, image_topic: str, hazards_topic: str | None, debug_topic: str | None,
                 keep: int = 120, quiet: bool = False) -> None:
        super().__init__("edge_perception_launcher")
        self.frames = 0
        self.hazard_msgs = 0
        self.hazards = 0
        self._quiet = quiet
        self._lock = threading.Lock()
        self._debug: dict[int, np.ndarray] = {}
        self._counts: dict[int, int] = {}
        self._keep = keep
        self.create_subscription(Image, image_topic, self._on_frame, sensor_input(), raw=True)
        if hazards_topic:
            from edge_perception_msgs.msg import RoadHazardArray

            self.create_subscription(RoadHazardArray, hazards_topic, self._on_hazards,
                                     hazards_qos())
        if debug_topic:
            self.create_subscription(Image, debug_topic, self._on_debug, sensor_input())

    def _on_frame(self, _msg: bytes) -> None:
        with self._lock:
            self.frames += 1

    def _on_hazards(self, msg: Any) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        with self._lock:
            self.hazard_msgs += 1
            self.hazards += len(msg.hazards)
            self._counts[stamp] = len(msg.hazards)
        if self._quiet:
            return
        for h in msg.hazards:
            where = (f"{h.range_m:5.1f} m ahead, {np.degrees(h.bearing_rad):+5.1f} deg"
                     if h.position_valid else "off the ground plane")
            print(f"  hazard {h.class_name:<10} score {h.score:.2f}  {where}  "
                  f"box [{h.x_min:.0f} {h.y_min:.0f} {h.x_max:.0f} {h.y_max:.0f}]", flush=True)

    def _on_debug(self, msg: Image) -> None:
        try:
            arr, enc = image_msg_to_array(msg)
            bgr = to_bgr(arr, enc)
        except ValueError:
            return
        with self._lock:
            self._debug[stamp_to_ns(msg.header.stamp)] = bgr
            while len(self._debug) > self._keep:
                self._debug.pop(min(self._debug))

    def write_strip(self, path: Path, k: int = 6) -> Path | None:
        """Tile the debug frames with the most hazards; None if no debug frame arrived."""
        with self._lock:
            stamps = sorted(self._debug)
            frames = [self._debug[s] for s in stamps]
            counts = [self._counts.get(s, 0) for s in stamps]
        if not frames:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), tile([frames[i] for i in pick_frames(counts, k)]))
        return path
