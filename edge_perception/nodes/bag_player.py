"""Bag player node: publish a bag's raw CDR messages with their original timing.

`play()` runs in the caller's thread while an executor spins the node elsewhere (for the
acknowledgement subscription); `run_player` does both. In deterministic mode every image is
published only after the previous one was answered: the consumer publishes its output (by
default a RoadHazardArray on /road_hazards) with `header.stamp` equal to the image's, and the
player waits for that stamp (or `ack_timeout_s`, counted in `PlayStats.unacknowledged`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from edge_perception.nodes.bag_convert import msg_class, qos_to_rclpy, stamp_ns
from edge_perception.nodes.entry import is_normal_stop
from edge_perception.replay.bags import adapt_qos, header_stamp_ns, iter_raw, read_info
from edge_perception.replay.images import IMAGE_TYPES
from edge_perception.replay.sync import Pacer, StampWaiter
from edge_perception.replay.typestore import make_typestore

__all__ = ["PlayOptions", "PlayStats", "BagPlayer", "run_player", "ACK_QOS", "CLOCK_QOS"]

ACK_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)  # fmt: skip
# Reliable matches both reliable and best-effort /clock subscribers (rclpy's TimeSource).
FLUSH_TIMEOUT = Duration(nanoseconds=50_000_000)
CLOCK_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE
)


@dataclass(frozen=True)
class PlayOptions:
    bag: Path
    rate: float = 1.0
    loops: int = 1  # 0: forever
    start_offset_s: float = 0.0
    clock_hz: float = 0.0  # 0: no /clock
    topics: tuple[str, ...] | None = None  # None: all topics of the bag
    remap: Mapping[str, str] = field(default_factory=dict)
    deterministic: bool = False
    ack_topic: str = "/road_hazards"
    ack_type: str = "edge_perception_msgs/msg/RoadHazardArray"
    ack_timeout_s: float = 5.0
    wait_for_subscribers_s: float = 0.0  # wait for a subscriber on every topic first


@dataclass
class PlayStats:
    published: int = 0
    images: int = 0
    acknowledged: int = 0
    unacknowledged: list[int] = field(default_factory=list)  # image stamps (ns)
    loops: int = 0
    max_late_s: float = 0.0
    elapsed_s: float = 0.0
    matched: bool = True  # subscribers (and the ack publisher) found in time
    # deterministic mode: the consumer's answer for each image played, in play order
    # (None where it timed out) - e.g. the detector's RoadHazardArray per frame
    answers: list[Any] = field(default_factory=list)


class BagPlayer(Node):
    def __init__(
        self,
        options: PlayOptions,
        *,
        context: Context | None = None,
        name: str = "bag_player",
        stop: threading.Event | None = None,
    ) -> None:
        super().__init__(name, context=context)
        self.options = options
        self.info = read_info(options.bag)
        topics = self.info.topics
        wanted = list(topics) if options.topics is None else list(options.topics)
        missing = [t for t in wanted if t not in topics]
        if missing:
            raise ValueError(f"{options.bag} has no topic {missing}; it has {list(topics)}")
        self.topics = wanted
        self.typestore = make_typestore(())
        self.publishers_ = {
            t: self.create_publisher(
                msg_class(topics[t].msgtype),
                options.remap.get(t, t),
                qos_to_rclpy(adapt_qos(topics[t].qos)),
            )
            for t in wanted
        }
        self.clock_pub = (
            self.create_publisher(Clock, "/clock", CLOCK_QOS) if options.clock_hz > 0 else None
        )
        self.waiter = StampWaiter()
        self.ack_sub = None
        if options.deterministic:
            self.ack_sub = self.create_subscription(
                msg_class(options.ack_type),
                options.ack_topic,
                self._on_answer,
                ACK_QOS,
            )
        self._answers: dict[int, Any] = {}
        self._unflushed: set[str] = set()
        self._answers_lock = threading.Lock()
        self.stop_event = threading.Event() if stop is None else stop
        # Ctrl-C / SIGTERM shut the context down (rclpy's handlers): stop playing then.
        self.context.on_shutdown(self.stop_event.set)

    def _on_answer(self, msg: Any) -> None:
        stamp = stamp_ns(msg)
        with self._answers_lock:
            self._answers[stamp] = msg
        self.waiter.notify(stamp)

    def _image_topics(self) -> list[str]:
        return [t for t in self.topics if self.info.topics[t].msgtype in IMAGE_TYPES]

    def wait_for_consumers(self, timeout_s: float) -> bool:
        """Until every image topic (every topic, in a bag without images) has a subscriber
        and the ack topic (deterministic mode) a publisher; False after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        need = self._image_topics() or self.topics
        while not self.stop_event.is_set():
            subs_ok = all(self.publishers_[t].get_subscription_count() > 0 for t in need)
            ack_ok = self.ack_sub is None or self.ack_sub.get_publisher_count() > 0
            if subs_ok and ack_ok:
                time.sleep(0.1)  # let the other side finish matching too
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return False

    def _publish(self, topic: str, data: bytes) -> bool:
        """Publish; False (and stop) if the context went down meanwhile."""
        try:
            self.publishers_[topic].publish(data)
        except Exception:
            if self.context.ok():
                raise
            self.stop_event.set()
            return False
        return True

    def _publish_clock(self, bag_ns: int) -> None:
        if self.clock_pub is not None and not self.stop_event.is_set():
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(bag_ns, 1_000_000_000)
            try:
                self.clock_pub.publish(msg)
            except Exception:
                if self.context.ok():
                    raise
                self.stop_event.set()

    def play(self) -> PlayStats:
        """Publish the bag (looping as asked) and return what happened; stops on stop_event."""
        opts = self.options
        stats = PlayStats()
        wait_s = opts.wait_for_subscribers_s or (10.0 if opts.deterministic else 0.0)
        if wait_s > 0 and not self.wait_for_consumers(wait_s):
            stats.matched = False
            self.get_logger().error("no consumer matched in time; not playing")
            return stats
        start = self.info.start_ns + round(opts.start_offset_s * 1e9)
        pacer = Pacer(opts.rate)
        period = 1.0 / opts.clock_hz if opts.clock_hz > 0 else 0.0
        tick = self._publish_clock if self.clock_pub is not None else None
        images = set(self._image_topics())
        t0 = time.monotonic()
        while not self.stop_event.is_set() and (opts.loops == 0 or stats.loops < opts.loops):
            first, complete = True, True
            for msg in iter_raw(opts.bag, self.topics, start_ns=start):
                if self.stop_event.is_set():
                    complete = False
                    break
                if first:
                    pacer.anchor(msg.log_time_ns)
                    first = False
                late = pacer.sleep_until(msg.log_time_ns, tick, period, self.stop_event)
                if self.stop_event.is_set():
                    complete = False
                    break
                stats.max_late_s = max(stats.max_late_s, late)
                self._publish_clock(msg.log_time_ns)
                stamp = None
                if opts.deterministic and msg.topic in images:
                    stamp = header_stamp_ns(self.typestore, msg.msgtype, msg.data)
                    self._flush_others()
                    self.waiter.discard(stamp)
                    with self._answers_lock:
                        self._answers.pop(stamp, None)
                if not self._publish(msg.topic, msg.data):
                    complete = False
                    break
                if msg.topic not in images:
                    self._unflushed.add(msg.topic)
                stats.published += 1
                stats.images += msg.topic in images
                if stamp is not None:
                    answered = self.waiter.wait(stamp, opts.ack_timeout_s, self.stop_event)
                    with self._answers_lock:
                        stats.answers.append(self._answers.pop(stamp, None))
                    if answered:
                        stats.acknowledged += 1
                    else:
                        stats.unacknowledged.append(stamp)
                        self.get_logger().warning(f"no answer for image stamp {stamp} ns")
                    pacer.anchor(msg.log_time_ns)  # keep the gaps, not the lost time
            if first:
                break  # nothing to play (offset past the end)
            stats.loops += complete
        stats.elapsed_s = time.monotonic() - t0
        return stats

    def _flush_others(self) -> None:
        """Deterministic mode: let what was published since the last image (camera_info)
        reach the consumer first, so it sees the same inputs every run. Reliable readers
        acknowledge at the writer's next heartbeat, which can be slow across processes, so
        the wait is bounded (FLUSH_TIMEOUT) and then falls back on the delay it gave."""
        for topic in self._unflushed:
            pub = self.publishers_[topic]
            if pub.get_subscription_count() > 0:
                pub.wait_for_all_acked(FLUSH_TIMEOUT)
        self._unflushed.clear()


def _spin(executor: SingleThreadedExecutor) -> None:
    try:
        executor.spin()
    except BaseException as e:
        if not is_normal_stop(e):  # Ctrl-C: play() sees stop_event
            raise


def run_player(
    options: PlayOptions,
    context: Context | None = None,
    stop: threading.Event | None = None,
) -> PlayStats:
    """Create a player, spin it in a background thread, play, clean up; rclpy must be init.
    Setting `stop` (e.g. from a signal handler) ends playback early with the stats so far."""
    node = BagPlayer(options, context=context, stop=stop)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=_spin, args=(executor,), daemon=True)
    thread.start()
    try:
        return node.play()
    finally:
        node.stop_event.set()
        executor.shutdown(timeout_sec=1.0)
        thread.join(timeout=2.0)
        node.destroy_node()
