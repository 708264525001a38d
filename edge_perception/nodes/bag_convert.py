"""rclpy ↔ rosbags conversions for the bag recorder and player: QoS, message classes, stamps."""

from __future__ import annotations

import importlib
from typing import Any

from rclpy.duration import Duration
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)

__all__ = ["msg_class", "qos_from_rclpy", "qos_to_rclpy", "stamp_ns"]

_INFINITE_NS = 0x7FFFFFFFFFFFFFFF  # RMW_DURATION_INFINITE


def msg_class(msgtype: str) -> type:
    """`pkg/msg/Name` → the generated Python class (ImportError/AttributeError if absent)."""
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def _time(d: Duration) -> QosTime:
    ns = d.nanoseconds
    if ns >= _INFINITE_NS:  # rosbag2 writes "infinite" as the largest sec/nsec pair
        return QosTime(0x7FFFFFFF, 0xFFFFFFFF)
    return QosTime(ns // 1_000_000_000, ns % 1_000_000_000)


def _duration(t: QosTime) -> Duration:
    if t.sec >= 0x7FFFFFFF:
        return Duration(nanoseconds=_INFINITE_NS)
    return Duration(seconds=t.sec, nanoseconds=t.nsec)


def _enum(cls: Any, value: int, default: Any) -> Any:
    try:
        return cls(value)
    except ValueError:
        return default


def qos_from_rclpy(q: QoSProfile) -> Qos:
    """A live endpoint's profile → the rosbags profile stored in the bag's metadata."""
    return Qos(
        history=_enum(QosHistory, int(q.history), QosHistory.UNKNOWN),
        depth=int(q.depth),
        reliability=_enum(QosReliability, int(q.reliability), QosReliability.UNKNOWN),
        durability=_enum(QosDurability, int(q.durability), QosDurability.UNKNOWN),
        deadline=_time(q.deadline),
        lifespan=_time(q.lifespan),
        liveliness=_enum(QosLiveliness, int(q.liveliness), QosLiveliness.UNKNOWN),
        liveliness_lease_duration=_time(q.liveliness_lease_duration),
        avoid_ros_namespace_conventions=bool(q.avoid_ros_namespace_conventions),
    )


def qos_to_rclpy(q: Qos) -> QoSProfile:
    """A stored profile → an rclpy profile (history, depth, reliability, durability)."""
    keep_all = q.history == QosHistory.KEEP_ALL
    history = HistoryPolicy.KEEP_ALL if keep_all else HistoryPolicy.KEEP_LAST
    reliability = (
        ReliabilityPolicy.BEST_EFFORT
        if q.reliability == QosReliability.BEST_EFFORT
        else ReliabilityPolicy.RELIABLE
    )
    durability = (
        DurabilityPolicy.TRANSIENT_LOCAL
        if q.durability == QosDurability.TRANSIENT_LOCAL
        else DurabilityPolicy.VOLATILE
    )
    return QoSProfile(
        history=history, depth=max(1, q.depth), reliability=reliability, durability=durability
    )


def stamp_ns(msg: Any) -> int:
    """`msg.header.stamp` in nanoseconds."""
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
