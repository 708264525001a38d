"""A bag's images through a real detector_node graph, deterministically (every frame answered).

`replay_through_detector` starts a `DetectorNode` (configured + activated here, as launch or
`edge-perception run` would) on its own executor thread, plays the bag with the deterministic
`BagPlayer` (each image waits for the node's RoadHazardArray with the same stamp) and returns
the player's `PlayStats`: `answers[i]` is the detector's message for image i, in bag order.
Used by `edge-perception bag eval --graph` and the replay regression test.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

from edge_perception.replay.bags import read_info
from edge_perception.replay.images import camera_info_topic

from .bag_player import PlayOptions, PlayStats, run_player
from .detector_node import DetectorNode

__all__ = ["hazards_to_rows", "replay_through_detector"]


def hazards_to_rows(msg: Any) -> np.ndarray:
    """A RoadHazardArray (or None: no answer) → (N, 6) float32 x1, y1, x2, y2, score, class."""
    if msg is None:
        return np.zeros((0, 6), np.float32)
    return np.array([(h.x_min, h.y_min, h.x_max, h.y_max, h.score, h.class_id)
                     for h in msg.hazards], np.float32).reshape(-1, 6)


def replay_through_detector(
    bag: Path,
    image_topic: str,
    params: Mapping[str, Any],
    context: Context,
    *,
    ack_timeout_s: float = 20.0,
    node_name: str = "detector_node",
) -> PlayStats:
    """Play `bag`'s `image_topic` (and its camera_info, when the bag has it) into a fresh
    detector node with `params` (image_topics is set to `image_topic`); rclpy must be
    initialised in `context`. Raises RuntimeError if the node fails to configure or activate
    (e.g. model file missing)."""
    overrides = {**params, "image_topics": [image_topic]}
    node = DetectorNode(node_name, context=context, parameter_overrides=[
        Parameter(k, value=v) for k, v in overrides.items()])
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True, name="detector-replay")
    thread.start()
    try:
        for step in (node.trigger_configure, node.trigger_activate):
            if step() != TransitionCallbackReturn.SUCCESS:
                raise RuntimeError(f"detector_node: {step.__name__} failed (see its log)")
        topics = [image_topic]
        info_topic = camera_info_topic(image_topic)
        if info_topic in read_info(bag).topics:
            topics.insert(0, info_topic)
        return run_player(PlayOptions(
            bag=Path(bag), topics=tuple(topics), deterministic=True,
            ack_topic=f"/{node_name}/hazards",
            ack_timeout_s=ack_timeout_s, wait_for_subscribers_s=15.0), context=context)
    finally:
        executor.shutdown(timeout_sec=2.0)
        thread.join(timeout=5.0)
        node.destroy_node()
