"""Bag recorder node: subscribe to topics as raw CDR and write them to a rosbag2 bag.

Topics are discovered every `discovery_period_s` (new publishers join the recording); each
subscription takes the QoS its publishers offer (reliable only if all are, as rosbag2 does)
and the publishers' profiles go into the bag's metadata. Log time is the node clock at
reception. `close()` finalises the bag; call it on every exit path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from rclpy.context import Context
from rclpy.node import Node

from edge_perception.nodes.bag_convert import msg_class, qos_from_rclpy, qos_to_rclpy
from edge_perception.replay.bags import BagWriter, UnknownTypeError, adapt_qos

__all__ = ["RecordOptions", "BagRecorder"]


@dataclass(frozen=True)
class RecordOptions:
    output: Path
    topics: tuple[str, ...] = ()  # empty: every topic with a publisher
    storage: str = "mcap"
    duration_s: float | None = None
    discovery_period_s: float = 0.2
    exclude: tuple[str, ...] = ()
    custom_data: Mapping[str, str] = field(default_factory=dict)


class BagRecorder(Node):
    def __init__(
        self, options: RecordOptions, *, context: Context | None = None, name: str = "bag_recorder"
    ) -> None:
        super().__init__(name, context=context)
        self.options = options
        self.writer = BagWriter(
            options.output, storage=options.storage, custom_data=options.custom_data
        ).open()
        self._subs: dict[str, object] = {}
        self._skipped: set[str] = set()
        self._started = time.monotonic()
        self._lock = threading.Lock()  # discovery vs close, under any executor
        self._closed = False
        self._discover()
        self._timer = self.create_timer(options.discovery_period_s, self._discover)

    def _wanted(self, topic: str) -> bool:
        if self.options.topics:
            return topic in self.options.topics
        hidden = any(part.startswith("_") for part in topic.split("/"))
        return not hidden and topic not in self.options.exclude

    def _discover(self) -> None:
        with self._lock:
            if not self._closed:
                self._discover_locked()

    def _discover_locked(self) -> None:
        for topic, types in self.get_topic_names_and_types():
            if topic in self._subs or topic in self._skipped or not self._wanted(topic):
                continue
            infos = self.get_publishers_info_by_topic(topic)
            infos = [i for i in infos if i.node_name != self.get_name()]
            if not infos:
                continue  # no publisher yet: no QoS to match; look again later
            msgtype = types[0]
            offered = [qos_from_rclpy(i.qos_profile) for i in infos]
            try:
                cls = msg_class(msgtype)
                self.writer.add_topic(topic, msgtype, offered)
            except (ImportError, AttributeError, ValueError, UnknownTypeError) as exc:
                self.get_logger().warning(f"not recording {topic} ({msgtype}): {exc}")
                self._skipped.add(topic)
                continue
            qos = qos_to_rclpy(adapt_qos(offered))
            self._subs[topic] = self.create_subscription(
                cls, topic, partial(self._on_message, topic), qos, raw=True
            )
            self.get_logger().info(f"recording {topic} ({msgtype})")

    def _on_message(self, topic: str, data: bytes) -> None:
        self.writer.write(topic, self.get_clock().now().nanoseconds, data)

    @property
    def done(self) -> bool:
        limit = self.options.duration_s
        return limit is not None and time.monotonic() - self._started >= limit

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.writer.counts)

    def close(self) -> None:
        """Stop subscribing and finalise the bag (metadata, index); idempotent."""
        with self._lock:
            self._closed = True
        self._timer.cancel()
        for sub in self._subs.values():
            self.destroy_subscription(sub)  # type: ignore[arg-type]
        self._subs.clear()
        self.writer.close()
