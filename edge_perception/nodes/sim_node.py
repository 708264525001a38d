"""sim_node: a simulated drive published as a camera, with ground truth (no Gazebo needed).

Publishes, per frame of `sim.SimDrive` (renderer, hazards at known positions): `/clock`
(optional, the frame's stamp), CameraInfo on the image topic's sibling `camera_info`, the
truth of every hazard in view as a RoadHazardArray on `/sim/ground_truth` (box = renderer's
truth box, position = near-edge centre in the vehicle frame, `range_m`, score 1,
`position_valid` = whole near edge in the image), then the Image, all with the same stamp.
`run()` plays the drive in the caller's thread while an executor spins the node elsewhere
(or, with `autostart`, on a thread of its own from construction);
with `ack_topic` set (e.g. /detector_node/hazards) each frame waits for the consumer's answer
with its stamp (or `ack_timeout_s`), so every frame is processed, like the bag player's
deterministic mode.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from edge_perception.replay.sync import StampWaiter
from edge_perception.sim.drive import SimConfig, SimDrive, SimFrame
from edge_perception_msgs.msg import RoadHazard, RoadHazardArray

from . import qos
from .bag_player import ACK_QOS, CLOCK_QOS
from .convert import calibration_to_camera_info, numpy_to_image, stamp_from_ns, stamp_to_ns
from .detector_params import mount_from, mount_specs
from .params import ParamSpec, declare_params
from .paths import resolve_path

__all__ = ["GROUND_TRUTH_TOPIC", "SPECS", "SimNode", "SimNodeConfig", "SimStats",
           "truth_to_msg"]

GROUND_TRUTH_TOPIC = "/sim/ground_truth"

SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("image_topic", "/camera/front/image_raw", "Image topic (CameraInfo on its "
              "sibling camera_info)", read_only=True),
    ParamSpec("camera_info_file", "config/camera_info_sim.yaml", "camera_info_manager YAML "
              "of the simulated camera", read_only=True),
    ParamSpec("scale", 1.0, "image size factor applied to the calibration", (0.05, 4.0),
              read_only=True),
    ParamSpec("frame_id", "camera_optical_frame", "header.frame_id of image and camera_info",
              read_only=True),
    ParamSpec("base_frame", "base_link", "vehicle frame of ground-truth positions",
              read_only=True),
    ParamSpec("fps", 10.0, "frames per second of drive time", (0.1, 240.0), read_only=True),
    ParamSpec("rate", 1.0, "playback speed factor; 0 = as fast as possible", (0.0, 100.0),
              read_only=True),
    ParamSpec("speed_mps", 10.0, "vehicle speed (m/s)", (0.0, 60.0), read_only=True),
    ParamSpec("start_x", 0.0, "vehicle start position along the road (m)", (-1e4, 1e4),
              read_only=True),
    ParamSpec("loop", False, "drive again from the start at the end", read_only=True),
    ParamSpec("publish_clock", False, "publish /clock; stamps are then drive time (from 1 s), "
              "else wall time at the start + drive time", read_only=True),
    ParamSpec("noise", True, "sensor noise on rendered frames", read_only=True),
    ParamSpec("seed", 0, "texture seed", (0, 1_000_000), read_only=True),
    ParamSpec("ack_topic", "", "wait for a RoadHazardArray with each frame's stamp here "
              "before the next frame (empty: free-running)", read_only=True),
    ParamSpec("ack_timeout_s", 5.0, "seconds to wait for each answer", (0.01, 600.0),
              read_only=True),
    ParamSpec("autostart", False, "play the drive on the node's own thread from construction "
              "(for hosts that only spin nodes, e.g. `edge-perception run`); else call run()",
              read_only=True),
    *mount_specs(x=1.9, pitch=0.087266, read_only=True),
)


@dataclass(frozen=True)
class SimNodeConfig:
    image_topic: str
    camera_info_file: str
    scale: float
    frame_id: str
    base_frame: str
    fps: float
    rate: float
    speed_mps: float
    start_x: float
    loop: bool
    publish_clock: bool
    noise: bool
    seed: int
    ack_topic: str
    ack_timeout_s: float
    autostart: bool
    camera_x: float
    camera_y: float
    camera_height: float
    camera_roll: float
    camera_pitch: float
    camera_yaw: float


@dataclass
class SimStats:
    frames: int = 0
    truths: int = 0  # ground-truth hazards published (summed over frames)
    acknowledged: int = 0
    unacknowledged: list[int] = field(default_factory=list)  # stamps (ns)
    elapsed_s: float = 0.0


def truth_to_msg(frame: SimFrame, stamp_ns: int, base_frame: str, camera_frame: str,
                 width: int, height: int) -> RoadHazardArray:
    out = RoadHazardArray(header=Header(stamp=stamp_from_ns(stamp_ns), frame_id=base_frame),
                          camera_frame_id=camera_frame, image_width=width,
                          image_height=height, model_id="ground_truth")
    for t in frame.truths:
        x1, y1, x2, y2 = (float(v) for v in t.box)
        h = RoadHazard(class_id=int(t.class_id), class_name=t.class_name, score=1.0,
                       x_min=x1, y_min=y1, x_max=x2, y_max=y2, position_valid=bool(t.visible),
                       range_m=float(t.range_m), bearing_rad=float(t.bearing_rad),
                       width_m=float(t.hazard.width_m))
        h.position.x, h.position.y, h.position.z = (float(v) for v in t.near_xyz)
        out.hazards.append(h)
    return out


class SimNode(Node):
    def __init__(self, node_name: str = "sim_node", *, stop: threading.Event | None = None,
                 **kwargs: Any) -> None:
        """`stop` (e.g. set by a signal handler) ends `run()`; a new Event if none."""
        super().__init__(node_name, **kwargs)
        cfg = self.config = declare_params(self, SPECS, SimNodeConfig)
        mount = mount_from(cfg)
        self.drive = SimDrive(SimConfig(
            camera_info_file=Path(resolve_path(cfg.camera_info_file)), mount=mount,
            scale=cfg.scale, speed_mps=cfg.speed_mps, fps=cfg.fps, start_x=cfg.start_x,
            seed=cfg.seed, noise=cfg.noise))
        base = cfg.image_topic.rsplit("/", 1)[0] if "/" in cfg.image_topic else ""
        self._image_pub = self.create_publisher(Image, cfg.image_topic, qos.camera_output())
        self._info_pub = self.create_publisher(CameraInfo, f"{base}/camera_info" if base
                                               else "camera_info", qos.camera_output())
        self._truth_pub = self.create_publisher(RoadHazardArray, GROUND_TRUTH_TOPIC,
                                                qos.hazards())
        self._clock_pub = (self.create_publisher(Clock, "/clock", CLOCK_QOS)
                           if cfg.publish_clock else None)
        self.waiter = StampWaiter()
        self._ack_sub = (self.create_subscription(
            RoadHazardArray, cfg.ack_topic, lambda m: self.waiter.notify(stamp_to_ns(
                m.header.stamp)), ACK_QOS) if cfg.ack_topic else None)
        self.stop_event = threading.Event() if stop is None else stop
        self.context.on_shutdown(self.stop_event.set)
        self.last_stats: SimStats | None = None
        self._thread: threading.Thread | None = None
        if cfg.autostart:
            self._thread = threading.Thread(target=self._autorun, daemon=True,
                                            name=f"{node_name}-drive")
            self._thread.start()

    def _autorun(self) -> None:
        if not self.wait_for_consumers(30.0):
            self.get_logger().warning("no subscriber on the image topic after 30 s; playing")
        self.last_stats = self.run()
        self.get_logger().info(f"drive done: {self.last_stats.frames} frames")

    def destroy_node(self) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        super().destroy_node()

    def wait_for_consumers(self, timeout_s: float) -> bool:
        """Until the image topic has a subscriber (and the ack topic a publisher)."""
        deadline = time.monotonic() + timeout_s
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            ack_ok = self._ack_sub is None or self._ack_sub.get_publisher_count() > 0
            if self._image_pub.get_subscription_count() > 0 and ack_ok:
                time.sleep(0.1)
                return True
            time.sleep(0.02)
        return False

    def run(self, max_frames: int = 0) -> SimStats:
        """Publish the drive (again and again with `loop`); stops on `stop_event` or after
        `max_frames` (0: no limit)."""
        cfg, stats = self.config, SimStats()
        n = len(self.drive)
        base_ns = (1_000_000_000 if cfg.publish_clock
                   else self.get_clock().now().nanoseconds)
        calib = self.drive.calibration
        t0 = time.monotonic()
        i = 0
        while not self.stop_event.is_set() and (cfg.loop or i < n):
            if max_frames and i >= max_frames:
                break
            frame = self.drive.frame(i % n)
            stamp = base_ns + round(i * 1e9 / cfg.fps)
            if cfg.rate > 0:
                self.stop_event.wait(max(0.0, t0 + i / cfg.fps / cfg.rate - time.monotonic()))
                if self.stop_event.is_set():
                    break
            if self._clock_pub is not None:
                clock = Clock()
                clock.clock = stamp_from_ns(stamp)
                self._clock_pub.publish(clock)
            self.waiter.discard(stamp)
            self._info_pub.publish(calibration_to_camera_info(calib, stamp, cfg.frame_id))
            self._truth_pub.publish(truth_to_msg(frame, stamp, cfg.base_frame, cfg.frame_id,
                                                 calib.width, calib.height))
            self._image_pub.publish(numpy_to_image(frame.image, stamp, cfg.frame_id))
            stats.frames += 1
            stats.truths += len(frame.truths)
            if self._ack_sub is not None:
                if self.waiter.wait(stamp, cfg.ack_timeout_s, self.stop_event):
                    stats.acknowledged += 1
                else:
                    stats.unacknowledged.append(stamp)
            i += 1
        stats.elapsed_s = time.monotonic() - t0
        return stats
